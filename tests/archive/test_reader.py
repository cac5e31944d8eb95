"""Reading a backup set (archive/reader.py): a verifying stream checks what was not read too."""

import hashlib
import io

import pytest

from backups_app.archive.reader import VerifyingStream
from backups_app.errors import ChecksumMismatch


def test_closing_a_stream_checks_a_short_unread_tail():
    data = b"x" * 1000
    claimed = hashlib.sha256(b"x" * 999 + b"y").hexdigest()
    stream = VerifyingStream(io.BytesIO(data), "a.tar", claimed, len(data))
    stream.read(600)  # like tarfile stopping at its end-of-archive marker
    with pytest.raises(ChecksumMismatch, match="a.tar does not match its manifest"):
        stream.close()
