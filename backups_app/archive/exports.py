"""The portable export format shared by the vector stores (Qdrant export, Chroma server):
one JSON object per line, compressed by BACKUP_COMPRESSION (``<stem>.jsonl.zst``).

    {"format": "...", "version": 1, ...collection config...}     header
    {"id": ..., ...}                                             one line per record
    {"end": true, "records": N}                                  trailer

JSON Lines streams in both directions with constant memory, any version of the store can read it
back, and ``zstd -dc x.jsonl.zst | head -1 | jq`` shows what is inside. Python writes floats with
their shortest round-trip representation, so vectors come back bit for bit. The trailer makes a
truncated file an error instead of a silently smaller restore.
"""

import hashlib
import json
import re

from backups_app.archive.storage import CHUNK_SIZE
from backups_app.errors import ComponentError


def artifact_stem(source, collection):
    """``<source>_<collection>``; a collection name that is not a safe file name gets a hash
    suffix, so two collections never share an artifact."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", collection)
    if safe != collection:
        safe = f"{safe}-{hashlib.sha256(collection.encode()).hexdigest()[:8]}"
    return f"{source}_{safe}"


def _line(obj):
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def write_export(writer, stem, header, records):
    """Store ``header`` and every record of the iterable as artifact ``<stem>.jsonl[.zst]``.
    Returns (artifact name, number of records)."""
    count = 0
    with writer.open_compressed(f"{stem}.jsonl") as (name, out):
        out.write(_line(header))
        for record in records:
            out.write(_line(record))
            count += 1
        out.write(_line({"end": True, "records": count}))
    return name, count


def _lines(stream):
    rest = b""
    while chunk := stream.read(CHUNK_SIZE):
        *lines, rest = (rest + chunk).split(b"\n")
        yield from lines
    if rest:
        yield rest


def read_export(stream, expected_format):
    """(header, records) from a decompressed export stream; ``records`` is an iterator that
    raises ComponentError when the file is truncated or its trailer disagrees."""
    lines = _lines(stream)
    try:
        header = json.loads(next(lines))
    except (StopIteration, ValueError) as exc:
        raise ComponentError(f"Not a {expected_format} export: the header line is missing or unreadable ({exc}).")
    if header.get("format") != expected_format:
        raise ComponentError(f"Not a {expected_format} export (format {header.get('format')!r}).")

    def records():
        count = 0
        for line in lines:
            record = json.loads(line)
            if record.get("end"):
                if record.get("records") != count:
                    raise ComponentError(f"Export trailer says {record.get('records')} records, the file has {count}.")
                return
            count += 1
            yield record
        raise ComponentError(f"The {expected_format} export ends after {count} records without its trailer: "
                             "the file is truncated.")

    return header, records()


def batches(iterable, size):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
