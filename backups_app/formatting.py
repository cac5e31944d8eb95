"""How sizes, dates and durations read everywhere (admin pages, commands, scripts): sizes in binary
units with the exact bytes for a hover title, one date format, durations like "1 min 4 s".
The template filters in ``templatetags/backups_format.py`` are these functions."""

from datetime import datetime, timedelta

from django.utils import dateformat, timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

# The one date format (Django's date-filter syntax): the admin uses it too (backupsite/formats/en).
DATETIME_FORMAT = "Y-m-d H:i:s T"
NOTHING = "—"

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size):
    """1536 → "1.5 KiB"; bytes up to 1023 read as "512 B"; None → "—"."""
    if size is None:
        return NOTHING
    size = int(size)
    if abs(size) < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"


def exact_bytes(size):
    """1234567 → "1,234,567 bytes" (what the hover title of a human size says)."""
    return NOTHING if size is None else f"{int(size):,} bytes"


def size_html(size):
    """The human size with the exact bytes in its title: <span title="1,536 bytes">1.5 KiB</span>."""
    if size is None:
        return NOTHING
    return format_html('<span class="size" title="{}">{}</span>', exact_bytes(size), human_size(size))


def as_datetime(value):
    """A datetime, or the ISO text manifests and plans store; None when it is neither."""
    if isinstance(value, str):
        value = parse_datetime(value)
    return value if isinstance(value, datetime) else None


def format_date(value):
    """The one date format, in TIME_ZONE: "2026-02-04 12:00:00 UTC". Takes ISO text too."""
    moment = as_datetime(value)
    if moment is None:
        return NOTHING if value in (None, "") else str(value)
    if timezone.is_aware(moment):  # DATETIME_FORMAT written out: Django's formatter is 5x slower (50 a page)
        local = timezone.localtime(moment)
        return f"{local.isoformat(' ', 'seconds')[:19]} {local.tzname()}"
    return dateformat.format(moment, DATETIME_FORMAT)  # T: the default time zone's name


def format_duration(value):
    """Seconds (or a timedelta) as "1 min 4 s", "2 h 5 min", "3 d 4 h" (the two largest units);
    under 10 s with a tenth: "2.5 s"; a time too short for a tenth is "< 0.1 s" (a rehearsal of a
    small set measures an RTO of a few milliseconds: "0 s" read as "not measured")."""
    if value is None or value == "":
        return NOTHING
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        return NOTHING
    if 0 < seconds < 0.05:
        return "< 0.1 s"
    if seconds < 10:
        return f"{seconds:.1f} s".replace(".0 s", " s")
    whole = round(seconds)
    parts = []
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, whole = divmod(whole, length)
        parts.append((count, unit))
    first = next(i for i, (count, _unit) in enumerate(parts) if count)
    return " ".join(f"{count} {unit}" for count, unit in parts[first:first + 2] if count)


def text_table(header, rows):
    """Columns aligned with two spaces between, for terminals: the header row, then ``rows``
    (sequences of cells, turned into text); trailing blanks are dropped."""
    table = [tuple(header), *(tuple(str(cell) for cell in row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table)
