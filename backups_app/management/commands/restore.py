import json
import sys

from django.core.management.base import CommandError

from backups_app.errors import ConfirmationRequired
from backups_app.management.commands._base import ServiceCommand, split_names
from backups_app.models import RunStatus, Trigger
from backups_app.services import plan_table, restores


class Command(ServiceCommand):
    help = "Restore a backup (all its components unless --components is given), with a safety backup first."

    def add_arguments(self, parser):
        parser.add_argument("backup_id", help="backup_YYYYMMDD_HHMMSS or 'latest'")
        parser.add_argument("--components", help="Comma-separated source names.")
        parser.add_argument("--set", action="append", default=[], metavar="COMPONENT.KEY=VALUE",
                            help="A restore option for one component (repeatable).")
        parser.add_argument("--dry-run", action="store_true", help="Verify and show the plan; change nothing.")
        parser.add_argument("--json", action="store_true", help="With --dry-run: the plan as JSON, not a table.")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument("--async", dest="run_async", action="store_true")

    def handle(self, *args, **opts):
        names, options = split_names(opts["components"]), restores.parse_option_assignments(opts["set"])
        if opts["dry_run"]:
            plan = restores.plan_restore(opts["backup_id"], names, options)
            self.stdout.write(json.dumps(plan, indent=2, default=str) if opts["json"] else plan_table.plan_text(plan))
            if not plan["ok"]:
                raise CommandError("The restore would be refused: " + "; ".join(plan["refusals"]))
            return
        try:
            restore = restores.start_restore(opts["backup_id"], names, options, confirm=opts["yes"],
                                             trigger=Trigger.CLI, run_async=opts["run_async"])
        except ConfirmationRequired as required:
            self._confirm(required.plan)
            restore = restores.start_restore(opts["backup_id"], names, options, confirm=True, trigger=Trigger.CLI,
                                             run_async=opts["run_async"])
        if restore.status not in (RunStatus.COMPLETED, RunStatus.PENDING):
            raise CommandError(f"Restore {restore.restore_id} {restore.status}: {restore.error}")
        self.stdout.write(restore.restore_id)

    def _confirm(self, plan):
        self.stderr.write(plan_table.plan_text(plan))
        if not sys.stdin.isatty():
            raise CommandError("Confirmation required: pass --yes (no terminal to ask on).")
        answer = input(f"Type the backup id ({plan['backup_id']}) to restore: ").strip()
        if answer != plan["backup_id"]:
            raise CommandError("Not confirmed; nothing was changed.")
