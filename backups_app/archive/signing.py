"""Authenticated manifests: ``metadata.json.sig`` holds an HMAC-SHA256 of the exact bytes of
``metadata.json``, keyed by ``BACKUP_SIGNING_KEY``, a secret that never lives in the storage.
A set found in storage (a new server's catalog is empty) is trusted only when its signature
verifies with one of the keys: whoever can write to the bucket cannot forge one.

The key setting is a comma-separated list for rotation: new sets are signed with the first key,
and a signature made by any of them verifies. ``key_id`` (the first 16 hex digits of the key's
SHA-256) tells which key signed a set without revealing it.

docs/disaster-recovery.md shows the check by hand (Python's hmac, the key read from the
environment, never from argv).
"""

import hashlib
import hmac
import json

from django.conf import settings

from backups_app.errors import BackupError

SIGNATURE_NAME = "metadata.json.sig"
ALGORITHM = "hmac-sha256"


class UntrustedSet(BackupError):
    """A stored set that does not prove it was written by this deployment."""


def keys():
    """The configured signing keys, first = the one that signs (resolved at use)."""
    return [key for key in settings.BACKUP_SIGNING_KEY if key]


def key_id(key):
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _mac(key, data):
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def signature_for(manifest_bytes):
    """The bytes of metadata.json.sig for ``manifest_bytes``, or None when no key is configured."""
    configured = keys()
    if not configured:
        return None
    entry = {"algorithm": ALGORITHM, "key_id": key_id(configured[0]), "signature": _mac(configured[0], manifest_bytes)}
    return json.dumps(entry, sort_keys=True).encode()


def check(backup_id, manifest_bytes, signature_bytes):
    """Raise UntrustedSet unless ``signature_bytes`` (None: no signature file) is a valid signature
    of ``manifest_bytes`` by one of the configured keys. Returns the signing key's id."""
    configured = keys()
    if signature_bytes is None:
        raise UntrustedSet(f"Backup {backup_id} is not signed (it has no {SIGNATURE_NAME}): it cannot be shown to "
                           "come from this deployment. Import it only if you know where it came from "
                           "(syncbackups --trust-unsigned).")
    if not configured:
        raise UntrustedSet(f"Backup {backup_id} is signed, but BACKUP_SIGNING_KEY is not set here, so the signature "
                           "cannot be checked: set it to the key the old server used (kept with the age identity).")
    try:
        entry = json.loads(signature_bytes)
        claimed_id, signature = entry["key_id"], entry["signature"]
        if entry["algorithm"] != ALGORITHM or not isinstance(signature, str):
            raise ValueError(entry["algorithm"])
    except (ValueError, TypeError, KeyError):
        raise UntrustedSet(f"Backup {backup_id}: {SIGNATURE_NAME} is not a signature this app writes.") from None
    for key in configured:
        if hmac.compare_digest(_mac(key, manifest_bytes), signature):
            return key_id(key)
    known = {key_id(key) for key in configured}
    why = ("its metadata.json was changed after signing" if claimed_id in known
           else f"it was signed by another key ({claimed_id}), not by BACKUP_SIGNING_KEY")
    raise UntrustedSet(f"Backup {backup_id} failed its signature check: {why}. It is not imported; if the key was "
                       "rotated, list the old key after the new one in BACKUP_SIGNING_KEY.")
