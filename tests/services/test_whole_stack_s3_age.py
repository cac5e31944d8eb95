"""Every component in one backup set, stored on S3 (moto's HTTP server) with age encryption on:
backed up, damaged, restored, and compared exactly; stock `age` decrypts what was stored."""

import subprocess

import boto3
import pytest

from backups_app.models import RunStatus
from backups_app.services import backups, restores
from tests.components import test_chroma as chroma_data
from tests.components import test_redis as redis_data

pytestmark = pytest.mark.django_db


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
