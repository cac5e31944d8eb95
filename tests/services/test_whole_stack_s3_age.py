"""Every component in one backup set, stored on S3 (moto's HTTP server) with age encryption on:
backed up, damaged, restored, and compared exactly; stock `age` decrypts what was stored."""

import subprocess

import boto3
import pytest

from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.components import test_chroma as chroma_data
from tests.components import test_config as config_data
from tests.components import test_objects as objects_data
from tests.components import test_qdrant as qdrant_data
from tests.components import test_redis as redis_data
from tests.components.test_files import dump_sqlite, make_sqlite, tree
from tests.conftest import new_bucket, pg_connect, pg_options

pytestmark = pytest.mark.django_db
redis_url = redis_data.redis_url
qdrant_path = qdrant_data.qdrant_path


@pytest.fixture
def whole_stack(sources, tmp_path, pg_database, redis_url, qdrant_path, moto_endpoint):
    with pg_connect(pg_database) as conn:
        conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, body jsonb, blob bytea)")
        conn.execute("INSERT INTO docs (body, blob) SELECT jsonb_build_object('n', g, 't', '한글'), "
                     "decode(md5(g::text), 'hex') FROM generate_series(1, 300) g")
    uploads = tmp_path / "uploads"
    (uploads / "nested" / "폴더").mkdir(parents=True)
    (uploads / "nested" / "폴더" / "a.txt").write_text("alpha")
    (uploads / "empty.bin").write_bytes(b"")
    app_db = tmp_path / "app.sqlite3"
    make_sqlite(app_db)
    redis_data.fill(redis_url)
    qdrant_data.fill(qdrant_path, 300)
    chroma_dir = tmp_path / "chroma"
    chroma_data.fill(chroma_data.persistent(chroma_dir))
    chroma_data.release()
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing-key", aws_secret_access_key="testing-secret")
    media = new_bucket(moto_endpoint)
    objects_data.fill(s3, media, many=40)
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / ".env").write_text(config_data.ENV)
    sources(
        postgres=("backups_app.components.postgres.PostgresComponent", pg_options(pg_database)),
        uploads=("backups_app.components.uploads.UploadsComponent", {"path": str(uploads)}),
        sqlite=("backups_app.components.sqlite.SQLiteComponent", {"paths": str(app_db)}),
        redis=(redis_data.ENGINE, {"url": redis_url}),
        qdrant=(qdrant_data.QDRANT, {"path": qdrant_path}),
        chroma=(chroma_data.CHROMA, {"path": str(chroma_dir)}),
        objects=(objects_data.ENGINE, {**objects_data.s3_options(moto_endpoint, media),
                                       "access_key_id": "testing-key", "secret_access_key": "testing-secret"}),
        config=(config_data.CONFIG, {"paths": str(app_dir / ".env")}),
    )

    def state():
        with pg_connect(pg_database) as conn:
            rows = conn.execute("SELECT * FROM docs ORDER BY id").fetchall()
        chroma = chroma_data.dump(chroma_data.persistent(chroma_dir))
        chroma_data.release()
        return {"postgres": rows, "uploads": tree(uploads), "sqlite": dump_sqlite(app_db),
                "redis": redis_data.snapshot(redis_url), "qdrant": qdrant_data.read_all(qdrant_path),
                "chroma": chroma, "objects": objects_data.snapshot(s3, media),
                "config": (app_dir / ".env").read_text()}

    def damage():
        with pg_connect(pg_database) as conn:
            conn.execute("DELETE FROM docs WHERE id % 2 = 0")
        (uploads / "nested" / "폴더" / "a.txt").write_text("changed")
        with redis_data.client(redis_url) as c:
            c.flushall()
        s3.delete_object(Bucket=media, Key="pdf/manual.pdf")
        (app_dir / ".env").write_text("DEBUG=true\n")
        app_db.unlink()

    return state, damage


def test_every_component_round_trips_through_s3_with_encryption(whole_stack, s3_backups, age_key, tmp_path,
                                                                 moto_endpoint):
    state, damage = whole_stack
    before = state()
    backup = backups.create_backup(description="whole stack")
    assert backup.status == RunStatus.COMPLETED, backup.error
    assert sorted(backup.components) == ["chroma", "config", "objects", "postgres", "qdrant", "redis", "sqlite",
                                         "uploads"]
    stored = {meta["file"] for meta in backup.manifest["artifacts"].values()}
    assert stored and all(name.endswith(".age") for name in stored)

    # The stock age CLI decrypts a stored artifact with the identity file.
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing-key", aws_secret_access_key="testing-secret")
    encrypted = tmp_path / "postgres.dump.age"
    encrypted.write_bytes(s3.get_object(Bucket=s3_backups, Key=f"{backup.backup_id}/postgres.dump.age")["Body"].read())
    subprocess.run(["age", "-d", "-i", str(age_key), "-o", str(tmp_path / "postgres.dump"), str(encrypted)],
                   check=True)
    listing = subprocess.run(["pg_restore", "--list", str(tmp_path / "postgres.dump")], capture_output=True,
                             text=True, check=True)
    assert "TABLE DATA public docs" in listing.stdout

    damage()
    options = {"config": {"mode": "apply"}}
    restore = restores.start_restore(backup.backup_id, options=options, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    after = state()
    chroma_data.assert_same(after.pop("chroma"), before.pop("chroma"))
    redis_data.assert_same(after.pop("redis"), before.pop("redis"))
    assert after == before
