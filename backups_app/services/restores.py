"""Restore with the safety rules of seed 000 §9: plan (checksums verified, live vs backup
counts), explicit confirmation, a safety backup of the selected components, apply, and automatic
rollback from the safety backup if anything fails."""

from django.conf import settings

from backups_app import components
from backups_app.archive.ids import validate_restore_id
from backups_app.archive.safetar import recover_swaps
from backups_app.archive.storage import backup_storage, describe
from backups_app.errors import (
    BackupError,
    Busy,
    ConfirmationRequired,
    InvalidOption,
    NotCompleted,
    NotFound,
    Unchanged,
    UnknownComponent,
)
from backups_app.faults import fault_point
from backups_app.models import Backup, Restore, RunStatus, Trigger
from backups_app.redaction import mask
from backups_app.services import audit, hooks, locks, progress, run_ids
from backups_app.services.backups import create_backup, find_run, get_backup, open_reader, remove_backup
from backups_app.services.queueing import enqueue
from backups_app.services.recorder import error_text, execute, heartbeat, store_error

WARNING = "This will overwrite existing data"


def _selection(backup, names):
    in_backup = list(backup.manifest.get("components", {}))
    if names is not None and not names:
        raise UnknownComponent(f"No component selected; backup {backup.backup_id} contains {', '.join(in_backup)}.")
    names = list(dict.fromkeys(names)) if names is not None else in_backup
    missing = [n for n in names if n not in in_backup]
    if missing:
        raise UnknownComponent(
            f"Backup {backup.backup_id} has no component(s) {', '.join(map(repr, missing))}; "
            f"it contains {', '.join(in_backup)}."
        )
    for name in names:
        components.get_component(name)  # configured here, or a clear UnknownComponent
    return names


def _parse_options(names, options):
    options = options or {}
    if not isinstance(options, dict):
        raise InvalidOption("options must be an object: {component: {key: value}}.")
    stray = [n for n in options if n not in names]
    if stray:
        raise UnknownComponent(f"Options given for component(s) not being restored: {', '.join(stray)}.")
    return {n: components.get_component(n).parse_restore_options(options.get(n)) for n in names}


def parse_option_assignments(items):
    """``["postgres.no_owner=true"]`` (CLI ``--set``, admin form lines) → {"postgres": {"no_owner": "true"}}"""
    options = {}
    for item in items:
        key, sep, value = item.strip().partition("=")
        component, dot, option = key.strip().partition(".")
        if not (sep and dot and component and option):
            raise InvalidOption(f"Restore option {item.strip()!r}: expected COMPONENT.KEY=VALUE.")
        options.setdefault(component, {})[option] = value.strip()
    return options


def flatten_counts(component, counts, prefix=""):
    flat = {}
    for key, value in counts.items():
        if isinstance(value, dict):
            flat.update(flatten_counts(component, value, f"{prefix}{key}."))
        else:
            flat[f"{component}.{prefix}{key}"] = value
    return flat


def plan_restore(backup_id, names=None, options=None, verify=True, counted_later=()):
    """What a restore would do, without doing it. ``verify`` streams every selected artifact
    through its checksum (the slow, thorough part). The live stores in ``counted_later`` are not
    counted: the restore's safety backup counts them (``_take_live_counts``)."""
    backup = get_backup(backup_id)
    names = _selection(backup, names)
    parsed = _parse_options(names, options)
    reader = open_reader(backup)
    selected = {n: reader.artifacts_of(n) for n in names}
    artifacts = [a for arts in selected.values() for a in arts]
    # Decrypting too proves the age identity works before anything is touched.
    checks = reader.verify(artifacts, decrypt=True) if verify else {}
    affected, live, problems, refusals, preflight = {}, {}, [], [], {}
    if any(checks.values()) and reader.copy == "primary":
        sound = _sound_offsite_reader(backup, artifacts)
        if sound is not None:
            problems += [f"primary copy: {a}: {error}" for a, error in checks.items() if error]
            problems.append("the primary copy failed verification; the verified offsite copy is used")
            reader, checks = sound, dict.fromkeys(artifacts)
    if reader.copy == "offsite":
        problems.append(f"the safety backup is written to the primary backup storage ({describe(backup_storage())}), "
                        "the storage this backup could not be read from: if it is damaged, so is the way back. "
                        "Check it before restoring.")
    for name in names:
        backup_counts, live_counts = reader.facts_of(name).get("counts", {}), {}
        try:
            if name not in counted_later:
                live_counts = components.get_component(name).inspect()
        except BackupError as exc:
            problems.append(f"{name}: cannot read live counts: {exc}")
        live[name] = {"live": live_counts, "backup": backup_counts}
        affected.update(flatten_counts(name, live_counts))
        preflight[name] = _preflight(name, reader, selected[name], parsed[name], problems)
        refusals += [f"{name}: {p}" for p in preflight[name].get("problems", [])]
    refusals += [f"{artifact}: {error}" for artifact, error in checks.items() if error]
    problems += refusals
    return {
        "backup_id": backup.backup_id,
        "components": names,
        "artifacts": {
            a: {**reader.manifest["artifacts"].get(a, {}), "verified": verify and checks.get(a) is None,
                "error": checks.get(a) and mask(checks[a])}
            for arts in selected.values() for a in arts
        },
        "counts": live,
        "preflight": preflight,
        "warning": WARNING,
        "affected": affected,
        "confirm_required": True,
        "problems": [mask(p) for p in problems],
        "refusals": [mask(p) for p in refusals],
        "copy": reader.copy,
        "targets": _targets(names, parsed),
        "ok": not refusals,
    }


def _targets(names, parsed):
    """{component: {"live": writes into the live store, "target": where else it writes or which
    part (the component's describe_target), "safety_backup": whether one is taken}} for the plan."""
    targets = {}
    for name in names:
        component = components.get_component(name)
        live = component.targets_live(parsed[name])
        targets[name] = {"live": live, "target": component.describe_target(parsed[name]),
                         "safety_backup": _writes_live(name, parsed[name])}
        if not live:
            targets[name]["note"] = "side-by-side: the live store is not touched, so no safety backup of it is taken"
    return targets


def _writes_live(name, options):
    """Whether restoring ``name`` with these parsed options changes the live store (then it needs
    a safety backup and is rolled back on failure)."""
    component = components.get_component(name)
    return component.changes_data(options) and component.targets_live(options)


def _preflight(name, reader, artifacts, options, problems):
    """The component's own checks (``Component.preflight``); a check that cannot run is reported
    like unreadable live counts, without refusing (the restore itself will say what is wrong)."""
    try:
        return components.get_component(name).preflight(reader, artifacts, options)
    except BackupError as exc:
        problems.append(f"{name}: cannot check the live store before restoring: {exc}")
        return {}


def _sound_offsite_reader(backup, artifacts):
    """A reader over the offsite copy if it exists and ``artifacts`` pass verification there."""
    try:
        reader = open_reader(backup, copy="offsite")
        if not any(reader.verify(artifacts, decrypt=True).values()):
            return reader
    except BackupError:
        pass
    return None


def start_restore(backup_id, names=None, options=None, confirm=False, trigger=Trigger.CLI, user=None,
                  run_async=False, request=None):
    """Validate, require confirmation, take the lock and run (or enqueue) the restore, audited as
    ``restore.start`` with ``user``/``request``. Without ``confirm`` raises ConfirmationRequired
    carrying the plan (counts, no checksum pass)."""
    backup = get_backup(backup_id)
    names = _selection(backup, names)
    _parse_options(names, options)
    open_reader(backup).check_catalog()  # a malformed or replaced metadata.json: refused before anything
    if not confirm:
        raise ConfirmationRequired(WARNING, plan_restore(backup.backup_id, names, options, verify=False))
    restore_id = run_ids.allocate("restore")
    # Checked and claimed in one step (locks.claiming): no backup can start, and this backup cannot
    # be deleted, in between. The lock belongs to the run: both exist, or neither.
    with locks.claiming():
        running = Backup.objects.filter(kind=Backup.Kind.REGULAR, status=RunStatus.IN_PROGRESS).first()
        if running is not None:
            # It would capture half-restored data and still be marked completed.
            raise Busy(f"Restore refused: backup {running.backup_id} is running; wait for it to finish.")
        if not Backup.objects.filter(pk=backup.pk, status=RunStatus.COMPLETED).exists():
            raise NotCompleted(f"Restore refused: backup {backup.backup_id} is being deleted.")
        fault_point("restore.admitted")
        restore = Restore.objects.create(restore_id=restore_id, backup=backup, source_backup_id=backup.backup_id,
                                         components=names, options=options or {}, trigger=trigger, created_by=user)
        locks.acquire(locks.RESTORE_LOCK, restore_id)
    fault_point("restore.locked")
    audit.record("restore.start", user=user, request=request, target=restore_id,
                 details={"backup_id": backup.backup_id, "components": names})
    if run_async:
        enqueue("backups_app.tasks.run_restore", restore, restore_id)
    else:
        run_restore(restore.pk)
        restore.refresh_from_db()
    return restore


def run_restore(pk):
    """The lock is freed with the run's end (RunRecorder.finish), or by the sweep."""
    return execute(Restore, pk, _restore)


def _restore(restore, recorder):
    try:
        hooks.run_hooks("pre_restore", recorder)
        _apply(restore, recorder)
    finally:
        hooks.run_hooks("post_restore", recorder)


def _apply(restore, recorder):
    if restore.backup is None:
        raise NotFound(f"Backup {restore.source_backup_id} was deleted.")
    names = restore.components
    options = _parse_options(names, restore.options)
    # Only components that will write into the live store need a safety backup (a config preview
    # writes nothing, a side-by-side restore writes elsewhere).
    changing = [n for n in names if _writes_live(n, options[n])]
    recorder.log(f"verifying checksums of {restore.source_backup_id} ({', '.join(names)})")
    plan = plan_restore(restore.source_backup_id, names, restore.options, counted_later=changing)
    restore.plan = plan
    recorder.save("plan")
    fault_point("restore.planned")
    if not plan["ok"]:
        raise BackupError("Restore refused before any change: " + "; ".join(plan["refusals"]))

    for name, target in plan["targets"].items():
        if not target["live"]:
            recorder.log(f"{name}: side-by-side restore of {target['target']}: no safety backup needed")
    safety = None
    if changing:
        recorder.log("taking the safety backup of the current data")
        safety = create_backup(changing, description=f"Safety backup before {restore.restore_id}",
                               trigger=Trigger.RESTORE, kind=Backup.Kind.SAFETY)
        restore.safety_backup = safety
        recorder.save("safety_backup")
        if safety.status != RunStatus.COMPLETED:
            raise BackupError(f"Restore refused before any change: the safety backup failed: {safety.error}")
        recorder.log(f"safety backup {safety.backup_id} completed")
        _take_live_counts(plan, safety)
        recorder.save("plan")
    else:
        recorder.log("nothing will be written into a live store (a preview, or side-by-side only); no safety backup "
                     "needed")
    if not _restore_components(restore, recorder, names, options, safety, plan["copy"]):
        return
    fault_point("restore.applied")
    if not _probes_pass(restore, recorder, options, changing, safety):
        return
    _complete(restore, recorder, safety)


def _take_live_counts(plan, safety):
    """The plan's live counts from the safety backup: it counted exactly the data the restore
    replaces (in its dump's snapshot), so the live stores are not counted twice before a restore
    (on a database bigger than RAM, each count reads every table)."""
    for name, facts in safety.manifest["components"].items():
        counts = plan["counts"][name]["live"] = facts.get("counts", {})
        plan["affected"].update(flatten_counts(name, counts))


def _complete(restore, recorder, safety):
    """End a restore whose every component was applied (and passed its probes): its safety backup
    deleted (or kept)."""
    if safety is not None and settings.BACKUP_KEEP_SAFETY:
        recorder.log(f"safety backup {safety.backup_id} kept (BACKUP_KEEP_SAFETY)")
    elif safety is not None:
        # Logged first: a restore the sweep took over (and whose safety backup it pinned) stops here.
        recorder.log(f"deleting safety backup {safety.backup_id} (set BACKUP_KEEP_SAFETY=1 to keep it)")
        try:
            remove_backup(safety)
            restore.safety_backup = None  # the row is gone (the column is SET_NULL in the database too)
        except BackupError as exc:  # the restore itself succeeded; retention removes it later
            recorder.log(f"warning: safety backup {safety.backup_id} could not be deleted: {exc}")
    recorder.finish(RunStatus.COMPLETED)


def _probes_pass(restore, recorder, options, changing, safety):
    """The backup's probes and BACKUP_PROBE_COMMAND against what the restore wrote, live or
    side-by-side (``verification.check_restore``); a failure rolls back the live stores like any
    other. True when they passed."""
    from backups_app.services import verification  # it imports this module

    written, targets = [], {}
    for name in restore.components:
        component = components.get_component(name)
        if component.changes_data(options[name]):
            written.append(name)
            target = component.probe_target(options[name], restore.backup.manifest["components"].get(name, {}))
            if target is not None:
                targets[name] = target
    problems = verification.check_restore(restore, recorder, written, targets)
    if not problems:
        return True
    error = "the restored data does not answer the backup's probes: " + "; ".join(problems)
    if safety is not None and changing:
        _roll_back(restore, recorder, safety, changing, error)
    else:
        recorder.finish(RunStatus.FAILED, f"{error}. The live data was not touched.")
    return False


def _restore_components(restore, recorder, names, options, safety, copy):
    """Apply each component; on failure roll back the ones that changed data. True on success."""
    reader = open_reader(restore.backup, copy=copy)
    recorder.log(f"reading {restore.source_backup_id} from its {reader.copy} copy")
    touched = []
    try:
        for name in names:
            progress.start_reading(recorder, reader, name)
            component = components.get_component(name)
            if _writes_live(name, options[name]):
                touched.append(name)
            component.restore(reader, reader.artifacts_of(name), options[name], recorder.log)
            recorder.progress(name, "done")
    except Exception as exc:
        recorder.progress(name, "failed")
        if isinstance(exc, Unchanged) and touched and touched[-1] == name:
            touched.pop()  # it failed before writing: that store is as it was
        if touched:
            _roll_back(restore, recorder, safety, touched, store_error(name, exc))
        else:
            recorder.finish(RunStatus.FAILED, f"{store_error(name, exc).rstrip('.')}. Nothing was changed.")
        return False
    return True


def _roll_back(restore, recorder, safety, touched, error):
    """Put ``touched`` back from ``safety``; ends the run rolled_back only if every store is then
    exactly as it was (its counts are the safety backup's), else failed with the by-hand command."""
    error = error.rstrip(".")
    recorder.log(f"restore failed: {error}; rolling back {', '.join(touched)} from {safety.backup_id}")
    try:
        reader = open_reader(safety)
    except Exception as exc:
        failures = [f"cannot read the safety backup: {error_text(exc)}"]
    else:
        failures = [failure for name in touched for failure in _roll_back_one(reader, name, recorder)]
        if not failures:  # rolled back only if every store is exactly as it was
            failures = [f"after it, {d}" for name in touched for d in _unlike_before(reader, name)]
    if failures:
        Backup.objects.filter(pk=safety.pk).update(pinned=True)  # retention must not take the way back
        recorder.finish(RunStatus.FAILED, f"{error}. Rollback from safety backup {safety.backup_id} also failed "
                                          f"({'; '.join(failures)}); {', '.join(touched)} may hold part of the "
                                          "restored data. The safety backup is kept and pinned: restore it by "
                                          f"hand (manage.py restore {safety.backup_id} --yes).")
    else:
        recorder.finish(RunStatus.ROLLED_BACK, f"{error}. The previous data was put back from safety backup "
                                               f"{safety.backup_id}.")


def _roll_back_one(reader, name, recorder):
    """Restore component ``name`` from the safety backup ``reader`` reads; [] or [what failed]."""
    # A rollback killed from here on is healed again by the sweep.
    progress.start_reading(recorder, reader, name, progress.ROLLING_BACK)
    fault_point(f"rollback.{name}")
    try:
        component = components.get_component(name)
        component.restore(reader, reader.artifacts_of(name), component.rollback_options(), recorder.log)
    except Exception as exc:
        return [store_error(name, exc)]
    recorder.progress(name, "rolled_back")
    return []


def heal(restore, recorder, cause):
    """Put right a restore whose worker died (``cause`` says how it was found), once the sweep took
    the run over: it owns the run, and the restore lock stays held until the run ends.

    - No component that writes had started (killed before or during the safety backup, or a
      preview): nothing was changed, the run fails.
    - Every component was applied and the live counts are the backup's (killed after the last
      one, before the end was recorded): the restore is finished as it would have been.
    - Otherwise every component it may have changed (any whose progress left ``pending``) is put
      back from the safety backup: rolled_back, or failed with the by-hand command.

    Each step is logged on the run. A heal killed midway leaves the run in progress with its marks
    (``rolling_back``), so the next sweep heals it again from the start."""
    safety = restore.safety_backup
    recorder.log(f"{cause} The stale-run sweep took this restore over to heal it.")
    for note in recover_swaps():
        recorder.log(note)
    with heartbeat(restore):
        try:
            options = _parse_options(restore.components, restore.options)
            changing = [n for n in restore.components if _writes_live(n, options[n])]
            touched = [n for n in changing if restore.state_of(n) != "pending"]
        except BackupError as exc:  # a source no longer configured: nothing to heal it with
            recorder.finish(RunStatus.FAILED, f"{cause} It cannot be healed ({error_text(exc)}); data of "
                                              f"{', '.join(restore.components)} may be partly restored: restore by "
                                              f"hand (manage.py restore {restore.source_backup_id} --yes).")
            return
        try:
            if not touched:
                recorder.finish(RunStatus.FAILED, f"{cause} It stopped before changing any data. Nothing was "
                                                  "changed. Start the restore again.")
            elif _applied_whole(restore, recorder, changing):
                recorder.log(f"every component was restored before the worker died ({', '.join(restore.components)})"
                             " and the live counts are the backup's: finishing the restore")
                if _probes_pass(restore, recorder, options, changing, safety):
                    _complete(restore, recorder, safety)
            elif safety is None or safety.status != RunStatus.COMPLETED:
                gone = "is gone" if safety is None else f"{safety.backup_id} is {safety.status}"
                recorder.finish(RunStatus.FAILED, f"{cause} Data of {', '.join(touched)} may be partly restored and "
                                                  f"the safety backup {gone}: restore by hand (manage.py restore "
                                                  f"{restore.source_backup_id} --yes).")
            else:
                _roll_back(restore, recorder, safety, touched, cause)
        finally:
            hooks.run_hooks("post_restore", recorder)


def _applied_whole(restore, recorder, changing):
    """Whether every component's restore returned and the stores it wrote hold the backup's counts."""
    if any(restore.state_of(name) != "done" for name in restore.components):
        return False
    planned = restore.plan.get("counts", {})
    differences = [d for name in changing
                   for d in _unlike_backup(name, planned.get(name, {}).get("backup"))]
    if differences:
        recorder.log(f"every component was restored, but {'; '.join(differences)}: rolling back")
    return not differences


def _unlike_backup(name, counts):
    if counts is None:
        return [f"{name} has no counts in the plan to compare with"]
    return _unlike(name, counts, "in the backup")


def _unlike(name, expected, label):
    """How store ``name``'s live counts differ from ``expected`` (labelled ``label``)."""
    try:
        live = components.get_component(name).inspect()
    except BackupError as exc:
        return [f"{name} cannot be compared with its state {label}: {exc}"]
    return count_differences(name, expected, live, label, "now")


def _unlike_before(reader, name):
    """How store ``name`` differs now from the safety backup ``reader`` reads (its counts)."""
    return _unlike(name, reader.facts_of(name).get("counts", {}), "before")


def count_differences(name, expected, actual, expected_label, actual_label):
    """``["postgres.docs.rows 150 before, 151 now", ...]`` for every count that differs."""
    want, got = flatten_counts(name, expected), flatten_counts(name, actual)
    return [f"{key} {want.get(key)} {expected_label}, {got.get(key)} {actual_label}"
            for key in sorted(set(want) | set(got)) if want.get(key) != got.get(key)]


def get_restore(restore_id=None):
    """One restore by id, or the newest one."""
    if restore_id is None:
        restore = Restore.objects.first()
        if restore is None:
            raise NotFound("No restore has run yet.")
        return restore
    return find_run(Restore, "restore_id", restore_id, validate_restore_id)
