"""Object storage restored under another key prefix (objects.prefix), side by side, on moto's S3
server and on the folder fallback: no live object is touched or deleted."""

import pytest

from backups_app.errors import InvalidOption
from backups_app.models import Backup, RunStatus
from backups_app.services import backups, restores
from tests.components.test_objects import bucket, endpoint, fill, read_tree, s3, s3_options, snapshot, write_tree  # noqa: F401
from tests.stacks import ENGINES


def restore(backup, **options):
    return restores.start_restore(backup.backup_id, ["objects"], {"objects": options}, confirm=True)


@pytest.mark.django_db
def test_bucket_under_a_prefix(sources, endpoint, s3, bucket):  # noqa: F811
    fill(s3, bucket, many=20)
    sources(objects=(ENGINES["objects"], s3_options(endpoint, bucket)))
    backup = backups.create_backup(["objects"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    s3.delete_object(Bucket=bucket, Key="pdf/manual.pdf")
    s3.put_object(Bucket=bucket, Key="added-live.txt", Body=b"live")
    live = snapshot(s3, bucket)
    expected = {k: v for k, v in live.items() if k != "added-live.txt"}

    plan = restores.plan_restore(backup.backup_id, ["objects"], {"objects": {"prefix": "restored/"}})
    assert plan["ok"], plan["problems"]
    assert plan["targets"]["objects"]["live"] is False
    run = restore(backup, prefix="restored/")
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.safety_backup is None and not Backup.objects.filter(kind=Backup.Kind.SAFETY).exists()
    after = snapshot(s3, bucket)
    assert {k: v for k, v in after.items() if not k.startswith("restored/")} == live  # nothing live touched
    restored = {k.removeprefix("restored/"): v for k, v in after.items() if k.startswith("restored/")}
    assert "pdf/manual.pdf" in restored and "added-live.txt" not in restored
    assert {k: v for k, v in restored.items() if k != "pdf/manual.pdf"} == expected  # content, headers, metadata

    # The prefix holds objects now: refused, and nothing there is replaced.
    plan = restores.plan_restore(backup.backup_id, ["objects"], {"objects": {"prefix": "restored/"}}, verify=False)
    assert any("already holds objects under restored/" in p for p in plan["refusals"])


@pytest.mark.django_db
def test_folder_under_a_prefix(sources, tmp_path):
    root = tmp_path / "objects"
    write_tree(root, {"a.txt": b"alpha", "sub/b.bin": b"\x00\x01"})
    sources(objects=(ENGINES["objects"], {"path": str(root)}))
    backup = backups.create_backup(["objects"])
    (root / "a.txt").write_bytes(b"changed")
    run = restore(backup, prefix="old/")
    assert run.status == RunStatus.COMPLETED, run.error
    assert read_tree(root) == {"a.txt": b"changed", "sub/b.bin": b"\x00\x01", "old/a.txt": b"alpha",
                               "old/sub/b.bin": b"\x00\x01"}


@pytest.mark.django_db
def test_prefix_nonsense_is_refused(sources, endpoint, bucket):  # noqa: F811
    sources(objects=(ENGINES["objects"], s3_options(endpoint, bucket, prefix="docs/")))
    backup = backups.create_backup(["objects"])
    for bad in ("../x/", "/abs/", "a//b/", "./"):
        with pytest.raises(InvalidOption, match="a key prefix without"):
            restore(backup, prefix=bad)
    with pytest.raises(InvalidOption, match="lies inside docs/, the prefix this source backs up"):
        restore(backup, prefix="docs/restored/")
