"""Runs recorded before live progress kept each component's state as a bare string; each becomes
an entry {"state": ..., ...} (backups_app/services/progress.py), without counts or times."""

from django.db import migrations

EMPTY = {"started_at": None, "finished_at": None, "bytes_done": 0, "bytes_total": None, "items_done": 0,
         "items_total": None, "items_unit": None}


def to_entries(apps, schema_editor):
    for model in ("Backup", "Restore", "Verification"):
        runs = apps.get_model("backups_app", model).objects.all()
        for run in runs.only("pk", "progress").iterator():
            if any(isinstance(state, str) for state in run.progress.values()):
                run.progress = {name: {**EMPTY, "state": state} if isinstance(state, str) else state
                                for name, state in run.progress.items()}
                run.save(update_fields=["progress"])


def to_states(apps, schema_editor):
    for model in ("Backup", "Restore", "Verification"):
        runs = apps.get_model("backups_app", model).objects.all()
        for run in runs.only("pk", "progress").iterator():
            run.progress = {name: entry["state"] if isinstance(entry, dict) else entry
                            for name, entry in run.progress.items()}
            run.save(update_fields=["progress"])


class Migration(migrations.Migration):
    dependencies = [("backups_app", "0007_run_host_worker_issued_ids")]

    operations = [migrations.RunPython(to_entries, to_states)]
