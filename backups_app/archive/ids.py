"""Run ids: ``backup_YYYYMMDD_HHMMSS`` (UTC) with ``_N`` on collision. Validated wherever accepted,
so an id can safely become a storage prefix."""

import re

from django.utils import timezone

from backups_app.errors import InvalidId

BACKUP_ID_RE = re.compile(r"^backup_[0-9]{8}_[0-9]{6}(?:_[0-9]{1,4})?$")
RESTORE_ID_RE = re.compile(r"^restore_[0-9]{8}_[0-9]{6}(?:_[0-9]{1,4})?$")
ARTIFACT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def new_run_id(prefix, taken):
    """A fresh id for ``prefix`` ('backup' or 'restore'); ``taken(id)`` says if one exists."""
    base = f"{prefix}_{timezone.now():%Y%m%d_%H%M%S}"
    candidate, n = base, 1
    while taken(candidate):
        candidate, n = f"{base}_{n}", n + 1
    return candidate


def validate_backup_id(value):
    if not isinstance(value, str) or not BACKUP_ID_RE.fullmatch(value):
        raise InvalidId(f"Invalid backup id {value!r}: expected backup_YYYYMMDD_HHMMSS or backup_YYYYMMDD_HHMMSS_N.")
    return value


def validate_restore_id(value):
    if not isinstance(value, str) or not RESTORE_ID_RE.fullmatch(value):
        raise InvalidId(f"Invalid restore id {value!r}: expected restore_YYYYMMDD_HHMMSS or restore_YYYYMMDD_HHMMSS_N.")
    return value


def validate_artifact_name(value):
    if not isinstance(value, str) or not ARTIFACT_NAME_RE.fullmatch(value) or ".." in value:
        raise InvalidId(f"Invalid artifact name {value!r}.")
    return value
