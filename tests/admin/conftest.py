"""What the admin tests share: logged-in staff, staff users with some permissions, the small stack
the backup and restore flows run on, and backups of several ages for the Retention page."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from backups_app.models import Backup
from backups_app.services import backups
from tests import stacks

RETENTION = "/admin/backups_app/backup/retention/"
PRUNE = "/admin/backups_app/backup/retention/prune/"
CHANGELIST = "/admin/backups_app/backup/"


@pytest.fixture
def admin_stack(sources, tmp_path, sync_worker):
    """Uploads (a.txt: "alpha") and SQLite (notes: "one", "two") sources; the runs the admin
    enqueues execute at once. Returns (uploads_dir, sqlite_path)."""
    root = tmp_path / "stack"
    sources(**stacks.files_stack(root, {"a.txt": "alpha"}, "notes", ["one", "two"]))
    return root / "uploads", root / "app.sqlite3"


def staff_member(*codenames):
    """A new staff user (user0, user1, ...) with only these backups_app permissions."""
    user = User.objects.create_user(f"user{User.objects.count()}", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="backups_app",
                                                        codename__in=codenames))
    return user


@pytest.fixture
def superuser_client(client):
    """The test client logged in as superuser "boss"."""
    client.force_login(User.objects.create_superuser("boss", "", "pw"))
    return client


@pytest.fixture
def staff(client, django_user_model):
    """Superuser "admin", logged in on the test client."""
    user = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")
    client.force_login(user)
    return user


@pytest.fixture
def three_backups(demo_stack, settings):
    """Backups made today, 3 days ago and 40 days ago (policy: 7 daily, 30 days, 10 at most)."""
    settings.BACKUP_KEEP_DAILY, settings.BACKUP_RETENTION_DAYS, settings.BACKUP_MAX_COUNT = 7, 30, 10
    made = [backups.create_backup() for _ in range(3)]
    now = timezone.now()
    for backup, age in zip(made, (40, 3, 0)):
        Backup.objects.filter(pk=backup.pk).update(created_at=now - timedelta(days=age))
    return made
