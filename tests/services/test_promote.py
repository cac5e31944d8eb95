"""Promote (services/promote.py, manage.py promote, the admin's buttons): a completed side-by-side
restore swapped in for the live stores on real PostgreSQL, Qdrant local mode, a private Redis and
folders; undone while the replaced data exists, dropped with --drop-old; refusals."""

import io

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from qdrant_client import QdrantClient, models

from backups_app.models import AuditEvent, RunStatus
from backups_app.services import backups, promote, restores
from tests.components.test_qdrant import collections, fill, read_all
from tests.components.test_redis import client as redis_client
from tests.stacks import ENGINES, PG, pg_connect, pg_options, uploads_source


def side_restore(backup, name, **options):
    run = restores.start_restore(backup.backup_id, [name], {name: options}, confirm=True)
    assert run.status == RunStatus.COMPLETED, run.error
    return run


def databases():
    with pg_connect("postgres") as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}


def titles(dbname):
    with pg_connect(dbname) as conn:
        return [r[0] for r in conn.execute("SELECT title FROM docs ORDER BY id").fetchall()]


@pytest.fixture
def pg_side(sources, make_pg_database):
    """Live database with docs 'a','b' backed up, then 'c' added; the backup restored into a scratch
    database. Returns (live, scratch, restore)."""
    live, scratch = make_pg_database(), make_pg_database()  # both dropped afterwards, if they exist
    with pg_connect("postgres") as conn:
        conn.execute(f'DROP DATABASE "{scratch}"')
    with pg_connect(live) as conn:
        conn.execute("CREATE TABLE docs (id serial PRIMARY KEY, title text); INSERT INTO docs (title) VALUES ('a'), "
                     "('b')")
    sources(postgres=(ENGINES["postgres"], pg_options(live)))
    backup = backups.create_backup(["postgres"])
    with pg_connect(live) as conn:
        conn.execute("INSERT INTO docs (title) VALUES ('c')")
    yield live, scratch, side_restore(backup, "postgres", database=scratch)
    with pg_connect("postgres") as conn:  # what a promotion renamed the live database to
        for name in databases():
            if name.startswith(f"{live}_replaced_"):
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.mark.django_db
def test_postgres_promote_undo_and_drop(pg_side):
    live, scratch, run = pg_side
    lines = promote.promote(run.restore_id)
    assert titles(live) == ["a", "b"] and scratch not in databases()
    run.refresh_from_db()
    old = promote.promotion(run)["components"]["postgres"]["old"]
    assert old.startswith(f"{live}_replaced_") and titles(old) == ["a", "b", "c"]
    assert any(f"database {scratch} is now {live}" in line for line in lines)
    assert f"promote: postgres: database {scratch} is now {live}" in run.log
    event = AuditEvent.objects.get(action="restore.promote")
    assert event.target == run.restore_id and event.details["components"] == ["postgres"]
    with pytest.raises(promote.NotPromotable, match="is promoted already"):
        promote.promote(run.restore_id)

    promote.promote(run.restore_id, undo=True)
    assert titles(live) == ["a", "b", "c"] and titles(scratch) == ["a", "b"] and old not in databases()
    undo = AuditEvent.objects.get(action="restore.undo")
    assert undo.target == run.restore_id
    assert any(f"database {old} is now {live}" in line for line in undo.details["log"])
    run.refresh_from_db()
    assert f"promote: postgres: database {old} is now {live}" in run.log
    with pytest.raises(promote.NotPromotable, match="it was undone already"):
        promote.promote(run.restore_id, undo=True)

    promote.promote(run.restore_id, drop_old=True)  # promote again, and drop what it replaced
    assert titles(live) == ["a", "b"] and old not in databases() and scratch not in databases()
    assert AuditEvent.objects.filter(action="restore.promote_drop_old", target=run.restore_id).exists()
    with pytest.raises(promote.NotPromotable, match="its replaced data was dropped"):
        promote.promote(run.restore_id, undo=True)


@pytest.mark.django_db
@pytest.mark.parametrize("which", ["live", "restored"])
def test_postgres_promote_refuses_while_sessions_are_connected(pg_side, which):
    live, scratch, run = pg_side
    used = live if which == "live" else scratch
    with psycopg.connect(dbname=used, application_name="rag-api", **PG):
        with pytest.raises(promote.NotPromotable, match=f"1 other session.* use database {used} .*rag-api"):
            promote.promote(run.restore_id)
    assert titles(live) == ["a", "b", "c"] and titles(scratch) == ["a", "b"]
    assert promote.promotion(run) == {} and not AuditEvent.objects.filter(action="restore.promote").exists()


@pytest.mark.django_db
def test_postgres_tables_restore_is_not_promoted(sources, pg_database, make_pg_database):
    scratch = make_pg_database(create=False)
    with pg_connect(pg_database) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY); CREATE TABLE other (id int)")
    sources(postgres=(ENGINES["postgres"], pg_options(pg_database)))
    run = side_restore(backups.create_backup(["postgres"]), "postgres", database=scratch, tables="docs")
    with pytest.raises(promote.NotPromotable, match="holds only table\\(s\\) docs; promoting its database would"):
        promote.promote(run.restore_id)
    assert scratch in databases() and promote.promotion(run) == {}


@pytest.mark.django_db
def test_qdrant_aliases_switch_in_one_change_and_back(sources, qdrant_path):
    fill(qdrant_path, 12)
    client = QdrantClient(path=qdrant_path)
    client.update_collection_aliases([models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="docs", alias_name="docs_live"))])
    client.close()
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    backup = backups.create_backup(["qdrant"])
    client = QdrantClient(path=qdrant_path)
    client.delete("docs", models.PointIdsList(points=[7]))
    client.close()
    run = side_restore(backup, "qdrant", suffix="_restored")

    def alias():
        c = QdrantClient(path=qdrant_path)
        try:
            return {a.alias_name: a.collection_name for a in c.get_aliases().aliases}
        finally:
            c.close()

    promote.promote(run.restore_id)
    assert alias() == {"docs_live": "docs_restored"} and collections(qdrant_path) == ["docs", "docs_restored"]
    assert len(read_all(qdrant_path, "docs_live")) == 12
    promote.promote(run.restore_id, undo=True)
    assert alias() == {"docs_live": "docs"}
    promote.promote(run.restore_id, drop_old=True)
    assert alias() == {"docs_live": "docs_restored"} and collections(qdrant_path) == ["docs_restored"]


@pytest.mark.django_db
def test_qdrant_without_an_alias_is_refused(sources, qdrant_path):
    fill(qdrant_path, 3)
    sources(qdrant=(ENGINES["qdrant"], {"path": qdrant_path}))
    run = side_restore(backups.create_backup(["qdrant"]), "qdrant", suffix="_r")
    with pytest.raises(promote.NotPromotable, match="no alias points at docs"):
        promote.promote(run.restore_id)


@pytest.mark.django_db
def test_redis_swapdb_and_back(sources, redis_url):
    with redis_client(redis_url, 0) as c:
        c.set("k", "backed up")
    sources(redis=(ENGINES["redis"], {"url": redis_url}))
    backup = backups.create_backup(["redis"])
    with redis_client(redis_url, 0) as c:
        c.set("k", "live")
    run = side_restore(backup, "redis", db="5")

    def value(db):
        with redis_client(redis_url, db) as c:
            return c.get("k")

    promote.promote(run.restore_id)
    assert (value(0), value(5)) == (b"backed up", b"live")
    promote.promote(run.restore_id, undo=True)
    assert (value(0), value(5)) == (b"live", b"backed up")
    promote.promote(run.restore_id, drop_old=True)
    assert (value(0), value(5)) == (b"backed up", None)


@pytest.fixture
def uploads_side(sources, tmp_path):
    live = tmp_path / "uploads"
    sources(uploads=uploads_source(live, {"a.txt": "backed up"}))
    backup = backups.create_backup(["uploads"])
    (live / "a.txt").write_text("live")
    target = tmp_path / "uploads-restored"
    return live, target, side_restore(backup, "uploads", directory=str(target))


@pytest.mark.django_db
def test_folder_swapped_by_rename_through_the_command(uploads_side):
    live, target, run = uploads_side
    out = io.StringIO()
    call_command("promote", run.restore_id, stdout=out)
    old = live.parent / f"uploads.replaced-{run.restore_id}"
    assert f"{target} is now {live}" in out.getvalue()
    assert (live / "a.txt").read_text() == "backed up" and (old / "a.txt").read_text() == "live"
    assert not target.exists()
    call_command("promote", run.restore_id, "--undo", stdout=io.StringIO())
    assert (live / "a.txt").read_text() == "live" and (target / "a.txt").read_text() == "backed up"
    assert not old.exists()
    with pytest.raises(CommandError, match="--drop-old and --undo contradict each other"):
        call_command("promote", run.restore_id, "--undo", "--drop-old")
    call_command("promote", run.restore_id, "--drop-old", stdout=io.StringIO())
    assert (live / "a.txt").read_text() == "backed up" and not old.exists()


@pytest.mark.django_db
def test_what_cannot_be_promoted_is_refused(sources, tmp_path, uploads_side):
    live, _target, run = uploads_side
    backup = run.backup
    live_run = restores.start_restore(backup.backup_id, ["uploads"], confirm=True)
    with pytest.raises(CommandError, match="restored into the live stores; there is nothing to promote"):
        call_command("promote", live_run.restore_id)
    partial = side_restore(backup, "uploads", directory=str(tmp_path / "part"), paths="a.txt")
    with pytest.raises(promote.NotPromotable, match="holds only a.txt"):
        promote.promote(partial.restore_id)
    with pytest.raises(CommandError, match="not a valid restore id|No restore|does not exist|not found"):
        call_command("promote", "restore_19990101_000000")


@pytest.mark.django_db
def test_admin_buttons(uploads_side, client):
    from django.contrib.auth.models import User

    live, _target, run = uploads_side
    client.force_login(User.objects.create_superuser("boss", "", "pw"))
    page = client.get(reverse("admin:backups_app_restore_change", args=[run.pk])).content.decode()
    assert 'value="promote"' in page and 'value="undo"' not in page
    url = reverse("admin:backups_app_restore_promote", args=[run.pk])
    assert client.get(url).status_code == 405
    done = client.post(url, {"action": "promote"})
    assert done.status_code == 302 and (live / "a.txt").read_text() == "backed up"
    page = client.get(reverse("admin:backups_app_restore_change", args=[run.pk])).content.decode()
    assert 'value="undo"' in page and 'value="drop_old"' in page and 'value="promote"' not in page
    client.post(url, {"action": "undo"})
    assert (live / "a.txt").read_text() == "live"
    assert AuditEvent.objects.get(action="restore.undo").username == "boss"
    live_run = restores.start_restore(run.backup.backup_id, ["uploads"], confirm=True)  # nothing to promote
    page = client.get(reverse("admin:backups_app_restore_change", args=[live_run.pk])).content.decode()
    assert live_run.status == RunStatus.COMPLETED and 'value="promote"' not in page


@pytest.mark.django_db
def test_admin_promote_needs_the_restore_permission(uploads_side, client):
    from django.contrib.auth.models import Permission, User

    live, _target, run = uploads_side
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_restore"))
    client.force_login(viewer)
    page = client.get(reverse("admin:backups_app_restore_change", args=[run.pk]))
    assert page.status_code == 200 and 'value="promote"' not in page.content.decode()
    refused = client.post(reverse("admin:backups_app_restore_promote", args=[run.pk]), {"action": "promote"})
    assert refused.status_code == 403 and (live / "a.txt").read_text() == "live"
    assert promote.promotion(run) == {} and not AuditEvent.objects.filter(action="restore.promote").exists()


@pytest.mark.django_db
def test_qdrant_server_switches_aliases_in_one_request(sources):
    from tests.components import qdrant_openapi
    from tests.components.fake_qdrant import FakeQdrant

    fake = FakeQdrant()
    try:
        fake.add("docs", points=40, size=2048, seed=1)
        fake.add("notes", points=3, size=1024, seed=2)
        fake.aliases.update({"docs_live": "docs", "notes_live": "notes", "other": "notes"})
        sources(qdrant=(ENGINES["qdrant"], {"url": fake.url}))
        run = side_restore(backups.create_backup(["qdrant"]), "qdrant", suffix="_restored")
        before = len(fake.requests)
        promote.promote(run.restore_id)
        changes = [r for r in fake.requests[before:] if r[:2] == ("POST", "/collections/aliases")]
        assert len(changes) == 1  # one atomic alias change for every alias
        assert fake.aliases == {"docs_live": "docs_restored", "notes_live": "notes_restored",
                                "other": "notes_restored"}
        promote.promote(run.restore_id, undo=True)
        assert fake.aliases == {"docs_live": "docs", "notes_live": "notes", "other": "notes"}
        assert qdrant_openapi.problems(fake.requests) == []
    finally:
        fake.close()


@pytest.mark.django_db
def test_sqlite_file_swapped_with_its_wal_folded_in(sources, tmp_path):
    import sqlite3
    from contextlib import closing

    live = tmp_path / "data" / "app.sqlite3"
    live.parent.mkdir()
    with closing(sqlite3.connect(live)) as conn, conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.execute("INSERT INTO t VALUES ('backed up')")
    sources(sqlite=(ENGINES["sqlite"], {"paths": [str(live)]}))
    backup = backups.create_backup(["sqlite"])
    writer = sqlite3.connect(live)  # open: its change stays in the WAL until the promotion starts
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("INSERT INTO t VALUES ('live only')")
    writer.commit()
    assert (live.parent / "app.sqlite3-wal").stat().st_size > 0
    run = side_restore(backup, "sqlite", directory=str(tmp_path / "side"))

    def rows(path):
        with closing(sqlite3.connect(path)) as conn:
            return [r[0] for r in conn.execute("SELECT x FROM t ORDER BY rowid")]

    promote.promote(run.restore_id)
    old = live.parent / f"app.sqlite3.replaced-{run.restore_id}"
    assert rows(live) == ["backed up"] and rows(old) == ["backed up", "live only"]  # in the file itself
    writer.close()
    promote.promote(run.restore_id, undo=True)
    assert rows(live) == ["backed up", "live only"] and rows(tmp_path / "side" / "app.sqlite3") == ["backed up"]


@pytest.mark.django_db
def test_chroma_folder_promoted(sources, tmp_path):
    from tests.components import test_chroma as chroma

    path = tmp_path / "chroma"
    chroma.fill(chroma.persistent(path))
    chroma.release()
    sources(chroma=(ENGINES["chroma"], {"path": str(path)}))
    backup = backups.create_backup(["chroma"])
    client = chroma.persistent(path)
    client.delete_collection("notes")
    chroma.release()
    run = side_restore(backup, "chroma", directory=str(tmp_path / "chroma-restored"))
    promote.promote(run.restore_id, drop_old=True)
    assert sorted(c.name for c in chroma.persistent(path).list_collections()) == ["docs", "notes"]
    chroma.release()
    assert not (tmp_path / f"chroma.replaced-{run.restore_id}").exists()
