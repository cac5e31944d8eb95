"""Verifying stored backups, with the result kept as a Verification row.

Quick: every artifact streamed through SHA-256 against the manifest.
Deep (restore rehearsal): every component restored into a scratch target by its ``rehearse()``
(temporary database, folder or file), the counts compared with the manifest's, the scratch target
dropped, and the time each restore took recorded: the real RTO. Live data is never touched.
A component without a rehearsal is not failed: its artifacts get the quick check and a note.
"""

import time

from backups_app import components
from backups_app.errors import InvalidSet, NotFound, UnknownComponent
from backups_app.models import RunStatus, Trigger, Verification
from backups_app.redaction import mask
from backups_app.services import audit
from backups_app.services.backups import get_backup, open_reader
from backups_app.services.queueing import enqueue
from backups_app.services.recorder import error_text, execute
from backups_app.services.restores import count_differences


def verify(backup_id, deep=False, trigger=Trigger.CLI, user=None, request=None, run_async=False):
    """Verify now (or enqueue it for the worker); returns the Verification, whose ``status`` is
    completed when it passed."""
    backup = get_backup(backup_id)
    kind = Verification.Kind.DEEP if deep else Verification.Kind.QUICK
    verification = Verification.objects.create(
        backup=backup, source_backup_id=backup.backup_id, kind=kind, trigger=trigger, created_by=user,
        components=list(backup.manifest.get("components", {})),
    )
    audit.record(f"backup.verify.{kind}", user=user, request=request, target=backup.backup_id)
    if run_async:
        enqueue("backups_app.tasks.run_verification", verification, f"verify-{backup.backup_id}")
    else:
        run_verification(verification.pk)
        verification.refresh_from_db()
    return verification


def quick_check(backup_id, trigger, user=None, request=None):
    """A recorded and audited quick verification, in the shape the API and the admin show:
    ``{"backup_id", "ok", "artifacts": {name: None | why it failed}}``."""
    verification = verify(backup_id, trigger=trigger, user=user, request=request)
    if verification.status == RunStatus.FAILED and not verification.results:
        raise InvalidSet(verification.error)  # the set could not be read at all (recorded as failed, too)
    return {"backup_id": verification.source_backup_id, "ok": verification.status == RunStatus.COMPLETED,
            "artifacts": {name: result.get("error") for name, result in verification.results.items()}}


def run_verification(pk):
    return execute(Verification, pk, _verify)


def _verify(verification, recorder):
    if verification.backup is None:
        raise NotFound(f"Backup {verification.source_backup_id} was deleted before it could be verified.")
    reader = open_reader(verification.backup)
    if verification.kind == Verification.Kind.DEEP:
        problems = _rehearse(verification, reader, recorder)
    else:
        problems = _checksums(verification, reader, reader.names())
    verification.save(update_fields=["results"])
    if problems:
        recorder.finish(RunStatus.FAILED, "; ".join(problems))


def _checksums(verification, reader, names):
    errors = reader.verify(sorted(names))
    errors = {name: error and mask(error) for name, error in errors.items()}
    verification.results.update({name: {"ok": error is None, "error": error} for name, error in errors.items()})
    return [f"{name}: {error}" for name, error in errors.items() if error]


def _rehearse(verification, reader, recorder):
    problems = []
    for name in verification.components:
        recorder.progress(name, "running")
        artifacts = reader.artifacts_of(name)
        expected = reader.facts_of(name).get("counts", {})
        result = {"ok": False, "expected": expected}
        started = time.monotonic()
        try:
            component = components.get_component(name)
            result["counts"] = component.rehearse(reader, artifacts, recorder.log)
            result["seconds"] = round(time.monotonic() - started, 3)
            mismatches = count_differences(name, expected, result["counts"], "in the backup", "restored")
            result["ok"] = not mismatches
            if mismatches:
                result["error"] = "counts differ from the manifest: " + ", ".join(mismatches)
        except (NotImplementedError, UnknownComponent) as exc:
            why = (f"{name} is not configured here" if isinstance(exc, UnknownComponent)
                   else f"{type(component).__name__} has no restore rehearsal yet")
            checks = reader.verify(artifacts)
            failed = [f"{a}: {mask(e)}" for a, e in checks.items() if e]
            result.update(ok=not failed, skipped=True, error="; ".join(failed),
                          note=f"not rehearsed ({why}); its artifacts' checksums were verified instead")
        except Exception as exc:
            result.update(seconds=round(time.monotonic() - started, 3), error=error_text(exc))
        verification.results[name] = result
        recorder.progress(name, "skipped" if result.get("skipped") else ("done" if result["ok"] else "failed"))
        recorder.log(f"{name}: " + (result.get("note") or ("ok" if result["ok"] else result["error"]))
                     + (f" (restored in {result['seconds']} s)" if "seconds" in result else ""))
        if not result["ok"]:
            problems.append(f"{name}: {result['error']}")
    return problems


def latest(kind=None):
    """The newest finished verification (of ``kind``), or None."""
    finished = Verification.objects.filter(status__in=[RunStatus.COMPLETED, RunStatus.FAILED])
    return (finished.filter(kind=kind) if kind else finished).first()
