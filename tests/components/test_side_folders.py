"""Side-by-side restores of the folder stores into another folder (uploads/config/sqlite/chroma
.directory) and of some paths only (uploads.paths), on real folders: the live data is not touched
and no safety backup is taken; nonsense and the live folder in disguise (the same folder, one
inside it, a link to it, another source's folder) are refused."""

import os

import pytest

from backups_app import components
from backups_app.errors import InvalidOption, Unchanged
from backups_app.models import Backup, RunStatus
from backups_app.services import backups, restores
from tests.components.test_config import ENV
from tests.components.test_sqlite import dump_sqlite, make_sqlite
from tests.components.test_uploads import tree
from tests.stacks import ENGINES, uploads_source

FILES = {"docs/a.txt": "alpha", "docs/b.txt": "beta", "img/c.bin": b"\x00\x01", "top.txt": "top"}


def restore(backup, name, **options):
    return restores.start_restore(backup.backup_id, [name], {name: options}, confirm=True)


def no_safety_backup(run):
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.safety_backup is None and not Backup.objects.filter(kind=Backup.Kind.SAFETY).exists()
    assert "no safety backup needed" in run.log


@pytest.fixture
def uploads_backup(sources, tmp_path):
    """An uploads folder (FILES) backed up, then changed live. Returns (live folder, backup, live tree)."""
    live = tmp_path / "uploads"
    sources(uploads=uploads_source(live, FILES))
    backup = backups.create_backup(["uploads"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    (live / "docs" / "a.txt").write_text("changed live")
    (live / "docs" / "b.txt").unlink()
    (live / "new.txt").write_text("added live")
    return live, backup, tree(live)


@pytest.mark.django_db
def test_uploads_into_a_new_folder(uploads_backup, tmp_path):
    live, backup, now = uploads_backup
    target = tmp_path / "restored" / "uploads"
    plan = restores.plan_restore(backup.backup_id, ["uploads"], {"uploads": {"directory": str(target)}})
    assert plan["ok"], plan["problems"]
    assert plan["targets"]["uploads"] == {
        "live": False, "safety_backup": False, "target": f"the whole folder into folder {target}; the live folder "
                                                         f"{live} is not touched",
        "note": "side-by-side: the live store is not touched, so no safety backup of it is taken"}
    run = restore(backup, "uploads", directory=str(target))
    no_safety_backup(run)
    assert tree(live) == now
    assert {k: v for k, v in tree(target).items() if v is not None} == {
        k: v.encode() if isinstance(v, str) else v for k, v in FILES.items()}


@pytest.mark.django_db
def test_uploads_some_paths_into_the_live_folder(uploads_backup):
    live, backup, _now = uploads_backup
    plan = restores.plan_restore(backup.backup_id, ["uploads"], {"uploads": {"paths": "docs/b.txt,img"}})
    assert plan["ok"], plan["problems"]
    assert plan["targets"]["uploads"]["live"] is True and plan["targets"]["uploads"]["safety_backup"] is True
    (live / "img" / "c.bin").write_bytes(b"damaged")
    (live / "img" / "extra.bin").write_bytes(b"only live")
    run = restore(backup, "uploads", paths="docs/b.txt,img/")
    assert run.status == RunStatus.COMPLETED, run.error
    assert (live / "docs" / "b.txt").read_text() == "beta"  # deleted live, back
    assert (live / "img" / "c.bin").read_bytes() == b"\x00\x01"  # the folder replaced whole
    assert not (live / "img" / "extra.bin").exists()
    assert (live / "docs" / "a.txt").read_text() == "changed live"  # not selected: kept
    assert (live / "new.txt").read_text() == "added live"
    assert not [p for p in live.parent.iterdir() if p.name.startswith(".uploads.")]


@pytest.mark.django_db
def test_uploads_some_paths_into_a_new_folder(uploads_backup, tmp_path):
    live, backup, now = uploads_backup
    target = tmp_path / "picked"
    target.mkdir()  # an empty folder is fine
    run = restore(backup, "uploads", directory=str(target), paths="docs/a.txt")
    no_safety_backup(run)
    assert {k for k, v in tree(target).items() if v is not None} == {"docs/a.txt"}
    assert (target / "docs" / "a.txt").read_text() == "alpha"
    assert tree(live) == now


@pytest.mark.django_db
def test_a_path_not_in_the_backup_is_refused_in_the_plan(uploads_backup):
    _live, backup, _now = uploads_backup
    plan = restores.plan_restore(backup.backup_id, ["uploads"], {"uploads": {"paths": "docs/a.txt,new.txt"}})
    assert not plan["ok"]
    assert any("uploads.paths: new.txt is not in uploads.tar.zst" in p for p in plan["refusals"])


@pytest.mark.django_db
def test_a_folder_that_is_not_empty_is_refused_and_kept(uploads_backup, tmp_path):
    _live, backup, _now = uploads_backup
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    plan = restores.plan_restore(backup.backup_id, ["uploads"], {"uploads": {"directory": str(target)}})
    assert not plan["ok"] and any(f"{target} is not empty" in p for p in plan["refusals"])
    run = restore(backup, "uploads", directory=str(target))
    assert run.status == RunStatus.FAILED and "refused before any change" in run.error
    # The restore checks again (the folder may have filled since the plan).
    component = components.get_component("uploads")
    reader = backups.open_reader(backup)
    with pytest.raises(Unchanged, match="is not empty"):
        component.restore(reader, reader.artifacts_of("uploads"),
                          component.parse_restore_options({"directory": str(target)}), print)
    assert tree(target) == {"keep.txt": b"mine"}


@pytest.mark.django_db
@pytest.mark.parametrize("where, message", [
    ("relative/path", "give an absolute path"),
    ("LIVE", "is LIVE, this source's live data"),
    ("LIVE/docs/restored", "lies inside LIVE, this source's live data"),
    ("LINK", "is LIVE, this source's live data"),
    ("LINK/sub", "lies inside LIVE, this source's live data"),
    ("OTHER", "source 'sqlite'"),
])
def test_the_live_folder_in_disguise_is_refused(uploads_backup, sources, tmp_path, where, message):
    live, backup, _now = uploads_backup
    other = tmp_path / "db" / "app.sqlite3"
    other.parent.mkdir()
    make_sqlite(other)
    sources(uploads=uploads_source(live, {}), sqlite=(ENGINES["sqlite"], {"paths": [str(other)]}))
    os.symlink(live, tmp_path / "link")
    where = where.replace("LIVE", str(live)).replace("LINK", str(tmp_path / "link")).replace("OTHER", str(other))
    message = message.replace("LIVE", str(live))
    with pytest.raises(InvalidOption, match=message):
        restores.plan_restore(backup.backup_id, ["uploads"], {"uploads": {"directory": where}}, verify=False)


@pytest.mark.django_db
@pytest.mark.parametrize("paths", ["../etc", "/etc/passwd", "docs/../../x", "."])
def test_paths_outside_the_folder_are_refused(uploads_backup, paths):
    _live, backup, _now = uploads_backup
    with pytest.raises(InvalidOption, match="is not a path inside the folder"):
        restore(backup, "uploads", paths=paths)


@pytest.mark.django_db
def test_config_into_a_folder_and_its_nonsense(sources, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / ".env").write_text(ENV)
    sources(config=(ENGINES["config"], {"paths": str(app / ".env")}))
    backup = backups.create_backup(["config"])
    (app / ".env").write_text("DEBUG=true\n")
    target = tmp_path / "config-then"
    run = restore(backup, "config", directory=str(target))
    no_safety_backup(run)
    assert (target / ".env").read_text() == ENV
    assert (app / ".env").read_text() == "DEBUG=true\n" and not (app / ".env.bak").exists()
    for nonsense in ({"mode": "apply"}, {"prune": "true"}):
        with pytest.raises(InvalidOption, match="config.directory writes the backup's files into that folder"):
            restore(backup, "config", directory=str(tmp_path / "x"), **nonsense)
    with pytest.raises(InvalidOption, match="this source's live data"):
        restore(backup, "config", directory=str(app / ".env"))


@pytest.mark.django_db
def test_sqlite_into_a_folder(sources, tmp_path):
    live = tmp_path / "data" / "app.sqlite3"
    live.parent.mkdir()
    make_sqlite(live)
    before = dump_sqlite(live)
    sources(sqlite=(ENGINES["sqlite"], {"paths": [str(live)]}))
    backup = backups.create_backup(["sqlite"])
    with __import__("sqlite3").connect(live) as conn:
        conn.execute("DELETE FROM chunks")
    now = dump_sqlite(live)
    target = tmp_path / "scratch"
    plan = restores.plan_restore(backup.backup_id, ["sqlite"], {"sqlite": {"directory": str(target)}})
    assert plan["targets"]["sqlite"]["target"] == f"the files as {target / 'app.sqlite3'}; the live files are not " \
                                                  "touched"
    run = restore(backup, "sqlite", directory=str(target))
    no_safety_backup(run)
    assert dump_sqlite(target / "app.sqlite3") == before
    assert dump_sqlite(live) == now

    # The same file again is refused (nothing there is replaced), and so is the live file's own folder.
    plan = restores.plan_restore(backup.backup_id, ["sqlite"], {"sqlite": {"directory": str(target)}})
    assert any("already exist" in p for p in plan["refusals"])
    with pytest.raises(InvalidOption, match="this source's live data"):
        restore(backup, "sqlite", directory=str(live.parent))


@pytest.mark.django_db
def test_chroma_folder_into_another_folder(sources, tmp_path):
    from tests.components import test_chroma as chroma

    path = tmp_path / "chroma"
    chroma.fill(chroma.persistent(path))
    before = chroma.dump(chroma.persistent(path))
    chroma.release()
    sources(chroma=(ENGINES["chroma"], {"path": str(path)}))
    backup = backups.create_backup(["chroma"])
    assert backup.status == RunStatus.COMPLETED, backup.error
    client = chroma.persistent(path)
    client.delete_collection("notes")
    chroma.release()
    target = tmp_path / "chroma-restored"
    run = restore(backup, "chroma", directory=str(target))
    no_safety_backup(run)
    chroma.assert_same(chroma.dump(chroma.persistent(target)), before)
    assert [c.name for c in chroma.persistent(path).list_collections()] == ["docs"]
    chroma.release()


@pytest.mark.django_db
def test_chroma_server_source_refuses_a_directory(sources, tmp_path):
    pytest.importorskip("chromadb")
    sources(chroma=(ENGINES["chroma"], {"host": "127.0.0.1", "port": 1}), uploads=uploads_source(tmp_path / "u", {}))
    backup = backups.create_backup(["uploads"])
    with pytest.raises(InvalidOption, match="this source is a server"):
        components.get_component("chroma").parse_restore_options({"directory": str(tmp_path / "x")})
    assert backup.status == RunStatus.COMPLETED
