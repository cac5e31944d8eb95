from backups_app.management.commands._base import ServiceCommand
from backups_app.services import sweeping


class Command(ServiceCommand):
    help = ("Mark runs whose worker stopped sending heartbeats as failed and release their locks; hand queued runs "
            "no worker started to the queue again. Waits for a sweep running on another worker.")

    def handle(self, *args, **opts):
        self.stdout.write(f"{sweeping.sweep(wait=True)} stale run(s) marked failed")
