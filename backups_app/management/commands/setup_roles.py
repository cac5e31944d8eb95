from backups_app.management.commands._base import ServiceCommand
from backups_app.services.roles import ROLES, setup_roles


class Command(ServiceCommand):
    help = (f"Create or update the staff groups {', '.join(ROLES)} with their permissions "
            "(backups_app/services/roles.py). Safe to run again. Add a staff user to a group in Users.")

    def handle(self, *args, **opts):
        for name, state in setup_roles().items():
            self.stdout.write(f"{state:9} {name}")
