"""Per-component progress of a run: what the recorder stores while components stream, and what
pages and the API show of it.

``run.progress`` maps each component to an entry::

    {"state": "running", "started_at": ISO | None, "finished_at": ISO | None,
     "bytes_done": int, "bytes_total": int | None, "items_done": int, "items_total": int | None,
     "items_unit": "keys" | None}

``bytes_done`` counts what the component streamed (a backup: the bytes it wrote before
compression; a restore: the stored bytes read), ``bytes_total`` is what it is expected to stream
when that is known before it starts (``Component.estimate()``, or the artifacts' sizes in the
manifest), else None. A store whose size is known only as a number of things (Redis: keys) counts
those in ``items_*`` instead. ``described`` adds what follows from an entry at the moment it is
read: ``elapsed_seconds``, ``bytes_per_second``, ``fraction`` and ``eta_seconds``."""

from django.utils import timezone
from django.utils.dateparse import parse_datetime

PENDING, RUNNING, DONE, FAILED, SKIPPED, NOT_RUN = "pending", "running", "done", "failed", "skipped", "not_run"
ROLLING_BACK, ROLLED_BACK = "rolling_back", "rolled_back"
#: States in which a component streams; entering one starts a fresh count and clock.
ACTIVE = (RUNNING, ROLLING_BACK)


def entry(state=PENDING):
    return {"state": state, "started_at": None, "finished_at": None, "bytes_done": 0, "bytes_total": None,
            "items_done": 0, "items_total": None, "items_unit": None}


def moved(old, state, **fields):
    """The entry ``old`` after its component moves to ``state``, with ``fields`` (totals) set."""
    now = timezone.now().isoformat()
    if state in ACTIVE:
        new = {**entry(state), "started_at": now}
    else:
        new = {**(old or entry()), "state": state}
        if new["started_at"] and not new["finished_at"]:
            new["finished_at"] = now
    return {**new, **fields}


def ended(run):
    """The progress of ``run`` once it ended without completing: a component still pending never
    ran (``not_run``), one still running stopped with the run (``failed``)."""
    after = {PENDING: NOT_RUN, RUNNING: FAILED}
    entries = {name: run.progress.get(name) or entry() for name in run.components}
    return {name: moved(value, after[value["state"]]) if value["state"] in after else value
            for name, value in entries.items()}


def described(value, now=None):
    """The entry with what is derived from it now: seconds elapsed since it started (until it
    finished), bytes per second, the fraction done (of the items when they are what is counted,
    else of the bytes; None when the total is unknown) and the seconds left at the rate so far
    (0 once done, None while nothing is known)."""
    now = now or timezone.now()
    started, finished = parse_datetime(value["started_at"] or ""), parse_datetime(value["finished_at"] or "")
    elapsed = max(((finished or now) - started).total_seconds(), 0.0) if started else None
    rate = value["bytes_done"] / elapsed if elapsed and value["bytes_done"] else None
    done, total = ((value["items_done"], value["items_total"]) if value["items_total"] is not None
                   else (value["bytes_done"], value["bytes_total"]))
    if value["state"] == DONE:
        fraction, eta = 1.0, 0.0
    else:
        fraction = min(done / total, 1.0) if total else None
        active = value["state"] in ACTIVE
        eta = elapsed * (1 - fraction) / fraction if active and fraction and elapsed else None
    return {**value, "elapsed_seconds": elapsed, "bytes_per_second": rate, "fraction": fraction, "eta_seconds": eta}


def describe_run(run, now=None):
    """Every component's described entry, in the run's order."""
    now = now or timezone.now()
    return {name: described(run.progress.get(name) or entry(), now) for name in run.components}


def start_reading(recorder, reader, name, state=RUNNING):
    """Mark component ``name`` as ``state`` with the stored size of its artifacts as the total of
    the bytes ``reader`` counts from now on (a restore, a rollback, a rehearsal)."""
    recorder.progress(name, state, bytes_total=reader.size_of(name))
    reader.meter = recorder.meter(name)


class Meter:
    """What a component streams, counted into its entry, and written through the recorder at most
    once per ``RunRecorder.REPORT_SECONDS`` for the run: a database write per chunk would slow the
    copy down. The backup writer and reader call ``add`` for every chunk; a store that counts
    things (Redis keys) calls ``add_items``."""

    def __init__(self, recorder, component):
        self.recorder, self.component = recorder, component

    def add(self, nbytes):
        self._count("bytes_done", nbytes)

    def add_items(self, count):
        self._count("items_done", count)

    def _count(self, field, amount):
        self.recorder.run.progress[self.component][field] += amount
        self.recorder.report()
