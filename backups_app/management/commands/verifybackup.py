import json

from django.core.management.base import CommandError

from backups_app.management.commands._base import ServiceCommand
from backups_app.models import RunStatus
from backups_app.services import verification


class Command(ServiceCommand):
    help = ("Verify a backup: stream every artifact and compare its SHA-256 with the manifest, or with --deep "
            "restore each component into a scratch target and compare counts (restore rehearsal).")

    def add_arguments(self, parser):
        parser.add_argument("backup_id", help="backup_YYYYMMDD_HHMMSS or 'latest'")
        parser.add_argument("--deep", action="store_true",
                            help="Restore rehearsal: temporary database/folder/file, never the live data.")
        parser.add_argument("--json", action="store_true",
                            help="Print the verification as JSON (counts, seconds and each collection's probe "
                                 "recall per component); the exit status still says whether it passed.")

    def handle(self, *args, **opts):
        result = verification.verify(opts["backup_id"], deep=opts["deep"])
        if opts["json"]:
            self.stdout.write(json.dumps(verification.as_dict(result), indent=2, ensure_ascii=False))
            if result.status != RunStatus.COMPLETED:
                raise CommandError(f"{result.source_backup_id} failed verification: {result.error}")
            return
        for name, outcome in result.results.items():
            status = "SKIPPED" if outcome.get("skipped") else ("OK" if outcome["ok"] else "FAILED")
            timing = f" restored in {outcome['seconds']} s" if "seconds" in outcome else ""
            detail = outcome.get("note") or outcome.get("error") or ""
            recall = verification.recall_text(outcome)
            self.stdout.write(f"{status:7} {name}{timing}" + (f" ({recall})" if recall else "")
                              + (f": {detail}" if detail else ""))
        if result.status != RunStatus.COMPLETED:
            raise CommandError(f"{result.source_backup_id} failed verification: {result.error}")
        passed = "rehearsal passed" if opts["deep"] else "all artifacts verified"
        self.stdout.write(f"{result.source_backup_id}: {passed}")
