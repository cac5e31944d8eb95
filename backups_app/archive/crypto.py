"""Encryption at rest with age (pyrage): every artifact is encrypted to the X25519 recipients in
``BACKUP_AGE_RECIPIENTS`` and stored as ``<name>.age``, which stock ``age -d -i key.txt``
decrypts. Both directions stream through a pipe, so memory stays flat."""

from contextlib import contextmanager

import pyrage
from django.conf import settings
from pyrage import x25519

from backups_app.archive.storage import PipeReader, PipeWriter
from backups_app.errors import BackupError, ConfigurationError

SUFFIX = ".age"
METHOD = "age"


def recipients():
    """The configured public keys, parsed; [] means encryption is off."""
    parsed = []
    for text in settings.BACKUP_AGE_RECIPIENTS:
        try:
            parsed.append(x25519.Recipient.from_str(text))
        except pyrage.RecipientError as exc:
            raise ConfigurationError(
                f"BACKUP_AGE_RECIPIENTS: {text[:16]}… is not an age X25519 public key ({exc}); "
                "use the 'age1…' line age-keygen prints as 'Public key'."
            ) from None
    return parsed


def manifest_entry():
    """What the manifest records about encryption (public keys only)."""
    keys = list(settings.BACKUP_AGE_RECIPIENTS)
    return {"method": METHOD, "recipients": keys} if keys else None


def identities():
    """The private keys from ``BACKUP_AGE_IDENTITY_FILE`` (age-keygen's format)."""
    path = settings.BACKUP_AGE_IDENTITY_FILE
    if not path:
        raise ConfigurationError(
            "This backup is encrypted with age and BACKUP_AGE_IDENTITY_FILE is not set; point it at the "
            "key file (age-keygen -o key.txt) whose public key the backup was encrypted to."
        )
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    except OSError as exc:
        raise ConfigurationError(f"BACKUP_AGE_IDENTITY_FILE {path}: cannot read it ({exc.strerror}).") from None
    parsed = []
    for number, line in enumerate(lines, 1):
        try:
            parsed.append(x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            # The line is a secret: never quote it.
            raise ConfigurationError(f"BACKUP_AGE_IDENTITY_FILE {path}: key line {number} is not an "
                                     "AGE-SECRET-KEY-1… identity.") from None
    if not parsed:
        raise ConfigurationError(f"BACKUP_AGE_IDENTITY_FILE {path} holds no AGE-SECRET-KEY-1… identity.")
    return parsed


@contextmanager
def encrypting(sink, keys, what):
    """A writable that age-encrypts into ``sink``; with no ``keys`` it is ``sink`` itself."""
    if not keys:
        yield sink
        return
    pipe = PipeWriter(lambda reader: pyrage.encrypt_io(reader, sink, keys), what)
    try:
        yield pipe
    except BaseException:
        pipe.abort()
        raise
    pipe.close()


def decrypting(stored, keys, name, recipients_used, stored_error):
    """A readable of the plaintext of ``stored`` (age). ``stored_error()`` tells whether the stored
    bytes failed their checksum, which is then the error reported."""

    def describe(exc):
        damaged = stored_error()
        if damaged is not None:
            return damaged
        if "No matching keys" in str(exc):
            return BackupError(
                f"Cannot decrypt {name}: no identity in BACKUP_AGE_IDENTITY_FILE matches the recipients it was "
                f"encrypted to ({', '.join(recipients_used) or 'unknown'})."
            )
        return BackupError(f"Cannot decrypt {name}: {exc}. The stored copy is damaged or was changed; "
                           "restore from another copy or backup.")

    def produce(writer):
        with stored:
            pyrage.decrypt_io(stored, writer, keys)

    return PipeReader(produce, describe)
