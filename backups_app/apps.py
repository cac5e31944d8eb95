from django.apps import AppConfig


class BackupsAppConfig(AppConfig):
    name = "backups_app"
    verbose_name = "Backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from backups_app import checks, signals  # noqa: F401  (registers checks and receivers)
        from backups_app import token_admin  # noqa: F401  (registers the API token admin)
        from backups_app import admin_ops, checks_ops, signals_ops  # noqa: F401  (operations admin, checks, receivers)
