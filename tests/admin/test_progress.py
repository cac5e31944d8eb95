"""Live progress in the admin (issue 17 §2): a running backup's page and list row show per
component the state, a bar, bytes done of the total, elapsed time, throughput and ETA, and the
JSON the pages poll gives the same, to users who may see the history only."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backups_app.models import Backup, Restore, RunStatus
from backups_app.services import backups, progress, restores
from tests.admin.conftest import CHANGELIST, staff_member

pytestmark = pytest.mark.django_db
MIB = 1024 * 1024


@pytest.fixture
def running_backup():
    """A backup ten seconds into postgres (5 MiB of 20 MiB), its redis part still pending."""
    started = (timezone.now() - timedelta(seconds=10)).isoformat()
    return Backup.objects.create(
        backup_id="backup_20990101_000000", status=RunStatus.IN_PROGRESS, components=["postgres", "redis"],
        started_at=timezone.now(), log="backing up postgres, redis\n",
        progress={"postgres": {**progress.entry(progress.RUNNING), "started_at": started, "bytes_done": 5 * MIB,
                               "bytes_total": 20 * MIB},
                  "redis": progress.entry()})


def row(html, component):
    start = html.index(f'data-component="{component}"')
    return html[start:html.index("</tr>", start)]


def test_a_running_backup_shows_its_progress(client, running_backup):
    client.force_login(staff_member("view_backup"))
    page = client.get(reverse("admin:backups_app_backup_change", args=[running_backup.pk])).content.decode()
    postgres = row(page, "postgres")
    assert 'aria-valuenow="25"' in postgres and "25%" in postgres
    assert 'title="5,242,880 bytes">5.0 MiB</span> of <span class="size" title="20,971,520 bytes">20.0 MiB' in postgres
    elapsed, rate, eta = re.findall(r"<td>([^<]*)</td>", postgres)[-3:]
    # 5 MiB in 10 s (and the moment the page took), 15 MiB to go: three times as long again.
    seconds = int(elapsed.removesuffix(" s"))
    assert 10 <= seconds <= 13 and rate.endswith(" KiB/s"), (elapsed, rate)
    assert 5120 / (seconds + 0.5) - 1 <= int(rate.split()[0]) <= 5120 / (seconds - 0.5) + 1, (elapsed, rate)
    assert 3 * (seconds - 0.5) - 1 <= int(eta.removesuffix(" s")) <= 3 * (seconds + 0.5) + 1, (elapsed, eta)
    assert ">pending<" in row(page, "redis")
    assert 'data-active="1"' in page and reverse("admin:backups_app_backup_progress") in page

    listing = client.get(CHANGELIST).content.decode()
    assert f'data-run-id="{running_backup.pk}" data-active="1"' in listing
    assert 'aria-valuenow="12"' in listing  # the list's overall bar: half of one component of two

    polled = client.get(reverse("admin:backups_app_backup_progress"), {"id": [running_backup.pk, "x"], "log": 1})
    run = polled.json()["runs"][str(running_backup.pk)]
    same_until_the_clock = postgres.rsplit("<td>", 3)[0]  # elapsed, throughput and ETA move on meanwhile
    assert run["active"] is True and row(run["progress"], "postgres").startswith(same_until_the_clock)
    assert 'data-active="1"' in run["status"] and run["log"] == "backing up postgres, redis\n"
    # What a worker fills in when it takes a queued run, as the page's own fields show it.
    assert run["fields"]["host"] == "-" and run["fields"]["started_at"] != "-"
    Backup.objects.filter(pk=running_backup.pk).update(host="db1", worker="db1 pid 4242")
    fields = client.get(reverse("admin:backups_app_backup_progress"), {"id": running_backup.pk}).json()["runs"][
        str(running_backup.pk)]["fields"]
    page = client.get(reverse("admin:backups_app_backup_change", args=[running_backup.pk])).content.decode()
    for name, text in fields.items():
        assert re.search(rf'field-{name}\b.*?<div class="readonly">{re.escape(text)}</div>', page, re.S), (name, text)
    assert (fields["host"], fields["worker"]) == ("db1", "db1 pid 4242")

    Backup.objects.filter(pk=running_backup.pk).update(status=RunStatus.FAILED)
    run = client.get(reverse("admin:backups_app_backup_progress"), {"id": running_backup.pk}).json()["runs"]
    assert run[str(running_backup.pk)]["active"] is False and "log" not in run[str(running_backup.pk)]


def test_the_progress_poll_needs_the_view_permission(client, running_backup):
    client.force_login(staff_member("view_restore"))
    assert client.get(reverse("admin:backups_app_backup_progress"), {"id": running_backup.pk}).status_code == 403
    client.logout()
    response = client.get(reverse("admin:backups_app_backup_progress"), {"id": running_backup.pk})
    assert response.status_code == 302 and "/login/" in response.url


def readonly_html(page, name):
    """The HTML inside field ``name``'s readonly box on an admin page."""
    start = page.index('<div class="readonly">', page.index(f"field-{name}")) + len('<div class="readonly">')
    depth, at = 1, start
    while depth:  # to the matching </div>: the plan's box holds divs of its own
        opening, closing = page.find("<div", at), page.find("</div>", at)
        depth, at = (depth + 1, opening + 4) if -1 < opening < closing else (depth - 1, closing + 6)
    return page[start:at - 6]


def test_a_running_restore_page_gets_its_plan_and_safety_backup_in_place(admin_stack, client):
    """A restore's page opened while it verifies shows no plan and no safety backup yet; the poll
    brings both, once the run has them, as the page then renders them (the link, the counts table)."""
    backup = backups.create_backup()
    restore = Restore.objects.create(restore_id="restore_20990101_000000", backup=backup,
                                     source_backup_id=backup.backup_id, components=backup.components,
                                     status=RunStatus.IN_PROGRESS, started_at=timezone.now())
    client.force_login(staff_member("view_restore", "view_backup"))
    page = client.get(reverse("admin:backups_app_restore_change", args=[restore.pk])).content.decode()
    assert readonly_html(page, "plan_view") == "—" and readonly_html(page, "safety_backup") == "-"

    safety = backups.create_backup(kind=Backup.Kind.SAFETY)
    Restore.objects.filter(pk=restore.pk).update(plan=restores.plan_restore(backup.backup_id), safety_backup=safety)
    fields = client.get(reverse("admin:backups_app_restore_progress"), {"id": restore.pk}).json()["runs"][
        str(restore.pk)]["fields"]
    page = client.get(reverse("admin:backups_app_restore_change", args=[restore.pk])).content.decode()
    assert fields["safety_backup"] == readonly_html(page, "safety_backup")
    assert fields["plan_view"] == readonly_html(page, "plan_view")
    assert f">{safety.backup_id}</a>" in fields["safety_backup"] and 'class="plan-table"' in fields["plan_view"]
