"""What the backup commands share: BackupError becomes a CommandError (non-zero exit, clean text),
and the system checks they run first are the project's own (settings, sources, storage, ...: a
misconfigured backup stops before it starts), not Django's admin and URL checks, which import the
admin's and the API's whole stack for nothing (`manage.py check` still runs them all)."""

from django.core.management.base import BaseCommand, CommandError

from backups_app import checks
from backups_app.errors import BackupError
from backups_app.parsing import comma_list


class ServiceCommand(BaseCommand):
    requires_system_checks = [checks.TAG]

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except BackupError as exc:
            raise CommandError(str(exc)) from None


def split_names(value):
    """``--components a,b`` → ["a", "b"]; not given → None (everything); given empty → [] (an error
    in the services, never "everything")."""
    return None if value is None else comma_list(value)
