import json

from backups_app.management.commands._base import ServiceCommand
from backups_app.models import Backup


class Command(ServiceCommand):
    help = "List backups, newest first."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--all", action="store_true", help="Include safety backups.")

    def handle(self, *args, **opts):
        backups = Backup.objects.all() if opts["all"] else Backup.objects.filter(kind=Backup.Kind.REGULAR)
        rows = [{"backup_id": b.backup_id, "status": b.status, "created_at": b.created_at.isoformat(),
                 "size_mb": b.size_mb, "components": b.components, "description": b.description,
                 "trigger": b.trigger, "kind": b.kind} for b in backups]
        if opts["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        for r in rows:
            self.stdout.write(f"{r['backup_id']:28} {r['status']:12} {r['size_mb']:>10} MB  "
                              f"{','.join(r['components']):30} {r['description']}")
