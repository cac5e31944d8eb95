"""Backup and restore ids (archive/ids.py): only the exact shape is accepted."""

import pytest

from backups_app.archive.ids import validate_backup_id
from backups_app.errors import InvalidId


def test_ids_with_a_trailing_newline_are_refused():
    with pytest.raises(InvalidId):
        validate_backup_id("backup_20260101_120000\n")
