from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from backups_app.management.commands._base import ServiceCommand
from backups_app.services import tokens


class Command(ServiceCommand):
    help = "Create an API bearer token for a staff user and print it (once: only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for, shown in the admin list.")

    def handle(self, *args, **opts):
        User = get_user_model()
        try:
            user = User.objects.get(**{User.USERNAME_FIELD: opts["username"]})
        except User.DoesNotExist:
            raise CommandError(f"No user {opts['username']!r}; create one with createsuperuser first.") from None
        record, token = tokens.create_token(user, opts["name"])
        self.stderr.write(f"Created token {record.prefix}… for {user.get_username()}. Store it now: "
                          "it cannot be shown again.")
        self.stdout.write(token)
