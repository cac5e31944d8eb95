import json

from backups_app.management.commands._base import ServiceCommand
from backups_app.services import catalog


class Command(ServiceCommand):
    help = ("Import into the catalog the backup sets found in the primary and offsite storage that it does not "
            "know (a new server after a loss). Only sets signed with BACKUP_SIGNING_KEY are imported.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report what would be imported; import nothing.")
        parser.add_argument("--trust-unsigned", action="store_true",
                            help="Also import unsigned or unverifiable sets (recorded in the audit log).")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args, **opts):
        report = catalog.scan(dry_run=opts["dry_run"], trust_unsigned=opts["trust_unsigned"])
        if opts["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        verb = "would import" if opts["dry_run"] else "imported"
        for backup_id in report.imported:
            self.stdout.write(f"{verb:12} {backup_id}")
        for folder, reason in report.skipped.items():
            self.stdout.write(f"{'skipped':12} {folder}: {reason}")
        self.stdout.write(f"{len(report.found)} found, {len(report.imported)} {verb}, {len(report.skipped)} skipped")
