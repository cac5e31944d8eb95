"""Tar extraction that refuses anything that could escape the target folder or create devices:
absolute names, ``..``, links pointing outside, device files and FIFOs. Streams (``r|*``)."""

import glob
import json
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path

from backups_app.archive.spool import scratch_folder, spool_dir, spool_file
from backups_app.errors import UnsafeArchive
from backups_app.faults import fault_point

# Longer paths make os.path.realpath stop resolving links (ENAMETOOLONG is taken for "not a
# link"), which is how CVE-2025-4517 walks out of tarfile's own 'data' filter on Python < 3.11.13.
MAX_PATH_BYTES = 3000
# The suffix of the journal a folder swap keeps in the spool while it runs.
SWAP_JOURNAL = ".swap.json"


def is_inside(root, path):
    return path == root or path.startswith(root + os.sep)


def check_member(member, root=None):
    """Refuse a member that could leave the folder. Without ``root`` the checks read the names
    only; with ``root`` (the real path of the folder being extracted into) the member's parent
    and a link's target are also resolved on disk, through the links extracted so far, so that
    chains of relative links cannot escape either."""
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "\\" in name or "\x00" in name:
        raise UnsafeArchive(f"Refusing archive member {name!r}: absolute path or '..'.")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeArchive(f"Refusing archive member {name!r}: device files and FIFOs are not allowed.")
    if member.issym() or member.islnk():
        target = member.linkname
        resolved = posixpath.normpath(
            posixpath.join(posixpath.dirname(name), target) if member.issym() else target
        )
        if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
            raise UnsafeArchive(f"Refusing archive member {name!r}: link to {target!r} leaves the folder.")
    if root is None:
        return
    path = os.path.join(root, name)
    if len(os.fsencode(path)) + len(os.fsencode(member.linkname)) > MAX_PATH_BYTES:
        raise UnsafeArchive(f"Refusing archive member {name[:80]!r}…: path too long to check safely.")
    parent = os.path.realpath(os.path.dirname(path))
    if not is_inside(root, parent):
        raise UnsafeArchive(f"Refusing archive member {name!r}: it goes through a link that leaves the folder.")
    if member.issym() or member.islnk():
        base = parent if member.issym() else root
        if not is_inside(root, os.path.realpath(os.path.join(base, member.linkname))):
            raise UnsafeArchive(f"Refusing archive member {name!r}: link to {member.linkname!r} leaves the folder.")


def safe_extract(fileobj, dest, mode="r|", select=None):
    """Extract a tar stream into ``dest`` (which must exist); with ``select`` (a predicate on
    member names) only the members it accepts. Returns (files, bytes)."""
    root = os.path.realpath(dest)
    files = size = 0
    with tarfile.open(fileobj=fileobj, mode=mode) as tar:
        for member in tar:
            if select is not None and not select(member.name):
                continue
            check_member(member, root)
            # The 'data' filter re-checks the same rules and drops unsafe modes (setuid, ...).
            tar.extract(member, root, filter="data")
            if member.isfile():
                files += 1
                size += member.size
    return files, size


def folder_counts(path):
    """(files, bytes) under ``path``, not following symlinks."""
    files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            if os.path.isfile(full) and not os.path.islink(full):
                files += 1
                size += os.path.getsize(full)
    return files, size


def extract_beside(stream, live, check=None, log=None, select=None):
    """Extract a tar stream into a new sibling folder of ``live``, run ``check(folder)``, then
    swap it in, so ``live`` is replaced whole or not at all. Returns (files, bytes). A journal in
    the spool names ``live`` meanwhile: if the process dies, ``recover_swaps`` puts it right."""
    parent = os.path.dirname(live)
    os.makedirs(parent, exist_ok=True)
    with swap_journal(live):
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(live)}.restore-", dir=parent)
        try:
            files, size = safe_extract(stream, staging, mode="r|", select=select)
            if check:
                check(staging)
            fault_point("swap.extracted")
            if log:  # a restore's log raises if the run was taken from it: then nothing is swapped
                log(f"swapping the extracted folder into {live}")
            _take_folder_attributes(staging, live)
            swap_in(staging, live)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return files, size


@contextmanager
def swap_journal(live):
    """While ``live`` is being replaced through ``.<name>.restore-*`` / ``.<name>.old-*`` siblings:
    a note in the spool naming it, so that if the process dies ``recover_swaps`` puts it right."""
    with spool_file(SWAP_JOURNAL) as journal:
        Path(journal).write_text(json.dumps({"live": live}))
        yield


def recover_swaps():
    """Put right what killed swaps left (call it only while no restore runs): a live folder
    moved aside and not replaced is put back (the store is as before the restore), leftover
    ``.<name>.restore-*`` / ``.<name>.old-*`` folders are removed. Returns readable lines."""
    notes = []
    for journal in spool_dir().glob(f"*{SWAP_JOURNAL}"):
        try:
            live = json.loads(journal.read_text())["live"]
        except (ValueError, KeyError):  # killed while writing it: nothing was moved yet
            live = None
        if live:
            notes += _recover_swap(live)
        journal.unlink()
    return notes


def _recover_swap(live):
    parent, name = os.path.split(live)
    aside = sorted(glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.old-*")), key=os.path.getmtime)
    notes = []
    if aside and not os.path.lexists(live):
        os.rename(aside.pop(), live)
        notes.append(f"{live} was moved aside by a restore that was killed and is put back as it was before.")
    for leftover in aside + glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.restore-*")):
        if os.path.isdir(leftover) and not os.path.islink(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
        else:  # a config file's temporary copy
            os.unlink(leftover)
        notes.append(f"Removed {leftover}, left by a killed restore.")
    return notes


def _take_folder_attributes(staging, live):
    """mkdtemp makes a private (0700) folder; the swapped-in folder keeps the live one's mode and
    owner (or the umask's default), so the app and web server can still read their files."""
    try:
        st = os.stat(live)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        return
    os.chmod(staging, stat.S_IMODE(st.st_mode))
    if os.geteuid() == 0:
        os.chown(staging, st.st_uid, st.st_gid)


def restore_folder(reader, component, artifacts, live, log, absent=False, check=None, select=None):
    """Put back a folder that ``component`` stored as one tar artifact: extracted beside ``live``
    (only the members ``select`` accepts, when given), checked, swapped in; or removed when the
    backup recorded the folder as absent (a safety backup of a folder that did not exist yet).
    Returns (files, bytes)."""
    if absent:
        log(f"{component}: the folder did not exist in this backup; removing {live}")
        shutil.rmtree(live, ignore_errors=True)
        return 0, 0
    (name,) = artifacts
    with reader.open_decompressed(name) as stream:
        files, size = extract_beside(stream, live, check=check, log=log, select=select)
    log(f"{component}: extracted {files} files, {size} bytes from {name} and swapped them into {live}")
    return files, size


def swap_in(staging, live):
    """Put folder ``staging`` in place of ``live`` (two renames; the old folder is removed)."""
    if not os.path.exists(live):
        os.rename(staging, live)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(live)}.old-", dir=os.path.dirname(live))
    os.rmdir(old)
    os.rename(live, old)
    fault_point("swap.moved_aside")
    try:
        os.rename(staging, live)
    except BaseException:
        os.rename(old, live)
        raise
    if os.path.isdir(old) and not os.path.islink(old):
        shutil.rmtree(old, ignore_errors=True)
    else:  # a file swapped by path (uploads.paths)
        os.unlink(old)


@contextmanager
def extracted(stream, prefix):
    """Extract a tar stream into a new scratch folder in the spool; removed on exit."""
    with scratch_folder(prefix) as scratch:
        safe_extract(stream, scratch, mode="r|")
        yield scratch
