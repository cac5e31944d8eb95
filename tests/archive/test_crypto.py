"""age encryption at rest: invisible to components, readable by the stock age and sha256sum
tools, and refusing damaged bytes or the wrong key with a clear error."""

import hashlib
import json
import os
import subprocess

import pytest
from pyrage import x25519

from backups_app.archive.reader import BackupSetReader, load_manifest
from backups_app.archive.storage import backup_storage
from backups_app.archive.writer import BackupSetWriter
from backups_app.errors import BackupError, ConfigurationError

BACKUP_ID = "backup_20260101_000000"
PLAIN = b"".join(hashlib.sha256(str(i).encode()).hexdigest().encode() * 50 for i in range(3000))  # ~9.6 MB


def write_set(compressed=PLAIN, plain=b"dump bytes " * 1000):
    writer = BackupSetWriter(backup_storage(), BACKUP_ID)
    writer.current_component = "files"
    with writer.open_compressed("files.tar") as (_name, out):
        for start in range(0, len(compressed), 65536):
            out.write(compressed[start:start + 65536])
    writer.current_component = "db"
    with writer.open("db.dump") as out:
        out.write(plain)
    return writer.finish({"backup_id": BACKUP_ID, "components": {"files": {}, "db": {}}})


def reader():
    storage = backup_storage()
    return BackupSetReader(storage, BACKUP_ID, load_manifest(storage, BACKUP_ID))


def test_encrypted_artifacts_round_trip_and_open_with_stock_tools(age_key, backup_storage_dir, tmp_path):
    manifest = write_set()
    folder = backup_storage_dir / BACKUP_ID
    assert sorted(os.listdir(folder)) == ["SHA256SUMS", "db.dump.age", "files.tar.zst.age", "metadata.json"]
    meta = manifest["artifacts"]["files.tar.zst"]
    assert meta["file"] == "files.tar.zst.age" and meta["encryption"] == "age" and meta["compression"] == "zstd"
    stored = (folder / "files.tar.zst.age").read_bytes()
    assert meta["sha256"] == hashlib.sha256(stored).hexdigest() and PLAIN[:1000] not in stored

    # Components read their bytes back as they wrote them.
    with reader().open_decompressed("files.tar.zst") as stream:
        assert stream.read(len(PLAIN) + 1) + stream.read() == PLAIN
    with reader().open("db.dump") as stream:
        assert stream.read(1 << 20) == b"dump bytes " * 1000
    assert reader().verify(decrypt=True) == {"db.dump": None, "files.tar.zst": None}

    # Stock tools, no key needed for the checksums: sha256sum -c, then age -d and zstd -d.
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=folder, check=True)
    out = tmp_path / "files.tar.zst"
    subprocess.run(["age", "-d", "-i", str(age_key), "-o", str(out), str(folder / "files.tar.zst.age")], check=True)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == meta["plaintext_sha256"]
    assert subprocess.run(["zstd", "-dc", str(out)], capture_output=True, check=True).stdout == PLAIN
    manifest_on_disk = json.loads((folder / "metadata.json").read_text())
    assert manifest_on_disk["artifacts"]["db.dump"]["plaintext_size"] == len(b"dump bytes " * 1000)


def test_quick_verify_needs_no_key_but_decrypting_does(age_key, settings):
    write_set()
    settings.BACKUP_AGE_IDENTITY_FILE = ""
    assert reader().verify() == {"db.dump": None, "files.tar.zst": None}
    errors = reader().verify(decrypt=True)
    assert all("BACKUP_AGE_IDENTITY_FILE is not set" in errors[name] for name in errors)
    with pytest.raises(ConfigurationError, match="BACKUP_AGE_IDENTITY_FILE is not set"):
        reader().open("db.dump")


def test_wrong_identity_is_named_and_its_secret_never_shown(age_key, settings, tmp_path):
    write_set()
    other = x25519.Identity.generate()
    wrong = tmp_path / "other.txt"
    wrong.write_text(f"{other}\n")
    settings.BACKUP_AGE_IDENTITY_FILE = str(wrong)
    errors = reader().verify(decrypt=True)
    assert "no identity in BACKUP_AGE_IDENTITY_FILE matches" in errors["db.dump"]
    assert settings.BACKUP_AGE_RECIPIENTS[0] in errors["db.dump"]
    assert str(other) not in errors["db.dump"]
    wrong.write_text("AGE-SECRET-KEY-1NOTAKEY\n")
    with pytest.raises(ConfigurationError) as excinfo:
        reader().open("db.dump")
    assert "line 1 is not an AGE-SECRET-KEY" in str(excinfo.value) and "NOTAKEY" not in str(excinfo.value)


@pytest.mark.parametrize("offset", [200, -100])  # inside the age header / inside the last payload chunk
def test_tampered_stored_bytes_are_refused(age_key, backup_storage_dir, offset):
    write_set()
    path = backup_storage_dir / BACKUP_ID / "db.dump.age"
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    assert "does not match its manifest" in reader().verify()["db.dump"]
    with pytest.raises(BackupError, match="does not match its manifest|damaged"):
        with reader().open("db.dump") as stream:
            while stream.read(65536):
                pass
    assert reader().verify(["files.tar.zst"], decrypt=True) == {"files.tar.zst": None}


def test_bad_recipient_fails_the_write_with_a_hint(settings):
    settings.BACKUP_AGE_RECIPIENTS = ["age1notakey"]
    writer = BackupSetWriter(backup_storage(), BACKUP_ID)
    with pytest.raises(ConfigurationError, match="not an age X25519 public key"):
        with writer.open("x.bin") as out:
            out.write(b"x")
