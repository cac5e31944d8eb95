"""The stacks the service tests run on besides tests/conftest.py's: five text files and a SQLite
table for the backup and restore flows, PostgreSQL with the demo files for the rehearsal, and every
store at once."""

import pytest

from tests import stacks
from tests.conftest import new_bucket


@pytest.fixture
def service_stack(sources, tmp_path):
    """Uploads (f0..f4.txt, 1000 lines "file <i>" each) and SQLite (t: 50 rows) sources; returns
    (uploads_dir, sqlite_path)."""
    root = tmp_path / "stack"
    sources(**stacks.files_stack(root, {f"f{i}.txt": f"file {i}\n" * 1000 for i in range(5)}, "t", range(50)))
    return root / "uploads", root / "app.sqlite3"


@pytest.fixture
def full_stack(sources, tmp_path, pg_database):
    """PostgreSQL (docs: 250 rows, rag.chunks: 1000) and the demo uploads and SQLite; returns
    (database, uploads_dir, sqlite_path)."""
    root = tmp_path / "stack"
    sources(**stacks.full_stack(root, pg_database))
    return pg_database, root / "uploads", root / "app.sqlite3"


@pytest.fixture
def whole_stack(sources, tmp_path, pg_database, redis_url, qdrant_path, moto_endpoint):
    """Every store configured, with data (stacks.whole_stack); returns (state, damage)."""
    options, state, damage = stacks.whole_stack(tmp_path, pg_database, redis_url, qdrant_path, moto_endpoint,
                                                new_bucket(moto_endpoint))
    sources(**options)
    return state, damage
