from django.apps import AppConfig


class BackupsAppConfig(AppConfig):
    name = "backups_app"
    verbose_name = "Backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from backups_app import checks, signals  # noqa: F401  (registers the checks and the receivers)
