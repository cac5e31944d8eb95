from backups_app.management.commands._base import ServiceCommand
from backups_app.services.schedules import setup_schedules


class Command(ServiceCommand):
    help = ("Create or update the django-q2 schedules from settings (BACKUP_SCHEDULE_*): daily, weekly and "
            "monthly backups, the weekly restore rehearsal and the stale-run sweep. Safe to run again.")

    def handle(self, *args, **opts):
        outcome = setup_schedules()
        for state, names in outcome.items():
            for name in names:
                self.stdout.write(f"{state:9} {name}")
