from django.conf import settings
from django.db import migrations, models

# "The newest run holding X" (services/health.py, the ``holds`` lookup: jsonb ``?``) without reading
# the history when no run holds X. PostgreSQL only: SQLite has no index on JSON list elements.
GIN_TABLES = ("backups_app_backup", "backups_app_verification")


def add_gin_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in GIN_TABLES:
            schema_editor.execute(f'CREATE INDEX IF NOT EXISTS "{table}_components_gin" ON "{table}" USING gin (components)')


def drop_gin_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in GIN_TABLES:
            schema_editor.execute(f'DROP INDEX IF EXISTS "{table}_components_gin"')


class Migration(migrations.Migration):

    dependencies = [
        ('backups_app', '0008_progress_entries'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='backup',
            index=models.Index(fields=['host', 'finished_at'], name='backup_host_done'),
        ),
        migrations.AddIndex(
            model_name='restore',
            index=models.Index(fields=['host', 'finished_at'], name='restore_host_done'),
        ),
        migrations.AddIndex(
            model_name='verification',
            index=models.Index(fields=['host', 'finished_at'], name='verification_host_done'),
        ),
        migrations.AddIndex(
            model_name='verification',
            index=models.Index(fields=['finished_at'], name='verification_finished'),
        ),
        migrations.RunPython(add_gin_indexes, drop_gin_indexes),
    ]
