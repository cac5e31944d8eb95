"""Object storage against moto's real S3 HTTP server (and the OBJECTS_DIR folder fallback):
exact round trips with content types and metadata, multipart uploads, mirror and merge modes,
the by-hand path with stock tar, and the rehearsal into a temporary bucket."""

import hashlib
import json
import os
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from backups_app.components import get_component
from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.servers import moto_s3_server
from tests.stacks import ENGINES

SECRET = "moto-secret-key-value"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def endpoint():
    with moto_s3_server() as url:
        yield url


@pytest.fixture
def s3(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key=SECRET)


@pytest.fixture
def bucket(s3):
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def s3_options(endpoint, *buckets, **extra):
    # Small multipart settings so that a 6 MB object is uploaded in parts (5 MB is S3's minimum part).
    return {"endpoint_url": endpoint, "buckets": ",".join(buckets), "access_key_id": "test",
            "secret_access_key": SECRET, "region": "us-east-1", "multipart_threshold": MB,
            "multipart_chunksize": 5 * MB, **extra}


UNUSUAL_KEYS = ["한글 폴더/보고서 ✓.txt", "emoji/😀.bin", "folder-marker/", "a/../escape", "dup//slash", "/leading"]


def parallel(fn, items):
    # moto answers each request slowly; eight at a time keeps the test quick.
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(fn, items))


def fill(s3, bucket, many=480):
    """Objects with nested, unicode and unsafe keys, 0-byte objects, two over the multipart
    threshold, content types and user metadata (``many`` + 39 in all)."""
    puts = [dict(Key=f"docs/{i % 7}/{i % 3}/file-{i}.txt", Body=f"content {i}\n" * (i % 50),
                 ContentType="text/plain; charset=utf-8" if i % 2 else "application/octet-stream",
                 Metadata={"owner": f"user{i % 5}", "source-id": str(i)} if i % 4 == 0 else {})
            for i in range(many)]
    puts += [dict(Key=f"empty/{i}", Body=b"") for i in range(30)]
    puts += [dict(Key=key, Body=key.encode() * 3, Metadata={"kind": "unusual"}) for key in UNUSUAL_KEYS]
    puts.append(dict(Key="pdf/manual.pdf", Body=b"%PDF-1.7" + os.urandom(2000), ContentType="application/pdf",
                     ContentDisposition="attachment", CacheControl="max-age=60"))
    puts += [dict(Key=f"large/blob-{i}.bin", Body=os.urandom(size), ContentType="application/x-large",
                  Metadata={"part": str(i)}) for i, size in enumerate((6 * MB, 11 * MB + 123))]
    parallel(lambda put: s3.put_object(Bucket=bucket, **put), puts)


def snapshot(s3, bucket):
    keys = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])]

    def describe(key):
        obj = s3.get_object(Bucket=bucket, Key=key)
        return (hashlib.sha256(obj["Body"].read()).hexdigest(), obj["ContentLength"], obj["ContentType"],
                obj["Metadata"], obj.get("ContentDisposition"), obj.get("CacheControl"))

    return dict(zip(keys, parallel(describe, keys)))


@pytest.mark.django_db
def test_bucket_round_trip_mirror_mode(sources, endpoint, s3, bucket):
    fill(s3, bucket)
    before = snapshot(s3, bucket)
    assert len(before) == 519
    sources(objects=(ENGINES["objects"], s3_options(endpoint, bucket)))
    backup = backups.create_backup(["objects"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    total = sum(v[1] for v in before.values())
    assert backup.manifest["components"]["objects"]["counts"] == {bucket: {"objects": 519, "bytes": total}}
    assert list(backup.manifest["artifacts"]) == [f"objects_{bucket}.tar"]
    assert SECRET not in backup.log + json.dumps(backup.manifest)

    s3.put_object(Bucket=bucket, Key="added/after-backup.txt", Body=b"extra")
    s3.put_object(Bucket=bucket, Key="docs/0/0/file-0.txt", Body=b"changed", ContentType="text/x-changed")
    s3.delete_object(Bucket=bucket, Key="large/blob-1.bin")
    s3.delete_object(Bucket=bucket, Key="한글 폴더/보고서 ✓.txt")
    restore = restores.start_restore(backup.backup_id, ["objects"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert "deleted 1 objects" in restore.log
    assert snapshot(s3, bucket) == before
    # Objects over the threshold went up in parts (S3 marks multipart ETags with -<parts>).
    assert s3.head_object(Bucket=bucket, Key="large/blob-1.bin")["ETag"].endswith('-3"')
    assert s3.head_object(Bucket=bucket, Key="large/blob-0.bin")["ETag"].endswith('-2"')


@pytest.mark.django_db
def test_merge_mode_keeps_objects_not_in_the_backup(sources, endpoint, s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"k{i}", Body=f"v{i}".encode(), Metadata={"i": str(i)})
    sources(objects=(ENGINES["objects"], s3_options(endpoint, bucket)))
    before = snapshot(s3, bucket)
    backup = backups.create_backup(["objects"])
    s3.put_object(Bucket=bucket, Key="k0", Body=b"changed")
    s3.put_object(Bucket=bucket, Key="extra", Body=b"kept")
    restore = restores.start_restore(backup.backup_id, ["objects"], {"objects": {"mode": "merge"}}, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    after = snapshot(s3, bucket)
    assert after.pop("extra")[0] == hashlib.sha256(b"kept").hexdigest()
    assert after == before


@pytest.mark.django_db
def test_restore_recreates_a_deleted_bucket_and_two_buckets_at_once(sources, endpoint, s3, bucket):
    other = f"other-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"one")
    s3.put_object(Bucket=other, Key="c.txt", Body=b"two", ContentType="text/plain")
    sources(objects=(ENGINES["objects"], s3_options(endpoint, bucket, other)))
    before = (snapshot(s3, bucket), snapshot(s3, other))
    backup = backups.create_backup(["objects"])
    assert sorted(backup.manifest["artifacts"]) == sorted([f"objects_{bucket}.tar", f"objects_{other}.tar"])
    s3.delete_object(Bucket=other, Key="c.txt")
    s3.delete_bucket(Bucket=other)
    restore = restores.start_restore(backup.backup_id, ["objects"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert (snapshot(s3, bucket), snapshot(s3, other)) == before


@pytest.mark.django_db
def test_prefix_limits_backup_and_mirror_deletion(sources, endpoint, s3, bucket):
    s3.put_object(Bucket=bucket, Key="app/one", Body=b"1")
    s3.put_object(Bucket=bucket, Key="other-app/untouched", Body=b"2")
    sources(objects=(ENGINES["objects"], s3_options(endpoint, bucket, prefix="app/")))
    backup = backups.create_backup(["objects"])
    assert backup.manifest["components"]["objects"]["counts"][bucket]["objects"] == 1
    s3.put_object(Bucket=bucket, Key="app/new", Body=b"3")
    s3.put_object(Bucket=bucket, Key="other-app/new", Body=b"4")
    restores.start_restore(backup.backup_id, ["objects"], confirm=True)
    assert sorted(snapshot(s3, bucket)) == ["app/one", "other-app/new", "other-app/untouched"]


@pytest.mark.django_db
def test_tar_and_index_are_readable_with_stock_tools(sources, endpoint, s3, bucket, backup_storage_dir, tmp_path):
    fill(s3, bucket, many=20)
    sources(objects=(ENGINES["objects"], s3_options(endpoint, bucket)))
    backup = backups.create_backup(["objects"])
    out = tmp_path / "by-hand"
    out.mkdir()
    artifact = backup_storage_dir / backup.backup_id / f"objects_{bucket}.tar"
    subprocess.run(["tar", "--warning=no-unknown-keyword", "-xf", str(artifact), "-C", str(out)], check=True)
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert len(index) == 59
    by_key = {entry["key"]: entry for entry in index}
    assert by_key["pdf/manual.pdf"]["content_type"] == "application/pdf"
    assert by_key["large/blob-1.bin"]["metadata"] == {"part": "1"}
    assert by_key["a/../escape"]["member"].startswith("objects-unsafe/")
    for entry in index:
        data = (out / entry["member"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
    assert (out / "objects" / "한글 폴더" / "보고서 ✓.txt").read_bytes() == "한글 폴더/보고서 ✓.txt".encode() * 3


@pytest.mark.django_db
def test_rehearsal_uses_a_temporary_bucket(sources, endpoint, s3, bucket):
    fill(s3, bucket, many=20)
    sources(objects=(ENGINES["objects"], s3_options(endpoint, bucket)))
    backup = backups.create_backup(["objects"])
    reader = backups.open_reader(backup)
    lines = []
    counts = get_component("objects").rehearse(reader, reader.artifacts_of("objects"), lines.append)
    assert counts == backup.manifest["components"]["objects"]["counts"]
    assert not [b for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("rehearsal-")]
    assert "temporary bucket rehearsal-" in lines[0]


@pytest.mark.django_db
def test_unreachable_endpoint_is_a_readable_failure(sources):
    sources(objects=(ENGINES["objects"], s3_options("http://127.0.0.1:1", "media")))
    backup = backups.create_backup(["objects"])
    assert backup.status == RunStatus.FAILED
    assert "objects: bucket media at http://127.0.0.1:1: Could not connect" in backup.error
    assert SECRET not in backup.error + backup.log


def write_tree(root, files):
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def read_tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["mirror", "merge"])
def test_folder_fallback_round_trip(sources, tmp_path, mode):
    root = tmp_path / "objects"
    files = {f"2024/{i % 4}/doc-{i}.bin": os.urandom(i * 37) for i in range(60)}
    files["첨부/파일 ✓.txt"] = "안녕".encode()
    write_tree(root, files)
    sources(objects=(ENGINES["objects"], {"path": str(root)}))
    backup = backups.create_backup(["objects"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert list(backup.manifest["artifacts"]) == ["objects_disk.tar"]
    assert backup.manifest["components"]["objects"]["counts"]["disk"]["objects"] == 61

    write_tree(root, {"2024/0/doc-0.bin": b"changed", "extra/new.txt": b"new"})
    (root / "2024" / "1" / "doc-1.bin").unlink()
    restore = restores.start_restore(backup.backup_id, ["objects"], {"objects": {"mode": mode}}, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    expected = files if mode == "mirror" else {**files, "extra/new.txt": b"new"}
    assert read_tree(root) == expected
    assert (root / "extra").exists() == (mode == "merge")


@pytest.mark.django_db
def test_restore_into_a_bucket_that_is_no_longer_configured_is_refused(sources, endpoint, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    sources(objects=(ENGINES["objects"], s3_options(endpoint, bucket)))
    backup = backups.create_backup(["objects"])
    sources(objects=(ENGINES["objects"], s3_options(endpoint, "renamed-bucket")))
    s3.create_bucket(Bucket="renamed-bucket")
    restore = restores.start_restore(backup.backup_id, ["objects"], confirm=True)
    assert restore.status == RunStatus.ROLLED_BACK
    assert f"no configured bucket or folder for objects_{bucket}.tar (configured: bucket renamed-bucket)" in \
        restore.error
    assert not s3.list_objects_v2(Bucket="renamed-bucket").get("Contents")
