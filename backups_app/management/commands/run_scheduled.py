from django.core.management.base import CommandError

from backups_app.management.commands._base import ServiceCommand
from backups_app.models import RunStatus
from backups_app.services import schedules


class Command(ServiceCommand):
    help = ("Run one scheduled job now, as its django-q2 schedule does: a daily/weekly/monthly backup followed "
            "by a prune, or the restore rehearsal of the newest backup. The cron lines of "
            "scripts/backup/schedule.sh call this.")

    def add_arguments(self, parser):
        parser.add_argument("job", choices=["daily", "weekly", "monthly", "rehearsal"])

    def handle(self, *args, **opts):
        if opts["job"] == "rehearsal":
            run = schedules.run_rehearsal_job()
            name = f"rehearsal of {run.source_backup_id}"
        else:
            run = schedules.run_backup_job(opts["job"])
            name = run.backup_id
        if run.status != RunStatus.COMPLETED:
            raise CommandError(f"{name} {run.status}: {run.error}")
        self.stdout.write(f"{name}: {run.status}")
