"""Run ids: ``backup_YYYYMMDD_HHMMSS`` (UTC) with ``_N`` on collision. Validated wherever accepted,
so an id can safely become a storage prefix."""

import re

from django.utils import timezone

from backups_app.errors import InvalidId

BACKUP_ID_RE = re.compile(r"^backup_[0-9]{8}_[0-9]{6}(?:_[0-9]{1,4})?$")
RESTORE_ID_RE = re.compile(r"^restore_[0-9]{8}_[0-9]{6}(?:_[0-9]{1,4})?$")
ARTIFACT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


MAX_SUFFIX = 9999  # the validators accept _1 .. _9999


def run_id_candidates(prefix, start=0):
    """The ids for ``prefix`` ('backup' or 'restore') this second, in order: the bare one, then
    ``_N`` from ``start`` on. Which one is free is the caller's to decide (services/run_ids.py)."""
    base = f"{prefix}_{timezone.now():%Y%m%d_%H%M%S}"
    if start == 0:
        yield base
    for n in range(max(start, 1), MAX_SUFFIX + 1):
        yield f"{base}_{n}"


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
