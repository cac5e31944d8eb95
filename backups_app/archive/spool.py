"""The spool (BACKUP_SPOOL_DIR): local scratch space for what must exist as a file or folder
for a while (SQLite copies, rehearsal targets, restore staging). Everything made here is
removed when its ``with`` block ends."""

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings


def spool_dir():
    path = Path(settings.BACKUP_SPOOL_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def spool_file(suffix=""):
    """The path of a new empty private file in the spool."""
    fd, path = tempfile.mkstemp(suffix=suffix, dir=spool_dir())
    os.close(fd)
    try:
        yield path
    finally:
        if os.path.exists(path):
            os.unlink(path)


def new_scratch_folder(prefix):
    """A new private folder in the spool; the caller removes it."""
    return tempfile.mkdtemp(prefix=prefix, dir=spool_dir())


@contextmanager
def scratch_folder(prefix):
    path = new_scratch_folder(prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
