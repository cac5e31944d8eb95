"""Promote a completed side-by-side restore: swap what it restored in for the live stores
(``Component.promote``: PostgreSQL renames the databases in one transaction, Qdrant switches the
aliases in one alias change, Redis runs SWAPDB, folders and files are swapped by rename), keeping the
replaced data until ``drop_old``, and undo it while that data exists. Each step is audited and
logged on the restore; its state is kept in ``Restore.plan["promotion"]``:

    {"state": "promoted" | "undone" | "dropped", "components": {name: the component's record}}

The audit log (``restore.promote``, ``restore.undo``, ``restore.drop_old``) holds who did what when.
"""

from django.db import transaction
from django.utils import timezone

from backups_app import components
from backups_app.errors import BackupError, Busy, InvalidOption
from backups_app.models import Backup, Restore, RunStatus
from backups_app.services import audit, locks
from backups_app.services.restores import get_restore

PROMOTED, UNDONE, DROPPED = "promoted", "undone", "dropped"


class NotPromotable(BackupError):
    """This restore cannot be promoted (or undone) now; the text says why."""


def side_components(restore):
    """{component: parsed options} of the components ``restore`` restored side by side."""
    found = {}
    for name in restore.components:
        try:
            component = components.get_component(name)
        except BackupError:
            continue
        options = component.parse_restore_options((restore.options or {}).get(name))
        if not component.targets_live(options):
            found[name] = options
    return found


def promotion(restore):
    return (restore.plan or {}).get("promotion") or {}


def can_promote(restore):
    """Why ``restore`` cannot be promoted now, or None (the admin shows the button when None)."""
    if restore.status != RunStatus.COMPLETED:
        return f"restore {restore.restore_id} is {restore.status}; only a completed one can be promoted"
    if not side_components(restore):
        return f"restore {restore.restore_id} restored into the live stores; there is nothing to promote"
    if promotion(restore).get("state") in (PROMOTED, DROPPED):
        return f"restore {restore.restore_id} is promoted already"
    return None


def promote(restore_id, drop_old=False, undo=False, user=None, request=None):
    """Promote ``restore_id`` (and with ``drop_old`` drop the replaced data afterwards, or alone
    when already promoted), or ``undo`` its promotion. Returns the lines it logged."""
    if drop_old and undo:
        raise InvalidOption("--drop-old and --undo contradict each other: undo needs the replaced data.")
    restore = get_restore(restore_id)
    busy = Backup.objects.filter(status=RunStatus.IN_PROGRESS).first()
    if busy is not None:
        raise Busy(f"Promotion refused: backup {busy.backup_id} is running; wait for it to finish.")
    locks.ensure_free(locks.RESTORE_LOCK, "Promotion")
    lines = []

    def log(text):
        lines.append(text)

    state = promotion(restore).get("state")
    try:
        if undo:
            _undo(restore, log)
            action = "undo"
        elif state == PROMOTED and drop_old:
            _drop(restore, log)
            action = "drop_old"
        else:
            _promote(restore, log)
            action = "promote"
            if drop_old:
                _drop(restore, log)
                action = "promote+drop_old"
    finally:
        if lines:
            _record(restore, lines, user)
    audit.record(f"restore.{action.replace('+', '_')}", user=user, request=request, target=restore.restore_id,
                 details={"components": list(promotion(restore).get("components", {})), "log": lines})
    return lines


def _promote(restore, log):
    problem = can_promote(restore)
    if problem:
        raise NotPromotable(f"Not promoted: {problem}.")
    side, facts = side_components(restore), restore.backup.manifest.get("components", {}) if restore.backup else {}
    done = {}
    try:
        for name, options in side.items():
            done[name] = components.get_component(name).promote(options, facts.get(name, {}), restore.restore_id, log)
    except BackupError as exc:
        for name in reversed(list(done)):  # all or nothing: what was swapped is swapped back
            components.get_component(name).undo_promotion(done[name], log)
        raise NotPromotable(f"Not promoted: {exc}" + (f" ({', '.join(done)} swapped back)" if done else "")) from None
    _save(restore, {"state": PROMOTED, "components": done})


def _undo(restore, log):
    record = promotion(restore)
    if record.get("state") != PROMOTED:
        why = {DROPPED: "its replaced data was dropped (--drop-old)", UNDONE: "it was undone already"}
        raise NotPromotable(f"Cannot undo the promotion of {restore.restore_id}: "
                            f"{why.get(record.get('state'), 'it was never promoted')}.")
    undone = []
    try:
        for name in reversed(list(record["components"])):
            components.get_component(name).undo_promotion(record["components"][name], log)
            undone.append(name)
    except BackupError as exc:
        raise NotPromotable(f"Undo stopped: {exc}" + (f" ({', '.join(undone)} already undone)" if undone else "")) \
            from None
    _save(restore, {**record, "state": UNDONE})


def _drop(restore, log):
    record = promotion(restore)
    for name, component_record in record["components"].items():
        components.get_component(name).drop_replaced(component_record, log)
    _save(restore, {**record, "state": DROPPED})


def _save(restore, record):
    with transaction.atomic():
        fresh = Restore.objects.select_for_update().get(pk=restore.pk)
        fresh.plan = {**(fresh.plan or {}), "promotion": record}
        fresh.save(update_fields=["plan"])
    restore.plan = fresh.plan


def _record(restore, lines, user):
    """The promotion's lines appended to the restore's log."""
    stamp = timezone.now().strftime("%Y-%m-%d %H:%M:%S")
    who = f" ({user.get_username()})" if user else ""
    text = "".join(f"{stamp} promote{who}: {line}\n" for line in lines)
    with transaction.atomic():
        fresh = Restore.objects.select_for_update().get(pk=restore.pk)
        fresh.log = (fresh.log or "") + text
        fresh.save(update_fields=["log"])
    restore.log = fresh.log

