"""Hostile input, generated: API bodies of the wrong types, shapes, media types and sizes, ids and
query values of any text, command-line arguments, and stored sets whose metadata.json was broken or
whose files were all replaced. Every one must be refused with readable text (``{error, detail}`` in
the API, a CommandError on the command line) that names no Python exception, none answers 5xx, and
the live data is never touched. ``test_zz_the_figures`` prints how many inputs were sent."""

import hashlib
import io
import json
import re
from collections import Counter
from urllib.parse import quote, urlencode

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from backups_app.models import OperationLock, Restore, Verification
from backups_app.services import backups
from tests import stacks

pytestmark = pytest.mark.django_db
API = "/api/system"
# What a person must never be shown: a Python exception's name or the wording of its message.
PYTHON_TALK = re.compile(r"Traceback|\b[A-Z]\w*(?:Error|Exception)\b|'\w+' object|NoneType|object has no attribute")
FIGURES = Counter()
EXAMPLES = hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                             HealthCheck.too_slow])


def readable(text):
    assert text.strip() and not PYTHON_TALK.search(text), text
    return text


def answered(response, surface):
    """The API's answer to one hostile input: never 5xx; a refusal is {error, detail} in words."""
    FIGURES["inputs"] += 1
    FIGURES[f"inputs: {surface}"] += 1
    assert response.status_code < 500, (surface, response.status_code, response.content[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) >= {"error", "detail"} and body["error"], body
        readable(body["detail"])
        FIGURES["refused"] += 1
        return body
    FIGURES["accepted (valid after all)"] += 1
    return None


def run_command(surface, *args):
    """One command line: it succeeds, or stops with a CommandError whose one line is readable."""
    FIGURES["inputs"] += 1
    FIGURES[f"inputs: {surface}"] += 1
    try:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO())
    except CommandError as exc:
        FIGURES["refused"] += 1
        return readable(str(exc))
    FIGURES["accepted (valid after all)"] += 1
    return None


@pytest.fixture
def stack(sources, tmp_path, admin_api):
    """The demo uploads and SQLite sources with one completed backup; returns (api, backup, live files)."""
    root = tmp_path / "stack"
    sources(**stacks.files_stack(root))
    backup = backups.create_backup()
    return admin_api, backup, root


@pytest.fixture
def superuser_client(client, stack):
    """The admin, logged in as the superuser whose token the API client holds."""
    client.force_login(User.objects.get(username="root"))
    return client


def live_state(root):
    return sorted((p.relative_to(root).as_posix(), p.read_bytes()) for p in root.rglob("*") if p.is_file())


def forget_runs():
    """A hostile body that happened to be valid queues a restore: drop it, so the next one is judged alone."""
    Restore.objects.all().delete()
    OperationLock.objects.all().delete()


# --- API bodies ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)
hostile_values = st.sampled_from(
    ["true", "false", "yes", "no", 1, 0, 0.0, 1.5, None, "", [], {}, [True], "postgres", "uploads,sqlite",
     ["../etc"], ["uploads", "uploads"], [""], "../../etc/passwd", "backup_20260101_000000\n", "\x00",
     "x" * 5000, {"uploads": "x"}, {"uploads": {"x": 1}}, {"sqlite": {"mode": ["a"]}}]) | json_values
RESTORE_FIELDS = ["backup_id", "confirm", "dry_run", "components", "options", "confim", "__proto__"]
BACKUP_FIELDS = ["components", "include_uploads", "description", "wait"]


@EXAMPLES
@given(st.dictionaries(st.sampled_from(RESTORE_FIELDS), hostile_values, min_size=1, max_size=3))
def test_hostile_restore_bodies(stack, changes):
    api, backup, root = stack
    before = live_state(root)
    body = {"backup_id": backup.backup_id, "dry_run": True, **changes}
    answered(api.post(f"{API}/restore", body, content_type="application/json"), "restore body")
    forget_runs()
    assert live_state(root) == before


@EXAMPLES
@given(st.dictionaries(st.sampled_from(BACKUP_FIELDS), hostile_values, min_size=1, max_size=3))
def test_hostile_backup_bodies(stack, body):
    api = stack[0]
    answered(api.post(f"{API}/backup", body, content_type="application/json"), "backup body")


@EXAMPLES
@given(st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                        "application/xml", "application/json; charset=utf-8", "application/json", ""]),
       st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_hostile_media_types_and_raw_bodies(stack, content_type, raw):
    api = stack[0]
    for path in ("/restore", "/backup"):
        body = answered(api.generic("POST", f"{API}{path}", raw, content_type=content_type), "raw body")
        if raw and not content_type.startswith("application/json"):  # (no body at all: 422, the body is missing)
            assert body["error"] == "unsupported_media_type" and "Content-Type: application/json" in body["detail"]


@pytest.mark.parametrize("value", ["true", 1, "yes", 0, "false", 0.0, None, []])
@pytest.mark.parametrize("field", ["confirm", "dry_run"])
def test_booleans_must_be_json_booleans(stack, field, value):
    api, backup, _root = stack
    body = answered(api.post(f"{API}/restore", {"backup_id": backup.backup_id, field: value},
                             content_type="application/json"), "restore body")
    assert body["error"] == "validation_error"
    assert body["detail"].startswith(f"{field}: Input should be a valid boolean")
    assert not Restore.objects.exists()


@pytest.mark.parametrize("path, body, field", [
    ("/restore", {"backup_id": "backup_20260101_000000", "components": "postgres"}, "components"),
    ("/backup", {"components": "uploads"}, "components"),
    ("/backup", {"components": ["uploads", 1]}, "components.1"),
    ("/backup", {"include_uploads": "false"}, "include_uploads"),
    ("/backup", {"description": 5}, "description"),
])
def test_lists_and_strings_must_be_their_json_types(stack, path, body, field):
    answer = answered(stack[0].post(f"{API}{path}", body, content_type="application/json"), "typed body")
    assert answer["error"] == "validation_error" and answer["detail"].startswith(f"{field}: ")


def test_bodies_over_the_limit_and_not_json_have_the_api_shape(stack, settings):
    api = stack[0]
    big = json.dumps({"description": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    body = answered(api.post(f"{API}/backup", big, content_type="application/json"), "raw body")
    assert body["error"] == "too_large" and "larger than 1048576 bytes" in body["detail"]
    body = answered(api.post(f"{API}/restore", "{\"backup_id\": ", content_type="application/json"), "raw body")
    assert body["error"] == "bad_request" and body["detail"].startswith("The body is not valid JSON")
    body = answered(api.post(f"{API}/restore", "[" * 100_000, content_type="application/json"), "raw body")
    assert body["error"] == "bad_request"
    body = answered(api.post(f"{API}/restore", "backup_id=x", content_type="text/plain"), "raw body")
    assert body["error"] == "unsupported_media_type" and "'text/plain'" in body["detail"]


# --- Ids and query values ------------------------------------------------------------------------

segments = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40).filter(
    lambda s: "/" not in s and s not in (".", ".."))


@EXAMPLES
@given(segments, st.text(max_size=30))
def test_hostile_ids_and_artifact_names(stack, text, artifact):
    api = stack[0]
    segment = quote(text, safe="")
    for method, path in [("GET", f"/backup/{segment}"), ("GET", f"/backup/{segment}/download"),
                         ("DELETE", f"/backup/{segment}"), ("POST", f"/backup/{segment}/pin"),
                         ("POST", f"/backup/{segment}/verify"), ("GET", f"/restore/{segment}"),
                         ("GET", f"/backup/{stack[1].backup_id}/download?{urlencode({'artifact': artifact})}")]:
        answered(api.generic(method, f"{API}{path}"), "id or artifact")
    assert stack[1].backup_id in {b.backup_id for b in backups.list_backups()[0]}


@EXAMPLES
@given(st.dictionaries(st.sampled_from(["limit", "offset", "status", "wait"]), st.text(max_size=12), max_size=3))
def test_hostile_query_values(stack, query):
    answered(stack[0].get(f"{API}/backups?{urlencode(query)}"), "query")


# --- Command lines ---------------------------------------------------------------------------------

# Words that start with "-" only from this list: argparse reads "-h", "--he" or "--vers" as asking for help or
# the version, which print and exit 0 as they should.
cli_words = st.sampled_from(["latest", "backup_2026", "../x", "", "uploads", "nope", "uploads,,sqlite", "sqlite.x=1",
                             "uploads.mode", "=", "--yes", "--json"]) | st.text(max_size=15).filter(
    lambda w: not w.startswith("-"))


@EXAMPLES
@given(cli_words, cli_words, cli_words)
def test_hostile_command_lines(stack, first, second, third):
    _api, backup, root = stack
    before = live_state(root)
    run_command("command line", "verifybackup", first)
    run_command("command line", "restore", backup.backup_id, "--dry-run", "--components", second, "--set", third)
    run_command("command line", "restore", first, "--components", second)  # no --yes: never restores
    run_command("command line", "backup", "--async", "--components", f"{second},{third}")
    run_command("command line", "listbackups", first)
    assert live_state(root) == before


# --- Stored sets: a broken metadata.json, or every file replaced ------------------------------

def manifest_path(storage_dir, backup):
    return storage_dir / backup.backup_id / "metadata.json"


def first_artifact(manifest):
    return sorted(manifest["artifacts"])[0]


# name -> change(manifest, name of its first artifact) -> the stored metadata.json
MALFORMED = {
    "a list": lambda m, a: [m],
    "null": lambda m, a: None,
    "without components": lambda m, a: {k: v for k, v in m.items() if k != "components"},
    "without artifacts": lambda m, a: {k: v for k, v in m.items() if k != "artifacts"},
    "artifacts a list": lambda m, a: {**m, "artifacts": list(m["artifacts"])},
    "an artifact without sha256": lambda m, a: set_in(m, ["artifacts", a], without_key(m["artifacts"][a], "sha256")),
    "a sha256 that is not 64 hex": lambda m, a: set_in(m, ["artifacts", a, "sha256"], "abc123"),
    "a sha256 in capitals": lambda m, a: set_in(m, ["artifacts", a, "sha256"], m["artifacts"][a]["sha256"].upper()),
    "a file with a slash": lambda m, a: set_in(m, ["artifacts", a, "file"], "sub/" + a),
    "a file with ..": lambda m, a: set_in(m, ["artifacts", a, "file"], "../" + a),
    "an absolute file": lambda m, a: set_in(m, ["artifacts", a, "file"], "/etc/passwd"),
    "an artifact name with ..": lambda m, a: set_in(m, ["artifacts"], {"..": m["artifacts"][a]}),
    "a size that is text": lambda m, a: set_in(m, ["artifacts", a, "size"], "12"),
    "an artifact of no component": lambda m, a: set_in(m, ["artifacts", a, "component"], "ghost"),
    "a component that is a list": lambda m, a: set_in(m, ["artifacts", a, "component"], ["sqlite"]),
    "a component naming an unknown artifact": lambda m, a: set_in(m, ["components", "sqlite", "artifacts"],
                                                                 ["ghost.bin"]),
    "counts that are a list": lambda m, a: set_in(m, ["components", "sqlite", "counts"], [1, 2]),
    "a component that is text": lambda m, a: set_in(m, ["components", "sqlite"], "sqlite"),
}


def set_in(value, path, new):
    value = json.loads(json.dumps(value))
    target = value
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return value


def without_key(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


def every_surface(api, backup, surface):
    """The plan, the restore, verify and download of ``backup`` through the API, and the commands."""
    bid = backup.backup_id
    refusals = [answered(api.post(f"{API}/restore", {"backup_id": bid, "dry_run": True},
                                  content_type="application/json"), surface),
                answered(api.post(f"{API}/restore", {"backup_id": bid, "confirm": True},
                                  content_type="application/json"), surface),
                answered(api.post(f"{API}/backup/{bid}/verify"), surface),
                answered(api.get(f"{API}/backup/{bid}/download"), surface),
                answered(api.get(f"{API}/backup/{bid}/download?artifact=sqlite_app.db"), surface)]
    lines = [run_command(surface, "verifybackup", bid), run_command(surface, "restore", bid, "--dry-run"),
             run_command(surface, "restore", bid, "--yes")]
    forget_runs()
    return refusals, lines


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_metadata_json_is_refused_everywhere(stack, backup_storage_dir, case):
    api, backup, root = stack
    before = live_state(root)
    path = manifest_path(backup_storage_dir, backup)
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(MALFORMED[case](manifest, first_artifact(manifest))))
    refusals, lines = every_surface(api, backup, "malformed metadata.json")
    for refusal in refusals:
        assert refusal is not None and refusal["error"] == "invalid_set", refusal
        assert f"Backup {backup.backup_id}: its metadata.json is malformed (" in refusal["detail"]
        assert "Restore another backup, or the set's offsite copy." in refusal["detail"]
    assert all(line and "metadata.json is malformed" in line and "\n" not in line for line in lines), lines
    assert live_state(root) == before
    assert not Restore.objects.exists()
    # The failed quick check is on record: the backup is damaged now.
    assert backups.get_backup(backup.backup_id).damaged


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe\x00", b"[" * 100_000, b'"metadata"', b"1e999"])
def test_a_metadata_json_that_is_not_json_at_all_is_refused(stack, backup_storage_dir, raw):
    api, backup, root = stack
    manifest_path(backup_storage_dir, backup).write_bytes(raw)
    refusals, lines = every_surface(api, backup, "malformed metadata.json")
    assert all(r["error"] == "invalid_set" and "metadata.json is malformed" in r["detail"] for r in refusals)
    assert all(line for line in lines)


@EXAMPLES
@given(st.data(), json_values)
def test_generated_edits_of_metadata_json(stack, backup_storage_dir, data, value):
    """Any value put anywhere in metadata.json: refused readably, or harmless; never a 5xx or a traceback."""
    api, backup, root = stack
    before = live_state(root)
    path = manifest_path(backup_storage_dir, backup)
    original = path.read_bytes()
    manifest = target = json.loads(original)
    where = []
    while isinstance(target, dict) and target:
        where.append(data.draw(st.sampled_from(sorted(target))))
        target = target[where[-1]]
        if data.draw(st.booleans()):
            break
    path.write_text(json.dumps(set_in(manifest, where, value)))
    try:
        every_surface(api, backup, "edited metadata.json")
    finally:
        path.write_bytes(original)
        Verification.objects.all().delete()
    assert live_state(root) == before


def replace_everything(storage_dir, backup, name, data):
    """What someone with write access to the storage could do: a new artifact, with SHA256SUMS and
    metadata.json rewritten to match it, so every stored checksum agrees."""
    folder = storage_dir / backup.backup_id
    manifest = json.loads((folder / "metadata.json").read_text())
    meta = manifest["artifacts"][name]
    (folder / meta["file"]).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    meta.update(sha256=digest, size=len(data), plaintext_sha256=digest, plaintext_size=len(data))
    (folder / "SHA256SUMS").write_text("".join(f"{m['sha256']}  {m['file']}\n"
                                               for m in sorted(manifest["artifacts"].values(),
                                                               key=lambda m: m["file"])))
    (folder / "metadata.json").write_text(json.dumps(manifest))


def test_a_set_whose_files_and_checksums_were_all_replaced_is_caught(stack, backup_storage_dir, superuser_client):
    api, backup, root = stack
    before = live_state(root)
    planted = (root / "app.sqlite3").read_bytes().replace(b"note 0", b"evil 0")
    replace_everything(backup_storage_dir, backup, "sqlite_app.db", planted)

    result = api.post(f"{API}/backup/{backup.backup_id}/verify").json()
    assert result["ok"] is False and set(k for k, v in result["artifacts"].items() if v) == {"sqlite_app.db"}
    assert "has a different plaintext_sha256, sha256 in its stored metadata.json than the catalog recorded when " \
           "the backup was taken: the stored set was changed" in result["artifacts"]["sqlite_app.db"]
    plan = api.post(f"{API}/restore", {"backup_id": backup.backup_id, "dry_run": True},
                    content_type="application/json").json()
    assert plan["ok"] is False and any("sqlite_app.db" in r for r in plan["problems"])
    refusals, lines = every_surface(api, backup, "replaced set")
    assert [r["error"] for r in refusals[1:2] + refusals[3:]] == ["invalid_set"] * 3
    assert all("Artifact sqlite_app.db of " in line for line in lines), lines

    page = superuser_client.post(reverse("admin:backups_app_backup_restore", args=[backup.backup_id]),
                                 {"components": ["sqlite"]}).content.decode()
    assert "Artifact sqlite_app.db of" in page and "the stored set was changed" in page
    page = superuser_client.get(reverse("admin:backups_app_backup_download", args=[backup.backup_id]),
                                follow=True).content.decode()
    assert "the stored set was changed after it was written" in page
    listing = superuser_client.get(reverse("admin:backups_app_backup_changelist")).content.decode()
    assert 'class="backup-damaged"' in listing
    assert live_state(root) == before and not Restore.objects.exists()


def test_the_admin_refuses_a_malformed_set_with_a_message(stack, backup_storage_dir, superuser_client):
    _api, backup, root = stack
    before = live_state(root)
    manifest_path(backup_storage_dir, backup).write_text("[]")
    expected = f"Backup {backup.backup_id}: its metadata.json is malformed (a JSON array, not an object)"
    restore_page = reverse("admin:backups_app_backup_restore", args=[backup.backup_id])
    for response in [
        superuser_client.post(restore_page, {"components": ["sqlite", "uploads"]}),
        superuser_client.post(reverse("admin:backups_app_backup_restore_confirm", args=[backup.backup_id]),
                              {"components": ["sqlite"], "confirmation": backup.backup_id}, follow=True),
        superuser_client.post(reverse("admin:backups_app_backup_changelist"),
                              {"action": "verify_selected", "index": 0, "_selected_action": [backup.pk]}, follow=True),
        superuser_client.get(reverse("admin:backups_app_backup_download", args=[backup.backup_id]), follow=True),
    ]:
        FIGURES["inputs"] += 1
        FIGURES["inputs: admin"] += 1
        page = response.content.decode()
        assert response.status_code == 200 and expected in page, page[-3000:]
        assert not PYTHON_TALK.search(page)
        FIGURES["refused"] += 1
    detail = superuser_client.get(reverse("admin:backups_app_backup_change", args=[backup.pk])).content.decode()
    assert 'class="backup-damaged"' in detail and "the latest verification failed" in detail
    assert live_state(root) == before and not Restore.objects.exists()


def test_zz_the_figures(capsys):
    """The closing note's figures (run with -s to see them, or read them from the junit/pytest -rA output)."""
    with capsys.disabled():
        print("\nhostile inputs:", dict(sorted(FIGURES.items())))
    assert FIGURES["inputs"] >= 300 and FIGURES["refused"] >= 250
