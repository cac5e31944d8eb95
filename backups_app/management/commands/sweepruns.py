from backups_app.management.commands._base import ServiceCommand
from backups_app.services.sweep import sweep_stale_runs


class Command(ServiceCommand):
    help = "Mark runs whose worker stopped sending heartbeats as failed and release their locks."

    def handle(self, *args, **opts):
        self.stdout.write(f"{sweep_stale_runs()} stale run(s) marked failed")
