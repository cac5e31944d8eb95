"""A real stack for the API tests (PostgreSQL database, SQLite file, uploads folder), staff users
with tokens, and django-q2 in sync mode so that enqueued runs really execute in the test."""

import sqlite3
from contextlib import closing

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from backups_app.services import tokens
from tests.conftest import pg_connect, pg_options

PG_ENGINE = "backups_app.components.postgres.PostgresComponent"
SQLITE_ENGINE = "backups_app.components.sqlite.SQLiteComponent"
UPLOADS_ENGINE = "backups_app.components.uploads.UploadsComponent"


def make_stack(root, dbname):
    """Fill the three stores with known data; returns their source options."""
    with pg_connect(dbname) as conn:
        conn.execute("CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL)")
        conn.execute("INSERT INTO documents (title) SELECT 'doc ' || g FROM generate_series(1, 150) g")
    app_db = root / "app.sqlite3"
    with closing(sqlite3.connect(app_db)) as conn, conn:
        conn.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO chunks (body) VALUES (?)", [(f"chunk {i}",) for i in range(40)])
    uploads = root / "uploads"
    (uploads / "sub").mkdir(parents=True)
    (uploads / "a.txt").write_text("alpha\n")
    (uploads / "sub" / "b.bin").write_bytes(bytes(range(256)) * 64)
    return {"postgres": (PG_ENGINE, pg_options(dbname)),
            "sqlite": (SQLITE_ENGINE, {"paths": [str(app_db)]}),
            "uploads": (UPLOADS_ENGINE, {"path": str(uploads)})}


@pytest.fixture
def stack(sources, tmp_path, pg_database):
    root = tmp_path / "stack"
    root.mkdir()
    sources(**make_stack(root, pg_database))
    return {"root": root, "pg": pg_database, "sqlite": root / "app.sqlite3", "uploads": root / "uploads"}


def staff_user(username, *perms, superuser=False, password=None):
    user = User.objects.create_user(username, password=password, is_staff=True, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def token_client(user):
    _record, token = tokens.create_token(user)
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def admin_api(db):
    """A client authenticated by bearer token as a superuser."""
    return token_client(staff_user("root", superuser=True))
