"""What the backup commands share: BackupError becomes a CommandError (non-zero exit, clean text)."""

from django.core.management.base import BaseCommand, CommandError

from backups_app.errors import BackupError
from backups_app.parsing import comma_list


class ServiceCommand(BaseCommand):
    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except BackupError as exc:
            raise CommandError(str(exc)) from None


def split_names(value):
    """``--components a,b`` → ["a", "b"]; not given → None (everything); given empty → [] (an error
    in the services, never "everything")."""
    return None if value is None else comma_list(value)
