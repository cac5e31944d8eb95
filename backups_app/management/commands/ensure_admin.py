"""Create the demo superuser on first run and say how to log in (used by `make run`)."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model

from backups_app.management.commands._base import ServiceCommand


class Command(ServiceCommand):
    help = "Create the 'admin' superuser with a generated password (kept in var/admin_password) if missing."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--url", default="http://127.0.0.1:8000/admin/", help="Where the admin is served.")

    def handle(self, *args, **opts):
        User = get_user_model()
        password_file = settings.VAR_DIR / "admin_password"
        if not User.objects.filter(username=opts["username"]).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(opts["username"], "", password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        shown = password_file.read_text().strip() if password_file.exists() else "(the password you set)"
        self.stdout.write(f"Log in at {opts['url']} as {opts['username']} / {shown}")
