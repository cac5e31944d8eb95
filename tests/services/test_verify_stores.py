"""Deep verification (restore rehearsal) of Redis, object storage and config sources through
the verification service: scratch targets only, counts equal to the manifest's."""

import pytest
import redis

from backups_app.models import RunStatus
from backups_app.services import backups, verification
from tests.servers import redis_server

pytestmark = pytest.mark.django_db


def test_rehearsal_of_redis_objects_and_config(sources, tmp_path):
    objects_dir, app_dir = tmp_path / "objects", tmp_path / "app"
    (objects_dir / "2024").mkdir(parents=True)
    (objects_dir / "2024" / "a.pdf").write_bytes(b"%PDF" * 100)
    (objects_dir / "b.txt").write_text("b")
    app_dir.mkdir()
    (app_dir / ".env").write_text("DEBUG=false\n")
    with redis_server() as url:
        live = redis.Redis.from_url(url)
        live.set("k1", "v")
        live.hset("h", mapping={"a": 1})
        sources(redis=("backups_app.components.redis.RedisComponent", {"url": url}),
                objects=("backups_app.components.objects.ObjectsComponent", {"path": str(objects_dir)}),
                config=("backups_app.components.config.ConfigComponent", {"paths": str(app_dir / ".env")}))
        backup = backups.create_backup()
        assert backup.status == RunStatus.COMPLETED, backup.error
        live.set("added-after-backup", "x")

        result = verification.verify(backup.backup_id, deep=True)

        assert result.status == RunStatus.COMPLETED, result.error
        assert result.results["redis"]["counts"] == {"db0": 2}
        assert result.results["objects"]["counts"] == {"disk": {"objects": 2, "bytes": 401}}
        assert result.results["config"]["counts"] == {"files": 1, "bytes": 12}
        assert all(result.results[name]["ok"] for name in ("redis", "objects", "config"))
        assert live.dbsize() == 3  # the live server was not touched
        live.close()
