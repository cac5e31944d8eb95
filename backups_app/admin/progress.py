"""Live progress on the run pages: per component a bar with its state, bytes done / total, elapsed
time, throughput and ETA (services/progress.py), a small overall bar beside a running run's status,
and the JSON the pages poll (``RunAdmin.progress_view``) to refresh running runs in place
(templates/admin/backups_app/progress_poll.html)."""

from django.utils.html import format_html, format_html_join

from backups_app.formatting import NOTHING, format_duration, human_size, size_html
from backups_app.services import progress

STATE_COLOURS = {progress.RUNNING: "#0d6efd", progress.DONE: "#198754", progress.FAILED: "#dc3545",
                 progress.ROLLING_BACK: "#fd7e14", progress.ROLLED_BACK: "#fd7e14"}
GREY = "#6c757d"


def state_text(state):
    return state.replace("_", " ")


def bar(fraction, colour, width="12em"):
    """A progress bar filled to ``fraction`` (None: unknown, an empty track)."""
    percent = round(100 * fraction) if fraction is not None else 0
    label = f"{percent}%" if fraction is not None else "size unknown"
    return format_html(
        '<span class="progress-bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{}" '
        'title="{}" style="display:inline-block;width:{};height:.8em;background:#e9ecef;border-radius:4px;'
        'overflow:hidden;vertical-align:middle"><span style="display:block;height:100%;width:{}%;background:{}">'
        '</span></span> <span class="progress-percent">{}</span>', percent, label, width, percent, colour,
        label if fraction is not None else "")


def _amount(entry):
    """"12.0 MiB of 40.0 MiB" (exact bytes on hover), or keys: "1,200 of 2,500 keys · 3.1 MiB"."""
    written = size_html(entry["bytes_done"])
    if entry["items_total"] is not None:
        return format_html("{:,} of {:,} {} · {}", entry["items_done"], entry["items_total"], entry["items_unit"],
                           written)
    if entry["bytes_total"] is None:
        return written
    return format_html("{} of {}", written, size_html(entry["bytes_total"]))


def _rate(entry):
    return f"{human_size(round(entry['bytes_per_second']))}/s" if entry["bytes_per_second"] else NOTHING


def progress_table(run):
    """Every component's progress as a table row."""
    rows = []
    for name, entry in progress.describe_run(run).items():
        state = entry["state"]
        colour = STATE_COLOURS.get(state, GREY)
        shown = entry["started_at"] is not None
        rows.append((name, state, entry["bytes_done"], colour, state_text(state),
                     bar(entry["fraction"], colour) if shown else NOTHING,
                     _amount(entry) if shown else NOTHING,
                     format_duration(entry["elapsed_seconds"]), _rate(entry),
                     format_duration(entry["eta_seconds"]) if state in progress.ACTIVE else NOTHING))
    body = format_html_join("", '<tr data-component="{}" data-state="{}" data-bytes-done="{}"><td>{}</td>'
                                '<td><b style="color:{}">{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                                '<td>{}</td></tr>',
                            ((name, state, done, name, colour, text, *cells)
                             for name, state, done, colour, text, *cells in rows))
    return format_html('<table class="run-progress-table"><thead><tr><th>component</th><th>state</th>'
                       '<th>progress</th><th>done</th><th>elapsed</th><th>throughput</th><th>ETA</th></tr></thead>'
                       '<tbody>{}</tbody></table>', body)


def overall(run):
    """The share of the run's components done (a running one counts by its fraction)."""
    entries = progress.describe_run(run).values()
    finished = (progress.DONE, progress.SKIPPED, progress.ROLLED_BACK)
    parts = [1.0 if e["state"] in finished else (e["fraction"] or 0.0) if e["state"] in progress.ACTIVE else 0.0
             for e in entries]
    return sum(parts) / len(parts) if parts else 0.0


def live_status(run, badge):
    """The status cell: ``badge``, and for a run still going a small overall bar; the poll replaces it."""
    extra = bar(overall(run), STATE_COLOURS[progress.RUNNING], "6em") if run.is_active else ""
    return format_html('<span class="run-live" data-run-id="{}" data-active="{}">{} {}</span>', run.pk,
                       int(run.is_active), badge, extra)


def live_block(run, css_class, content):
    """``content`` in a block the poll refreshes while ``run`` is active."""
    return format_html('<div class="{}" data-run-id="{}">{}</div>', css_class, run.pk, content)
