from django.core.management.base import CommandError

from backups_app.management.commands._base import ServiceCommand
from backups_app.services import retention


class Command(ServiceCommand):
    help = ("Delete the backups the retention policy does not keep, applied per component (see "
            "docs/operations.md); --dry-run shows which components each kept backup is kept for.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Show every backup's fate; delete nothing.")

    def handle(self, *args, **opts):
        if opts["dry_run"]:
            for backup, decision in retention.plan():
                self.stdout.write(f"{'keep' if decision.keep else 'delete':6} {backup.backup_id:28} {decision.summary}")
            return
        result = retention.prune()
        for backup_id in result["deleted"]:
            self.stdout.write(f"deleted {backup_id}")
        self.stdout.write(f"{len(result['deleted'])} deleted, {result['kept']} kept")
        if result["errors"]:
            raise CommandError("; ".join(f"{k}: {v}" for k, v in result["errors"].items()))
