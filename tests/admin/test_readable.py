"""Readable admin pages (issue 17 §3) over real backups of real stores (PostgreSQL, SQLite and an
uploads folder): counts, the restore plan and audit details as tables, sizes in human units with
the exact bytes on hover, the one date format, durations in words, the raw JSON collapsed below."""

import json
import re
from html import unescape

import pytest
from django.test.html import parse_html
from django.urls import reverse
from pytest_django.asserts import assertContains, assertNotContains

from backups_app.formatting import format_date, format_duration, size_html
from backups_app.models import AuditEvent, Restore
from backups_app.services import backups, restores
from tests.stacks import pg_connect

pytestmark = pytest.mark.django_db

RAW = re.compile(r'<details class="raw"><summary>raw</summary><pre style="margin:0">(.*?)</pre></details>', re.S)


def raw_sections(response):
    """The JSON of every collapsed "raw" section of the page."""
    return [json.loads(unescape(text)) for text in RAW.findall(response.content.decode())]


def plan_row(component, what, backup, live, differs):
    """A row of the plan table without its leading component cells (which only the first row has)."""
    mark = ' <span title="differs from the backup">≠</span>' if differs else ""
    return (f'<td>{what}</td><td class="count backup">{backup}</td><td class="count live">{live}{mark}</td>',
            f'data-component="{component}" data-what="{what}"', "differs" if differs else "same")


def assert_plan_rows(response, rows):
    page = response.content.decode()
    for component, what, backup, live, differs in rows:
        cells, data, css = plan_row(component, what, backup, live, differs)
        row = re.search(rf'<tr class="{css}" {data}>(.*?)</tr>', page, re.S)
        assert row, (component, what, css)
        assert parse_html(re.sub(r"<td rowspan.*?</td>", "", row.group(1), flags=re.S)) == parse_html(cells)


@pytest.fixture
def backed_up(pg_stack):
    """A backup of the PostgreSQL, SQLite and uploads stack, then live changes: 50 documents gone
    from PostgreSQL, one file added to the uploads."""
    backup = backups.create_backup(description="before the import")
    with pg_connect(pg_stack["pg"]) as conn:
        conn.execute("DELETE FROM documents WHERE id > 100")
    (pg_stack["uploads"] / "new.txt").write_text("new")
    return backup


def test_backup_page_counts_sizes_dates_and_duration(backed_up, staff, client):
    backup = backed_up
    page = client.get(reverse("admin:backups_app_backup_change", args=[backup.pk]))
    assertContains(page, '<table class="counts-table"><thead><tr><th>component</th><th>what</th><th>count</th></tr>'
                         '</thead><tbody><tr><td>postgres</td><td>documents</td><td>150</td></tr>'
                         "<tr><td>sqlite</td><td>app.chunks</td><td>40</td></tr>"
                         "<tr><td>uploads</td><td>files</td><td>2</td></tr>"
                         '<tr><td></td><td>bytes</td><td><span class="size" title="16,390 bytes">16.0 KiB</span></td>'
                         "</tr></tbody></table>", html=True)
    assert raw_sections(page) == [{n: f["counts"] for n, f in backup.manifest["components"].items()}]
    assertContains(page, f'<div class="readonly">{size_html(backup.size_bytes)}</div>', html=True)
    assertContains(page, f'<div class="readonly">{format_date(backup.created_at)}</div>', html=True)
    assertContains(page, f'<div class="readonly">{format_duration(backup.duration)}</div>', html=True)
    for artifact in backup.artifacts.all():  # the artifacts inline: exact bytes on hover
        assertContains(page, f'<td class="field-size"><p>{size_html(artifact.size_bytes)}</p></td>', html=True)
    assertNotContains(page, "&quot;documents&quot;: 150</pre>")  # no bare JSON outside the raw section

    listing = client.get(reverse("admin:backups_app_backup_changelist"))
    assertContains(listing, f'<td class="field-size">{size_html(backup.size_bytes)}</td>', html=True)
    created = format_date(backup.created_at)
    assertContains(listing, f'<td class="field-created"><span class="nowrap">{created}</span></td>', html=True)


def test_restore_plan_is_a_table_of_backup_vs_live(backed_up, staff, client):
    url = reverse("admin:backups_app_backup_restore", args=[backed_up.backup_id])
    plan = client.post(url, {"components": ["postgres", "uploads"]})
    assertContains(plan, "<thead><tr><th>component</th><th>what happens</th><th>what</th><th>in backup</th>"
                         "<th>live now</th></tr></thead>", html=True)
    assert_plan_rows(plan, [
        ("postgres", "documents", "150", "100", True),
        ("uploads", "bytes", size_html(16390), size_html(16393), True),
        ("uploads", "files", "2", "3", True),
    ])
    assertContains(plan, '<td rowspan="1" class="outcome">replaced from the backup; a safety backup is taken first'
                         "</td>", html=True)
    for artifact in backed_up.artifacts.exclude(component="sqlite"):
        assertContains(plan, f"<td>{size_html(artifact.size_bytes)}</td>", html=True)
    (raw,) = raw_sections(plan)
    assert raw["backup_id"] == backed_up.backup_id and raw["counts"]["postgres"]["live"] == {"documents": 100}


def test_same_counts_are_not_highlighted(backed_up, staff, client):
    url = reverse("admin:backups_app_backup_restore", args=[backed_up.backup_id])
    assert_plan_rows(client.post(url, {"components": ["sqlite"]}), [("sqlite", "app.chunks", "40", "40", False)])


def test_restore_page_and_its_audit_event(backed_up, staff, client):
    restore = restores.start_restore(backed_up.backup_id, ["postgres", "uploads"],
                                     {"postgres": {"no_owner": "true"}}, confirm=True)
    assert Restore.objects.get(pk=restore.pk).status == "completed", restore.error
    page = client.get(reverse("admin:backups_app_restore_change", args=[restore.pk]))
    assertContains(page, "<th>live before the restore</th>", html=True)
    assert_plan_rows(page, [("postgres", "documents", "150", "100", True), ("uploads", "files", "2", "3", True)])
    assertContains(page, '<table class="details-table"><tbody><tr><th>postgres.no_owner</th><td>true</td></tr>'
                         "</tbody></table>", html=True)
    options, plan = raw_sections(page)
    assert options == {"postgres": {"no_owner": "true"}} and plan["counts"]["uploads"]["backup"]["files"] == 2
    assertContains(page, f'<div class="readonly">{format_duration(restore.duration)}</div>', html=True)

    event = AuditEvent.objects.get(action="restore.start")
    audit = client.get(reverse("admin:backups_app_auditevent_change", args=[event.pk]))
    assertContains(audit, f'<table class="details-table"><tbody><tr><th>backup_id</th><td>{backed_up.backup_id}'
                          "</td></tr><tr><th>components</th><td>postgres, uploads</td></tr></tbody></table>",
                   html=True)
    assert raw_sections(audit) == [event.details]
    assertContains(audit, f'<div class="readonly">{format_date(event.created_at)}</div>', html=True)
    listing = client.get(reverse("admin:backups_app_restore_changelist"))
    assertContains(listing, f'<td class="field-took">{format_duration(restore.duration)}</td>', html=True)
