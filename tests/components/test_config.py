"""Config files: backup with relative paths, preview (diff in the log, nothing written, no safety
backup), apply (atomic writes, .bak kept), rollback of an applied config when a later component
fails, stock tar, rehearsal."""

import json
import os
import subprocess

import pytest

from backups_app.components import get_component
from backups_app.components.config import redact
from backups_app.models import Backup, RunStatus
from backups_app.services import backups, restores
from tests.archive.test_safetar import _dir, _file, _link, _tar_of
from tests.conftest import forge_artifact
from tests.stacks import ENGINES

ENV = "DEBUG=false\nOPENAI_API_KEY=sk-original-secret-1234\nWORKERS=4\n"


def tree(root, skip_bak=False):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not (skip_bak and p.name.endswith(".bak"))}


@pytest.fixture
def app_dir(tmp_path):
    root = tmp_path / "app"
    (root / "monitoring" / "grafana" / "dashboards").mkdir(parents=True)
    (root / ".env").write_text(ENV)
    (root / ".env").chmod(0o600)
    (root / "docker-compose.yml").write_text("services:\n  api:\n    image: app:1.0\n")
    (root / "monitoring" / "prometheus.yml").write_text("scrape_interval: 15s\n")
    (root / "monitoring" / "grafana" / "dashboards" / "rag.json").write_text('{"title": "RAG"}\n')
    (root / "monitoring" / "logo.png").write_bytes(b"\x89PNG\x00\xff" * 50)
    (root / "unrelated.txt").write_text("not configured, never touched")
    return root


@pytest.fixture
def configured(sources, app_dir):
    sources(config=(ENGINES["config"], {"paths": f"{app_dir}/.env,{app_dir}/docker-compose.yml,{app_dir}/monitoring"}))
    return app_dir


def change(app_dir):
    (app_dir / ".env").write_text("DEBUG=true\nOPENAI_API_KEY=sk-live-secret-9876\nWORKERS=4\n")
    (app_dir / "monitoring" / "prometheus.yml").unlink()
    (app_dir / "monitoring" / "logo.png").write_bytes(b"other binary \x00")
    (app_dir / "monitoring" / "added-later.yml").write_text("kept: true\n")


@pytest.mark.django_db
def test_backup_is_a_stock_tar_with_relative_paths(configured, backup_storage_dir, tmp_path):
    before = tree(configured)
    backup = backups.create_backup(["config"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    facts = backup.manifest["components"]["config"]
    assert facts["sensitive"] is True
    assert facts["paths"] == [".env", "docker-compose.yml", "monitoring"]
    assert facts["counts"] == {"files": 5, "bytes": sum(len(v) for k, v in before.items() if k != "unrelated.txt")}
    assert "not encrypted" in backup.log
    assert list(backup.manifest["artifacts"]) == ["config.tar.zst"]
    out = tmp_path / "by-hand"
    out.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(backup_storage_dir / backup.backup_id / "config.tar.zst"),
                    "-C", str(out)], check=True)
    before.pop("unrelated.txt")
    assert tree(out) == before
    assert (out / ".env").stat().st_mode & 0o777 == 0o600


@pytest.mark.django_db
def test_preview_shows_diffs_and_writes_nothing(configured):
    backup = backups.create_backup(["config"])
    change(configured)
    changed = tree(configured)
    restore = restores.start_restore(backup.backup_id, ["config"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert tree(configured) == changed
    assert restore.safety_backup is None and not Backup.objects.filter(kind=Backup.Kind.SAFETY).exists()
    log = restore.log
    assert "no safety backup needed" in log
    assert "--- live/.env\n+++ backup/.env" in log
    assert "-DEBUG=true\n-OPENAI_API_KEY=<redacted>\n+DEBUG=false\n+OPENAI_API_KEY=<redacted>\n WORKERS=4" in log
    assert "sk-original-secret" not in log and "sk-live-secret" not in log
    assert "--- /dev/null\n+++ backup/monitoring/prometheus.yml\n@@ -0,0 +1 @@\n+scrape_interval: 15s" in log
    assert "monitoring/logo.png: binary file differs" in log
    assert "monitoring/added-later.yml is not in the backup; kept" in log
    assert "preview (nothing written): 2 changed, 1 new, 2 unchanged files" in log and "1 files only live" in log


@pytest.mark.django_db
def test_apply_writes_files_and_keeps_bak(configured):
    before = tree(configured)
    backup = backups.create_backup(["config"])
    change(configured)
    restore = restores.start_restore(backup.backup_id, ["config"], {"config": {"mode": "apply"}}, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    after = tree(configured)
    assert after.pop(".env.bak").startswith(b"DEBUG=true")
    assert after.pop("monitoring/logo.png.bak") == b"other binary \x00"
    assert after.pop("monitoring/added-later.yml") == b"kept: true\n"
    assert after == before
    assert (configured / ".env").stat().st_mode & 0o777 == 0o600
    assert "wrote 2 changed, 1 new, 2 unchanged files" in restore.log
    assert not [p for p in configured.rglob(".*.restore-*")]


@pytest.mark.django_db
def test_applied_config_is_rolled_back_when_a_later_component_fails(sources, app_dir, tmp_path):
    objects_dir = tmp_path / "objects"
    (objects_dir / "a").mkdir(parents=True)
    (objects_dir / "a" / "b").write_text("object")
    sources(config=(ENGINES["config"], {"paths": f"{app_dir}/.env,{app_dir}/monitoring"}),
            objects=(ENGINES["objects"], {"path": str(objects_dir)}))
    backup = backups.create_backup(["config", "objects"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    change(app_dir)
    (objects_dir / "a" / "b").unlink()
    (objects_dir / "a").rmdir()
    (objects_dir / "a").write_text("a file where the backup has a folder")  # the object restore will fail
    config_before, objects_before = tree(app_dir), tree(objects_dir)

    restore = restores.start_restore(backup.backup_id, ["config", "objects"], {"config": {"mode": "apply"}},
                                     confirm=True)
    assert restore.status == RunStatus.ROLLED_BACK, restore.error
    assert "wrote monitoring/prometheus.yml" in restore.log
    assert "monitoring/prometheus.yml is not in the backup; moved it to monitoring/prometheus.yml.bak" in restore.log
    assert tree(app_dir, skip_bak=True) == {k: v for k, v in config_before.items() if not k.endswith(".bak")}
    assert tree(objects_dir) == objects_before


@pytest.mark.django_db
def test_rehearsal_extracts_into_a_temporary_folder(configured, settings):
    backup = backups.create_backup(["config"])
    reader = backups.open_reader(backup)
    lines = []
    counts = get_component("config").rehearse(reader, reader.artifacts_of("config"), lines.append)
    assert counts == backup.manifest["components"]["config"]["counts"]
    assert not list(settings.BACKUP_SPOOL_DIR.glob("config-rehearsal-*"))


@pytest.mark.django_db
def test_bad_configuration_is_reported(sources, app_dir, tmp_path):
    sources(config=(ENGINES["config"], {"paths": f"{app_dir}/.env", "base_dir": str(tmp_path / "elsewhere")}))
    backup = backups.create_backup(["config"])
    assert backup.status == RunStatus.FAILED
    assert f"is not inside CONFIG_BASE_DIR {tmp_path / 'elsewhere'}" in backup.error
    sources(config=(ENGINES["config"], {"paths": f"{app_dir}/missing.env"}))
    backup = backups.create_backup(["config"])
    assert backup.status == RunStatus.FAILED
    assert f"{app_dir}/missing.env does not exist (check CONFIG_PATHS)" in backup.error


@pytest.mark.django_db
def test_unknown_mode_is_refused(configured):
    backup = backups.create_backup(["config"])
    with pytest.raises(Exception, match="expected preview or apply"):
        restores.start_restore(backup.backup_id, ["config"], {"config": {"mode": "force"}}, confirm=True)
    assert os.path.exists(configured / ".env")


@pytest.mark.django_db
def test_hard_linked_files_are_stored_whole(configured):
    os.link(configured / "monitoring" / "prometheus.yml", configured / "monitoring" / "prometheus-copy.yml")
    before = tree(configured)
    backup = backups.create_backup(["config"])
    (configured / "monitoring" / "prometheus.yml").unlink()
    (configured / "monitoring" / "prometheus-copy.yml").unlink()
    restore = restores.start_restore(backup.backup_id, ["config"], {"config": {"mode": "apply"}}, confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert tree(configured) == before


@pytest.mark.django_db
def test_cli_preview_exits_zero_and_prints_the_diff(configured, caplog):
    """The command's progress, the diff included, reaches the terminal through the backups_app
    logger as the run goes (caplog reads that logger)."""
    from django.core.management import call_command

    backup = backups.create_backup(["config"])
    (configured / "docker-compose.yml").write_text("services:\n  api:\n    image: app:2.0\n")
    caplog.set_level("INFO", logger="backups_app")
    call_command("restore", backup.backup_id, "--components", "config", "--yes", "--set", "config.mode=preview")
    err = caplog.text
    assert "-    image: app:2.0\n+    image: app:1.0" in err
    assert (configured / "docker-compose.yml").read_text().endswith("app:2.0\n")


def forge(backup, storage_dir, members, absent=()):
    """A set forged so well that its checksums, its metadata.json and the catalog all agree:
    config.tar holds ``members`` and the manifest lists ``absent``; the restore itself must still
    refuse what is unsafe (the last line of defence, after the catalog and the signature)."""
    forge_artifact(storage_dir, backup, "config.tar", _tar_of(members))
    folder = storage_dir / backup.backup_id
    manifest = json.loads((folder / "metadata.json").read_text())
    manifest["components"]["config"]["absent"] = backup.manifest["components"]["config"]["absent"] = list(absent)
    (folder / "metadata.json").write_text(json.dumps(manifest))
    backup.save(update_fields=["manifest"])


@pytest.fixture
def plain_backup(configured, settings):
    settings.BACKUP_COMPRESSION = "none"
    return backups.create_backup(["config"])


@pytest.mark.django_db
@pytest.mark.parametrize("mode, members, refusal", [
    # each link stays inside by its text; resolved through the one restored before, the second leaves
    ("apply", [_dir("monitoring/a"), _dir("monitoring/a/b"), _link("monitoring/a/b/c", ".."),
               _link("monitoring/a/b/c/d", "../../.."), _file("monitoring/a/b/c/d/PWNED")],
     "'monitoring/a/b/c/d': link to '../../..' leaves the folder"),
    ("apply", [_file("unrelated.txt", b"PWNED")], "'unrelated.txt': not under the configured paths"),
    ("preview", [_file("unrelated.txt", b"PWNED")], "'unrelated.txt': not under the configured paths"),
    # inside base_dir, but out of the configured folder through a link restored before
    ("apply", [_link("monitoring/grafana", ".."), _file("monitoring/grafana/unrelated.txt", b"PWNED")],
     "'monitoring/grafana/unrelated.txt': not under the configured paths"),
], ids=["chained-links", "outside-paths", "outside-paths-preview", "through-link"])
def test_members_that_leave_the_configured_paths_are_refused(configured, plain_backup, backup_storage_dir,
                                                             tmp_path, mode, members, refusal):
    forge(plain_backup, backup_storage_dir, members)
    restore = restores.start_restore(plain_backup.backup_id, ["config"], {"config": {"mode": mode}}, confirm=True)
    assert restore.status in (RunStatus.FAILED, RunStatus.ROLLED_BACK)
    assert refusal in restore.error
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and (p.name == "PWNED" or p.read_bytes() == b"PWNED")]
    assert (configured / "unrelated.txt").read_text() == "not configured, never touched"


@pytest.mark.django_db
@pytest.mark.parametrize("absent, refusal", [
    ("../outside.txt", "absolute path or '..'"),
    ("{tmp}/outside.txt", "absolute path or '..'"),
    ("unrelated.txt", "not under the configured paths"),
])
def test_absent_entries_are_checked_like_members(configured, plain_backup, backup_storage_dir, tmp_path,
                                                 absent, refusal):
    (tmp_path / "outside.txt").write_text("keep me")
    forge(plain_backup, backup_storage_dir, [_file(".env", ENV.encode())], absent=[absent.format(tmp=tmp_path)])
    restore = restores.start_restore(plain_backup.backup_id, ["config"], {"config": {"mode": "apply"}},
                                     confirm=True)
    assert restore.status in (RunStatus.FAILED, RunStatus.ROLLED_BACK)
    assert refusal in restore.error
    assert (tmp_path / "outside.txt").read_text() == "keep me"
    assert (configured / "unrelated.txt").read_text() == "not configured, never touched"
    assert not list(tmp_path.rglob("*.bak"))


@pytest.mark.parametrize("line, shown", [
    ("+DATABASE_URL=postgres://app:S3cr3tPW@db/app", "+DATABASE_URL=postgres://<redacted>@db/app"),
    ("-REDIS_URL=redis://:hunter2@cache:6379/0", "-REDIS_URL=redis://<redacted>@cache:6379/0"),
    ("+SENTRY_DSN=https://0123abcdkey@o1.ingest.sentry.io/1", "+SENTRY_DSN=https://<redacted>@o1.ingest.sentry.io/1"),
    ("+ALERTS=https://hooks.slack.com/services/T000/B000/XXXXslackTOKEN",
     "+ALERTS=https://hooks.slack.com/services/<redacted>"),
    ('+    "password": "jsonPW42",', '+    "password": <redacted>,'),
    ('+{"user": "app", "db_pass": "jsonPW42", "port": 5432}', '+{"user": "app", "db_pass": <redacted>, "port": 5432}'),
    ("+mongodb+srv://app:p@ss@cluster0/db", "+mongodb+srv://<redacted>@cluster0/db"),
    ("-  <password>xmlPW42</password>", "-  <password><redacted></password>"),
    ('+<db:Password type="x">xmlPW42</db:Password>', '+<db:Password type="x"><redacted></db:Password>'),
    ("+  pass: yamlPW42", "+  pass: <redacted>"),
    ("+export OPENAI_API_KEY='sk-abc'", "+export OPENAI_API_KEY=<redacted>"),
    (" WORKERS=4", " WORKERS=4"),
    ("+    image: app:1.0", "+    image: app:1.0"),
])
def test_preview_redacts_secrets_in_every_usual_form(line, shown):
    assert redact(line) == shown


PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nQm9ndXNrZXlib2R5bGluZXR3bw==\n"


@pytest.mark.django_db
def test_preview_hides_private_key_bodies(configured):
    key = configured / "monitoring" / "tls.key"
    key.write_text(f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}-----END PRIVATE KEY-----\n")
    backup = backups.create_backup(["config"])
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nTGl2ZWtleWJvZHk=\n-----END RSA PRIVATE KEY-----\n")
    restore = restores.start_restore(backup.backup_id, ["config"], confirm=True)
    assert restore.status == RunStatus.COMPLETED, restore.error
    assert "+-----BEGIN PRIVATE KEY-----\n+<redacted private key " in restore.log  # the backup's key
    assert "------BEGIN RSA PRIVATE KEY-----\n-<redacted private key " in restore.log  # the live one
    assert not [body for body in ("MIIEvQ", "Qm9nd", "TGl2") if body in restore.log]
