"""Extraction of untrusted tars (archive/safetar.py): absolute paths, traversal, links out of the
folder (also chained, also past PATH_MAX), devices and FIFOs are refused before anything is written."""

import io
import os
import tarfile

import pytest


def malicious_tar(member):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return buf.getvalue()


def _member(name, kind=tarfile.REGTYPE, linkname="", size=1):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, size if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("member", [
    _member("/etc/evil"),
    _member("../escape.txt"),
    _member("ok/../../escape.txt"),
    _member("link", tarfile.SYMTYPE, "../../etc/passwd"),
    _member("abs-link", tarfile.SYMTYPE, "/etc/passwd"),
    _member("hard", tarfile.LNKTYPE, "../outside"),
    _member("dev", tarfile.CHRTYPE),
    _member("fifo", tarfile.FIFOTYPE),
], ids=lambda m: m.name)
def test_safe_extract_refuses_malicious_members(member, tmp_path):
    from backups_app.archive.safetar import safe_extract
    from backups_app.errors import UnsafeArchive

    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchive, match="Refusing archive member"):
        safe_extract(io.BytesIO(malicious_tar(member)), dest)
    assert not (tmp_path / "escape.txt").exists()


def _tar_of(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _link(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, b""


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, b""


def _file(name, data=b"pwned\n"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_chained_relative_links_cannot_escape(tmp_path):
    """Each link alone stays inside by its text; resolved through the one before, it does not."""
    from backups_app.archive.safetar import safe_extract
    from backups_app.errors import UnsafeArchive

    dest = tmp_path / "x" / "y" / "dest"
    dest.mkdir(parents=True)
    archive = _tar_of([_dir("a"), _dir("a/b"), _link("a/b/c", ".."), _link("a/b/c/d", "../../.."),
                       _file("a/b/c/d/PWNED")])
    with pytest.raises(UnsafeArchive, match="'a/b/c/d': link to '../../..' leaves the folder"):
        safe_extract(io.BytesIO(archive), dest)
    assert not list(tmp_path.rglob("PWNED"))


def test_paths_too_long_to_resolve_are_refused(tmp_path):
    """CVE-2025-4517: past PATH_MAX, realpath stops resolving links and tarfile's own filter is
    fooled (Python < 3.11.13); such members are refused before anything is written."""
    from backups_app.archive.safetar import safe_extract
    from backups_app.errors import UnsafeArchive

    dest = tmp_path / "dest"
    dest.mkdir()
    long_dir, steps, members, path = "d" * 247, "abcdefghijklmnop", [], ""
    for step in steps:
        members += [_dir(os.path.join(path, long_dir)), _link(os.path.join(path, step), long_dir)]
        path = os.path.join(path, long_dir)
    link_path = os.path.join(*steps, "l" * 254)
    members += [_link(link_path, "../" * len(steps)), _link("escape", link_path + "/.."), _file("escape/PWNED")]
    with pytest.raises(UnsafeArchive, match="path too long to check safely"):
        safe_extract(io.BytesIO(_tar_of(members)), dest)
    assert not list(tmp_path.rglob("PWNED"))
