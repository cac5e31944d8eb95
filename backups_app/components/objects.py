"""Object storage: S3/MinIO buckets, or a local folder (``OBJECTS_DIR``, the disk fallback),
each streamed object by object into an uncompressed ``<name>_<bucket>.tar`` (``<name>_disk.tar``
for the folder; objects are usually compressed already).

Inside the tar, ``objects/<key>`` holds each object's bytes (keys that are not safe paths, such
as ``a/../b`` or folder markers ending in ``/``, go to ``objects-unsafe/<sha256 of key>``). Each
member's PAX header carries the exact key, the content headers and user metadata under
``BACKUPS.*``; ``index.jsonl``, the last member, lists every object with its key, member, size,
content type, metadata and sha256 (it can only be written once the bodies have been hashed).

Restore puts every object back (multipart above the threshold, streamed from the tar). Mirror
mode (default) then deletes objects that are not in the backup; merge mode keeps them.
``objects.prefix=PREFIX`` puts each object back as ``PREFIX<key>`` instead, side by side: no live
object is touched or deleted, and nothing may exist under PREFIX yet (docs/side-by-side.md).

Requests overlap (a few GETs ahead of the tar writer, small PUTs in parallel) so that per-object
latency does not add up; memory stays bounded (open bodies are streamed, at most a few MB buffered).
"""

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager

import botocore.exceptions

from backups_app.archive.hashing import HashingReader
from backups_app.archive.spool import new_scratch_folder, spool_dir
from backups_app.archive.storage import CHUNK_SIZE
from backups_app.components.base import Component
from backups_app.errors import ComponentError, InvalidOption, Unchanged, UnsafeArchive
from backups_app.parsing import choice, comma_list

INDEX_NAME = "index.jsonl"
PAX = "BACKUPS."
# get_object response fields that upload_fileobj accepts back as ExtraArgs.
HEADERS = ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl")
PREFETCH = 8  # requests in flight: GETs while the tar is written in order, PUTs of small objects
SMALL_OBJECT = 1024 * 1024
S3_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


def is_safe_path(key):
    parts = key.split("/")
    return bool(key) and "" not in parts and "." not in parts and ".." not in parts and "\\" not in key \
        and "\x00" not in key


def member_name(key):
    if is_safe_path(key):
        return f"objects/{key}"
    return f"objects-unsafe/{hashlib.sha256(key.encode()).hexdigest()}"


class StoredObject:
    def __init__(self, key, body, size, mtime, headers=None, metadata=None):
        self.key, self.body, self.size, self.mtime = key, body, size, mtime
        self.headers, self.metadata = headers or {}, metadata or {}

    def close(self):
        self.body.close()


def prefetched(fetch, keys, depth=PREFETCH):
    """``fetch(key)`` for each key, up to ``depth`` requests ahead in threads, yielded in order, so
    that one round trip per object stops adding up. Fetched objects left unconsumed are closed."""
    with ThreadPoolExecutor(depth) as pool:
        pending = deque()
        try:
            for key in keys:
                pending.append(pool.submit(fetch, key))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.add_done_callback(lambda f: f.exception() is None and f.result() and f.result().close())


class Bucket:
    """One S3 bucket (optionally only the keys under ``prefix``)."""

    def __init__(self, client, bucket, prefix, transfer, region):
        self.client, self.bucket, self.prefix = client, bucket, prefix
        self.transfer, self.region = transfer, region
        self.label = bucket

    def __str__(self):
        return f"bucket {self.bucket}" + (f" (prefix {self.prefix})" if self.prefix else "")

    def keys(self, prefix=None):
        """(key, size) of the objects under the source's prefix (or ``prefix``)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix if prefix is None else prefix)
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"], item["Size"]

    def fetch(self, key):
        """The object, its body streaming, or None if it was deleted since the listing."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        return StoredObject(key, response["Body"], response["ContentLength"], response["LastModified"].timestamp(),
                            {h: response[h] for h in HEADERS if response.get(h)}, response.get("Metadata"))

    def exists(self):
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
                return False
            raise

    def ensure(self):
        if not self.exists():
            location = {"CreateBucketConfiguration": {"LocationConstraint": self.region}} \
                if self.region and self.region != "us-east-1" else {}
            self.client.create_bucket(Bucket=self.bucket, **location)

    def put(self, key, stream, size, headers, metadata):
        if size < self.transfer.multipart_threshold:  # one request; the body is at most the threshold
            self.client.put_object(Bucket=self.bucket, Key=key, Body=stream.read(), **headers, Metadata=metadata)
        else:
            self.client.upload_fileobj(stream, self.bucket, key, ExtraArgs={**headers, "Metadata": metadata},
                                       Config=self.transfer)

    def delete(self, keys):
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            errors = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}) \
                .get("Errors", [])
            if errors:
                raise ComponentError(f"Could not delete {len(errors)} object(s) from bucket {self.bucket}: "
                                     f"{errors[0].get('Key')}: {errors[0].get('Message')}")

    def scratch(self):
        bucket = Bucket(self.client, f"rehearsal-{uuid.uuid4().hex[:20]}", "", self.transfer, self.region)
        bucket.ensure()
        return bucket

    def drop(self):
        self.delete(key for key, _size in self.keys())
        self.client.delete_bucket(Bucket=self.bucket)


class Folder:
    """The disk fallback: files under ``root`` are objects keyed by their relative path."""

    label = "disk"

    def __init__(self, root):
        self.root = os.path.abspath(root)

    def __str__(self):
        return f"folder {self.root}"

    def keys(self, prefix=None):
        for base, dirs, files in os.walk(self.root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(base, name)
                key = os.path.relpath(path, self.root).replace(os.sep, "/")
                if os.path.isfile(path) and not os.path.islink(path) and key.startswith(prefix or ""):
                    yield key, os.path.getsize(path)

    def fetch(self, key):
        path = self._path(key)
        try:
            body = open(path, "rb")
        except FileNotFoundError:
            return None
        return StoredObject(key, body, os.fstat(body.fileno()).st_size, os.path.getmtime(path))

    def _path(self, key):
        if not is_safe_path(key):
            raise UnsafeArchive(f"Refusing object key {key!r} for a folder: not a safe relative path.")
        return os.path.join(self.root, *key.split("/"))

    def exists(self):
        return os.path.isdir(self.root)

    def ensure(self):
        os.makedirs(self.root, exist_ok=True)

    def put(self, key, stream, size, headers, metadata):
        path = self._path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".restore-", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, CHUNK_SIZE)
            os.replace(tmp, path)  # each file is replaced whole or not at all
        except BaseException:
            os.unlink(tmp)
            raise

    def delete(self, keys):
        for key in keys:
            path = self._path(key)
            os.unlink(path)
            parent = os.path.dirname(path)
            while parent != self.root and not os.listdir(parent):
                os.rmdir(parent)
                parent = os.path.dirname(parent)

    def scratch(self):
        return Folder(new_scratch_folder("objects-rehearsal-"))

    def drop(self):
        shutil.rmtree(self.root, ignore_errors=True)


class ReadOnly:
    """Only ``read``: boto3 then streams it as a non-seekable upload (parts of the chunk size)."""

    def __init__(self, raw):
        self.read = raw.read


class ObjectsComponent(Component):
    options = {
        "endpoint_url": (str, ""),
        "buckets": (comma_list, []),
        "prefix": (str, ""),
        "access_key_id": (str, ""),
        "secret_access_key": (str, ""),
        "region": (str, ""),
        "path": (str, ""),
        "multipart_threshold": (int, 64 * 1024 * 1024),
        "multipart_chunksize": (int, 16 * 1024 * 1024),
    }
    secret_options = ("secret_access_key",)
    restore_options = {"mode": (choice("mirror", "merge"), "mirror"), "prefix": (str, "")}
    target_options = {"prefix": "restore every object under this key prefix, e.g. restored/ (nothing may be "
                                "there yet; the live objects are not touched)"}
    environment = {"endpoint_url": "OBJECTS_S3_ENDPOINT_URL", "buckets": "OBJECTS_S3_BUCKETS",
                   "prefix": "OBJECTS_S3_PREFIX", "access_key_id": "OBJECTS_S3_ACCESS_KEY_ID",
                   "secret_access_key": "OBJECTS_S3_SECRET_ACCESS_KEY", "region": "OBJECTS_S3_REGION",
                   "path": "OBJECTS_DIR"}
    configured_by = ("OBJECTS_S3_BUCKETS", "OBJECTS_DIR")
    backup_order = 50

    def stores(self):
        c = self.config
        stores = []
        if c["buckets"]:
            import boto3  # here: ~0.5 s that a command not touching the buckets (checks, a verification) skips
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config

            client = boto3.client(
                "s3", endpoint_url=c["endpoint_url"] or None, region_name=c["region"] or None,
                aws_access_key_id=c["access_key_id"] or None, aws_secret_access_key=c["secret_access_key"] or None,
                # MinIO and most S3-compatible servers want path-style addressing.
                config=Config(s3={"addressing_style": "path" if c["endpoint_url"] else "auto"},
                              retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=PREFETCH + 4),
            )
            transfer = TransferConfig(multipart_threshold=c["multipart_threshold"],
                                      multipart_chunksize=c["multipart_chunksize"], max_concurrency=4)
            stores += [Bucket(client, b, c["prefix"], transfer, c["region"]) for b in c["buckets"]]
        if c["path"]:
            stores.append(Folder(c["path"]))
        if not stores:
            raise ComponentError(f"{self.name}: nothing configured; set OBJECTS_S3_BUCKETS or OBJECTS_DIR.")
        labels = [store.label for store in stores]
        if len(set(labels)) != len(labels):
            raise ComponentError(f"{self.name}: artifact names would clash ({', '.join(labels)}); a bucket named "
                                 "'disk' needs the folder fallback configured as a separate source.")
        return stores

    def artifact(self, store):
        return f"{self.name}_{store.label}.tar"

    @contextmanager
    def _errors(self, store):
        try:
            yield
        except S3_ERRORS as exc:
            where = f" at {self.config['endpoint_url']}" if self.config["endpoint_url"] else ""
            raise ComponentError(f"{self.name}: {store}{where}: {exc}") from None

    @staticmethod
    def _counts(store):
        objects = size = 0
        for _key, object_size in store.keys():
            objects += 1
            size += object_size
        return {"objects": objects, "bytes": size}

    def inspect(self):
        counts = {}
        for store in self.stores():
            with self._errors(store):
                counts[store.label] = self._counts(store)  # a missing folder counts as empty
        return counts

    # Backup

    def backup(self, writer, log):
        counts, absent = {}, []
        for store in self.stores():
            with self._errors(store):
                if not store.exists():
                    self.missing(writer, log, str(store), "OBJECTS_S3_BUCKETS and OBJECTS_DIR")
                    absent.append(store.label)
                    continue
                counts[store.label] = self._archive(store, writer)
            log(f"{self.name}: archived {counts[store.label]['objects']} objects, {counts[store.label]['bytes']} "
                f"bytes from {store} into {self.artifact(store)}")
        return {"counts": counts, "absent": absent}

    def _archive(self, store, writer):
        objects = size = 0
        # The index can be long (one line per object): it waits on disk, not in memory.
        with tempfile.TemporaryFile(dir=spool_dir()) as index, writer.open(self.artifact(store)) as out, \
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            tar.copybufsize = CHUNK_SIZE
            with closing(prefetched(store.fetch, (key for key, _size in store.keys()))) as fetched:
                for obj in fetched:
                    if obj is None:
                        continue  # deleted since the listing
                    with closing(obj):
                        info = tarfile.TarInfo(member_name(obj.key))
                        info.size, info.mtime, info.mode = obj.size, int(obj.mtime), 0o644
                        info.pax_headers = {f"{PAX}key": obj.key,
                                            **{f"{PAX}{h}": v for h, v in obj.headers.items()},
                                            **{f"{PAX}meta.{k}": v for k, v in obj.metadata.items()}}
                        body = HashingReader(obj.body)
                        tar.addfile(info, body)
                    entry = {"key": obj.key, "member": info.name, "size": obj.size,
                             "sha256": body.hexdigest(), "content_type": obj.headers.get("ContentType"),
                             "headers": obj.headers, "metadata": obj.metadata}
                    index.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
                    objects += 1
                    size += obj.size
            info = tarfile.TarInfo(INDEX_NAME)
            info.size, info.mode = index.tell(), 0o644
            index.seek(0)
            tar.addfile(info, index)
        return {"objects": objects, "bytes": size}

    # Restore

    def _pairs(self, reader, artifacts):
        """[(store, artifact)] for the artifacts, each matched to a configured bucket or folder."""
        by_artifact = {self.artifact(store): store for store in self.stores()}
        unknown = [a for a in artifacts if a not in by_artifact]
        if unknown:
            raise ComponentError(f"{self.name}: no configured bucket or folder for {', '.join(unknown)} "
                                 f"(configured: {', '.join(str(s) for s in by_artifact.values())}).")
        return [(by_artifact[a], a) for a in artifacts]

    # Side by side

    def live_places(self):
        return [self.config["path"]] if self.config["path"] else []

    def check_restore_options(self, options):
        prefix, live = options["prefix"], self.config["prefix"]
        if prefix and not is_safe_path(prefix.rstrip("/")):
            raise InvalidOption(f"{self.name}.prefix={prefix!r}: a key prefix without '..', '.', '//', a leading '/' "
                                "or backslashes, e.g. restored/.")
        if prefix and live and prefix.startswith(live):
            raise InvalidOption(f"{self.name}.prefix={prefix} lies inside {live}, the prefix this source backs up "
                                "(OBJECTS_S3_PREFIX): the live objects in disguise. Choose a prefix outside it.")

    def targets_live(self, options):
        return not options["prefix"]

    def describe_target(self, options):
        if not options["prefix"]:
            return None
        return (f"every object as {options['prefix']}<key> in the same bucket or folder; no live object is touched "
                "or deleted (the next backups include them until you delete them)")

    def probe_target(self, options, facts):
        """OBJECTS_S3_PREFIX for BACKUP_PROBE_COMMAND: every restored key starts with the target prefix."""
        return {"prefix": options["prefix"] + self.config["prefix"]} if options["prefix"] else None

    def _taken(self, store, prefix):
        """Why ``prefix`` cannot take a side-by-side restore in ``store`` (something is there), or None."""
        with self._errors(store):
            found = next(iter(store.keys(prefix)), None)
        return found and f"{store} already holds objects under {prefix} ({found[0]}, ...); choose another prefix"

    def preflight(self, reader, artifacts, options):
        if not options["prefix"]:
            return {}
        problems = [p for p in (self._taken(store, options["prefix"]) for store, _a in self._pairs(reader, artifacts))
                    if p]
        return {"problems": problems}

    def _restore_under(self, reader, artifacts, prefix, log):
        pairs = self._pairs(reader, artifacts)
        problems = [p for p in (self._taken(store, prefix) for store, _a in pairs) if p]
        if problems:
            raise Unchanged(f"{self.name}: {'; '.join(problems)}; nothing was changed.")
        for store, artifact in pairs:
            with self._errors(store):
                try:
                    restored = self._load(reader, artifact, store, prefix)
                except Exception as exc:
                    store.delete([key for key, _size in store.keys(prefix)])
                    raise Unchanged(f"{self.name}: restoring under {prefix} failed ({exc}); what it had put there "
                                    "was deleted and no live object was touched") from None
            log(f"{self.name}: put back {restored['objects']} objects, {restored['bytes']} bytes into {store} under "
                f"{prefix}; no live object was touched")

    def restore(self, reader, artifacts, options, log):
        if options["prefix"]:
            return self._restore_under(reader, artifacts, options["prefix"], log)
        absent = self.absent(reader)
        for store in self.stores():
            with self._errors(store):
                if store.label in absent and store.exists():
                    log(f"{self.name}: {store} did not exist in this backup; removing it")
                    store.drop()
        for store, artifact in self._pairs(reader, artifacts):
            with self._errors(store):
                restored = self._load(reader, artifact, store)
                log(f"{self.name}: put back {restored['objects']} objects, {restored['bytes']} bytes into {store}")
                if options["mode"] == "mirror":
                    extra = [key for key, _size in store.keys() if key not in restored["keys"]]
                    store.delete(extra)
                    log(f"{self.name}: mirror mode: deleted {len(extra)} objects of {store} not in the backup")

    def _load(self, reader, artifact, store, prefix=""):
        """Put every object of ``artifact`` into ``store`` (as ``prefix + key``)."""
        store.ensure()
        keys, size = set(), 0
        with reader.open(artifact) as stream, tarfile.open(fileobj=stream, mode="r|") as tar, \
                ThreadPoolExecutor(PREFETCH) as pool:
            pending = deque()
            for member in tar:
                if member.name == INDEX_NAME:
                    continue
                key = member.pax_headers.get(f"{PAX}key")
                if not member.isfile() or key is None or member_name(key) != member.name:
                    raise UnsafeArchive(f"{artifact}: unexpected member {member.name!r}; this is not an object "
                                        "archive written by this app.")
                headers = {h: member.pax_headers[f"{PAX}{h}"] for h in HEADERS if f"{PAX}{h}" in member.pax_headers}
                metadata = {k[len(PAX) + 5:]: v for k, v in member.pax_headers.items() if k.startswith(f"{PAX}meta.")}
                body = tar.extractfile(member)
                if member.size <= SMALL_OBJECT:
                    # Small objects go up PREFETCH at a time (at most PREFETCH x 1 MB buffered).
                    data = io.BytesIO(body.read())
                    pending.append(pool.submit(store.put, prefix + key, data, member.size, headers, metadata))
                    if len(pending) > PREFETCH:
                        pending.popleft().result()
                else:
                    while pending:
                        pending.popleft().result()
                    store.put(prefix + key, ReadOnly(body), member.size, headers, metadata)
                keys.add(prefix + key)
                size += member.size
            while pending:
                pending.popleft().result()
        return {"objects": len(keys), "bytes": size, "keys": keys}

    def rehearse(self, reader, artifacts, log):
        counts = {}
        for store, artifact in self._pairs(reader, artifacts):
            with self._errors(store):
                scratch = store.scratch()
                try:
                    self._load(reader, artifact, scratch)
                    counts[store.label] = self._counts(scratch)
                finally:
                    scratch.drop()
            log(f"{self.name}: rehearsal put {counts[store.label]['objects']} objects into a temporary {scratch}")
        return counts
