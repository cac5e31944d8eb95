"""Verifying stored backups, with the result kept as a Verification row.

Quick: every artifact streamed through SHA-256 against the manifest.
Deep (restore rehearsal): every component restored into a scratch target by its ``rehearse()``
(temporary database, folder or file), the counts compared with the manifest's, the scratch target
dropped, and the time each restore took recorded: the real RTO. Live data is never touched.
A component without a rehearsal is not failed: its artifacts get the quick check and a note.
Vector stores also run the backup's probes against the scratch target (backups_app/probes.py):
recall@10 per collection under ``probes``, and a probe below BACKUP_PROBE_MIN_RECALL fails it.

After a restore (``check_restore``) the same probes run against what it wrote, and
BACKUP_PROBE_COMMAND if set; that is recorded as a deep Verification triggered by the restore.
"""

import time

from django.utils import timezone

from backups_app import components, probes
from backups_app.errors import InvalidSet, NotFound, UnknownComponent
from backups_app.models import RunStatus, Trigger, Verification
from backups_app.redaction import mask
from backups_app.services import audit, progress
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
        progress.start_reading(recorder, reader, name)
        artifacts = reader.artifacts_of(name)
        expected = reader.facts_of(name).get("counts", {})
        result = {"ok": False, "expected": expected}
        started = time.monotonic()
        try:
            component = components.get_component(name)
            component.rehearsal_probes = None
            result["counts"] = component.rehearse(reader, artifacts, recorder.log)
            result["seconds"] = round(time.monotonic() - started, 3)
            mismatches = count_differences(name, expected, result["counts"], "in the backup", "restored")
            failed = _add_probes(result, reader.facts_of(name), component.rehearsal_probes)
            result["ok"] = not mismatches and not failed
            errors = ["counts differ from the manifest: " + ", ".join(mismatches)] if mismatches else []
            if errors or failed:
                result["error"] = "; ".join(errors + failed)
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


def _add_probes(result, facts, found):
    """Put the probes' results (``probes.check()``'s) into a component's ``result``; their failures."""
    if found:
        result["probes"] = found
    if facts.get("probes_error"):
        result["note"] = f"no probes: the backup could not record them ({facts['probes_error']})"
    return probes.problems(found or {})


def check_restore(restore, recorder, names, targets=None):
    """After ``restore`` wrote ``names``: the backup's probes run against what it wrote (the live
    stores, or ``targets`` {name: target} for side-by-side ones, see ``probes.check_probes``), then
    BACKUP_PROBE_COMMAND. Recorded as a deep Verification triggered by the restore, with the live
    counts and the restore's time so far (its RTO). Returns the problems ([] when all passed, and
    when the backup recorded no probes and no command is set: then nothing is recorded)."""
    targets = targets or {}
    facts = {name: restore.backup.manifest.get("components", {}).get(name, {}) for name in names}
    probed = [name for name in names if facts[name].get("probes")]
    if not probed and not probes.probe_command():
        return []
    started = timezone.now()
    verification = Verification.objects.create(
        backup=restore.backup, source_backup_id=restore.source_backup_id, kind=Verification.Kind.DEEP,
        trigger=Trigger.RESTORE, created_by=restore.created_by, components=probed, status=RunStatus.IN_PROGRESS,
        started_at=started)
    problems, lines = [], [f"checking what {restore.restore_id} restored"]

    def log(text):
        lines.append(text)
        recorder.log(text)

    seconds = round((started - restore.started_at).total_seconds(), 3) if restore.started_at else None
    for name in probed:
        result = {"ok": False, "restore_id": restore.restore_id, "expected": facts[name].get("counts", {}),
                  "seconds": seconds}
        try:
            component = components.get_component(name)
            if name not in targets:
                result["counts"] = component.inspect()
            found = probes.check_probes(component, facts[name], targets.get(name), log)
            failed = _add_probes(result, facts[name], found)
            result["ok"] = not failed
            if failed:
                result["error"] = "; ".join(failed)
        except Exception as exc:
            result["error"] = error_text(exc)
        if not result["ok"]:
            problems.append(f"{name}: {result['error']}")
        verification.results[name] = result
    command = probes.run_probe_command(
        [(components.get_component(name), targets.get(name)) for name in names],
        {"BACKUP_ID": restore.source_backup_id, "BACKUP_RESTORE_ID": restore.restore_id,
         "BACKUP_COMPONENTS": ",".join(names)}, log)
    if command is not None:
        verification.results["probe_command"] = command
        if not command["ok"]:
            status = command["exit_status"]
            problems.append(f"BACKUP_PROBE_COMMAND {'did not finish' if status is None else f'exited with {status}'}: "
                            f"{command['output'].strip()[-300:]}")
    verification.status = RunStatus.FAILED if problems else RunStatus.COMPLETED
    verification.error = mask("; ".join(problems))
    verification.finished_at = timezone.now()
    verification.log = "\n".join(lines) + "\n"
    verification.save()
    return problems


def as_dict(verification):
    """A verification as the API and ``verifybackup --json`` give it: per component its result, with
    ``recall`` {collection: recall@10} beside counts and seconds (the RTO)."""
    results = {}
    for name, result in verification.results.items():
        shown = dict(result)
        if "probes" in result:
            shown["recall"] = {collection: r["recall"] for collection, r in result["probes"].items()}
        results[name] = shown
    return {"backup_id": verification.source_backup_id, "kind": verification.kind, "status": verification.status,
            "ok": verification.status == RunStatus.COMPLETED, "trigger": verification.trigger,
            "started_at": verification.started_at and verification.started_at.isoformat(),
            "finished_at": verification.finished_at and verification.finished_at.isoformat(),
            "error": verification.error, "results": results}


def recall_text(result):
    """"probe recall@10 docs 1.00, notes 0.80" for a component's result, "" without probes."""
    found = result.get("probes") or {}
    shown = [f"{c} {'n/a' if r['recall'] is None else format(r['recall'], '.2f')}" for c, r in found.items()]
    return f"probe recall@{probes.LIMIT} " + ", ".join(shown) if shown else ""


def of_restore(restore):
    """The check ``check_restore`` recorded after ``restore`` (None when it recorded none). Restores
    run one at a time, so it is the one the restore's backup got while the restore ran."""
    if restore.backup is None or restore.started_at is None:
        return None
    found = Verification.objects.filter(backup=restore.backup, trigger=Trigger.RESTORE,
                                        created_at__gte=restore.started_at)
    if restore.finished_at:
        found = found.filter(created_at__lte=restore.finished_at)
    return found.order_by("created_at", "id").first()


def of_backup(backup_id):
    """The verifications of one backup, newest first."""
    return get_backup(backup_id).verifications.all()


def last_rehearsal(backup):
    """The backup's newest finished restore rehearsal (not a check after a restore), or None."""
    return (backup.verifications.filter(kind=Verification.Kind.DEEP, status__in=[RunStatus.COMPLETED, RunStatus.FAILED])
            .exclude(trigger=Trigger.RESTORE).first())


def restore_seconds(rehearsal):
    """The RTO a rehearsal measured: its components' restore times together (None: none timed)."""
    timed = [result["seconds"] for result in rehearsal.results.values() if result.get("seconds") is not None]
    return round(sum(timed), 3) if timed else None


def latest(kind=None):
    """The newest finished verification (of ``kind``), or None."""
    finished = Verification.objects.filter(status__in=[RunStatus.COMPLETED, RunStatus.FAILED])
    return (finished.filter(kind=kind) if kind else finished).first()
