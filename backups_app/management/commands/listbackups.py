import json

from backups_app import formatting
from backups_app.management.commands._base import ServiceCommand
from backups_app.models import Backup

HEADER = ("BACKUP ID", "CREATED", "STATUS", "SIZE", "COMPONENTS", "DESCRIPTION")


class Command(ServiceCommand):
    help = "List backups, newest first: a table with a header row, or JSON with --json."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--all", action="store_true", help="Include safety backups (and a KIND column).")

    def handle(self, *args, **opts):
        backups = Backup.objects.all() if opts["all"] else Backup.objects.filter(kind=Backup.Kind.REGULAR)
        if opts["json"]:
            rows = [{"backup_id": b.backup_id, "status": b.status, "created_at": b.created_at.isoformat(),
                     "size_bytes": b.size_bytes, "size_mb": b.size_mb, "components": b.components,
                     "description": b.description, "trigger": b.trigger, "kind": b.kind} for b in backups]
            self.stdout.write(json.dumps(rows, indent=2))
            return
        header = HEADER + ("KIND",) if opts["all"] else HEADER
        rows = [(b.backup_id, formatting.format_date(b.created_at), b.status, formatting.human_size(b.size_bytes),
                 ",".join(b.components), b.description, b.kind)[:len(header)] for b in backups]
        self.stdout.write(formatting.text_table(header, rows) if rows else "No backups yet.")
