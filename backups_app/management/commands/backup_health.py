import json

from django.core.management.base import CommandError

from backups_app.management.commands._base import ServiceCommand
from backups_app.services.health import check_health


class Command(ServiceCommand):
    help = "The checks of GET /api/system/health; exits 1 when any fails (for cron and monitoring agents)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the same JSON as the endpoint.")

    def handle(self, *args, **opts):
        report = check_health()
        if opts["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            for name, check in report["checks"].items():
                detail = check.get("error") or check.get("note") or ""
                self.stdout.write(f"{'OK' if check['ok'] else 'FAIL':4} {name}" + (f": {detail}" if detail else ""))
                for component, state in check.get("components", {}).items():
                    self.stdout.write(f"       {component}: " + (state.get("error") or f"{state['age_hours']} h old"))
        if report["status"] != "ok":
            raise CommandError("unhealthy: " + ", ".join(n for n, c in report["checks"].items() if not c["ok"]))
