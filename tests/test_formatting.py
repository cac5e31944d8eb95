"""Sizes, dates and durations read one way: the functions, their template filters, and the admin's
own date format (FORMAT_MODULE_PATH) agreeing with them."""

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.utils import formats

from backups_app.formatting import DATETIME_FORMAT, exact_bytes, format_date, format_duration, human_size, size_html


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (10 * 1024**2 + 1, "10.0 MiB"),
    (123 * 1024**2, "123 MiB"), (5 * 1024**3 + 512 * 1024**2, "5.5 GiB"), (3 * 1024**4, "3.0 TiB"),
    (2048 * 1024**5, "2048 PiB"), (None, "—"),
])
def test_human_size(size, text):
    assert human_size(size) == text


def test_exact_bytes_and_the_hover_title():
    assert exact_bytes(1234567) == "1,234,567 bytes"
    assert size_html(1234567) == '<span class="size" title="1,234,567 bytes">1.2 MiB</span>'
    assert size_html(None) == "—"


@pytest.mark.parametrize(("value", "text"), [
    (0.25, "0.2 s"), (0.049, "< 0.1 s"), (0, "0 s"), (0.05, "0.1 s"),
    (3, "3 s"), (9.5, "9.5 s"), (10.4, "10 s"), (64, "1 min 4 s"), (120, "2 min"),
    (3605, "1 h"), (3 * 3600 + 5 * 60 + 7, "3 h 5 min"), (timedelta(days=2, hours=4, minutes=1), "2 d 4 h"),
    (timedelta(seconds=64), "1 min 4 s"), (None, "—"), (-1, "—"),
])
def test_format_duration(value, text):
    assert format_duration(value) == text


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/New_York"])
def test_the_fast_date_format_reads_like_djangos(settings, zone):
    """format_date writes DATETIME_FORMAT out: the text Django's formatter makes of it."""
    from django.utils import dateformat, timezone

    settings.TIME_ZONE = zone
    for moment in (datetime(2026, 2, 4, 12, 0, 5, tzinfo=UTC), datetime(2026, 7, 1, 23, 59, 59, 999, tzinfo=UTC),
                   datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)):
        assert format_date(moment) == dateformat.format(timezone.localtime(moment), DATETIME_FORMAT)


def test_the_hour_a_clock_goes_back_keeps_its_zone(settings):
    """Where Django's T leaves the zone out (02:00-03:00 happens twice), the date still names it."""
    settings.TIME_ZONE = "Europe/Paris"
    assert format_date(datetime(2030, 10, 27, 1, tzinfo=UTC)) == "2030-10-27 02:00:00 CET"


def test_one_date_format_for_datetimes_and_iso_text(settings):
    moment = datetime(2026, 2, 4, 12, 0, 5, tzinfo=UTC)
    assert format_date(moment) == "2026-02-04 12:00:05 UTC"
    assert format_date(moment.isoformat()) == "2026-02-04 12:00:05 UTC"  # as manifests and plans store it
    assert format_date(None) == "—"
    assert format_date("not a date") == "not a date"
    settings.TIME_ZONE = "Asia/Seoul"
    assert format_date(moment) == "2026-02-04 21:00:05 KST"


def test_the_admin_formats_dates_the_same_way():
    """Django's own rendering of a datetime field (admin lists, read-only fields) uses the one format."""
    moment = datetime(2026, 2, 4, 12, 0, 5, tzinfo=UTC)
    assert formats.localize(moment) == format_date(moment)
    assert formats.date_format(moment.date()) == "2026-02-04"


def test_template_filters():
    html = Template("{% load backups_format %}{{ n|human_size }}|{{ n|size_html }}|{{ when|date_text }}|"
                    "{{ took|duration }}|{{ n|exact_bytes }}").render(Context({
                        "n": 2048, "when": datetime(2026, 2, 4, 12, 0, tzinfo=UTC), "took": 64}))
    assert html == ('2.0 KiB|<span class="size" title="2,048 bytes">2.0 KiB</span>|2026-02-04 12:00:00 UTC|'
                    "1 min 4 s|2,048 bytes")
