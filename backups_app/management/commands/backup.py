from django.core.management.base import CommandError

from backups_app.formatting import human_size
from backups_app.management.commands._base import ServiceCommand, split_names
from backups_app.models import RunStatus, Trigger
from backups_app.services import backups


class Command(ServiceCommand):
    help = "Back up the configured sources (all of them unless --components is given)."

    def add_arguments(self, parser):
        parser.add_argument("--components", help="Comma-separated source names, e.g. postgres,uploads.")
        parser.add_argument("--description", default="")
        parser.add_argument("--include-uploads", action="store_true",
                            help="Accepted for the seed's scripts; upload folders are included by default.")
        parser.add_argument("--async", dest="run_async", action="store_true",
                            help="Enqueue for the django-q2 worker instead of running here.")

    def handle(self, *args, **opts):
        backup = backups.create_backup(split_names(opts["components"]), description=opts["description"],
                                       trigger=Trigger.CLI, include_uploads=True if opts["include_uploads"] else None,
                                       run_async=opts["run_async"])
        if backup.status == RunStatus.FAILED:
            raise CommandError(f"Backup {backup.backup_id} failed: {backup.error}")
        if not opts["run_async"]:
            self.stderr.write(f"{backup.status}: {len(backup.components)} component(s), "
                              f"{human_size(backup.size_bytes)}")
        self.stdout.write(backup.backup_id)
