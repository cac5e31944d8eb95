from django.core.management.base import CommandError

from backups_app.management.commands._base import ServiceCommand
from backups_app.services import backups


class Command(ServiceCommand):
    help = "Stream every artifact of a backup and compare its SHA-256 with the manifest."

    def add_arguments(self, parser):
        parser.add_argument("backup_id", help="backup_YYYYMMDD_HHMMSS or 'latest'")

    def handle(self, *args, **opts):
        result = backups.verify_backup(opts["backup_id"])
        for name, error in result["artifacts"].items():
            self.stdout.write(f"{'FAILED' if error else 'OK':7} {name}" + (f": {error}" if error else ""))
        if not result["ok"]:
            raise CommandError(f"{result['backup_id']} failed verification.")
        self.stdout.write(f"{result['backup_id']}: all artifacts verified")
