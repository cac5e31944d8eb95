"""Handing out backup and restore ids, safe under any concurrency: an id is taken by inserting it
into IssuedRunId, whose unique constraint lets exactly one of two racing requests have it (the
other moves on to the next suffix). The rows are never deleted, so no id is handed out twice,
not even the id of a backup deleted since."""

from django.db import IntegrityError, transaction

from backups_app.archive.ids import run_id_candidates
from backups_app.errors import Busy
from backups_app.models import IssuedRunId


def allocate(prefix):
    """A new id ``<prefix>_YYYYMMDD_HHMMSS[_N]``, recorded as issued."""
    base = next(run_id_candidates(prefix))
    taken = IssuedRunId.objects.filter(run_id__startswith=base).count()  # where to start trying
    for candidate in run_id_candidates(prefix, start=taken):
        try:
            with transaction.atomic():
                IssuedRunId.objects.create(run_id=candidate)
            return candidate
        except IntegrityError:  # taken by a concurrent request (or issued earlier): the next one
            continue
    raise Busy(f"More than 9999 {prefix} ids were asked for within one second; try again.")


def record_issued(run_id):
    """An id that came from elsewhere (a set imported from storage) counts as issued too."""
    IssuedRunId.objects.get_or_create(run_id=run_id)
