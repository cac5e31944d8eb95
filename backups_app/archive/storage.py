"""The one place that touches the backup storages (django-storages underneath).

Everything streams. Writes to S3 are our own multipart upload (``S3Upload``: parts gather in
the spool, one is sent while the next fills); elsewhere they go through a pipe into
``Storage.save``. Reads go chunk by chunk; for S3 the read is boto3's response body:
django-storages' ``S3File`` would first download the whole object into memory. Storage errors become
BackupErrors that say what to fix; none of them carries a credential.
"""

import os
import posixpath
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages

from backups_app.archive.spool import spool_dir
from backups_app.errors import BackupError

CHUNK_SIZE = 1024 * 1024
# Parts of an S3 upload sent at once (S3Upload): one request in flight leaves the client and the
# server waiting on each other in turn; each one in flight costs a spool file of a part's size.
PARTS_IN_FLIGHT = 2
OFFSITE_ALIAS = "backups_offsite"
# What a storage raises when it cannot read or write: disks and S3 (botocore) alike.
STORAGE_FAILURES = (OSError, BotoCoreError, ClientError)


def backup_storage():
    return storages["backups"]


def offsite_storage():
    """The offsite copy's storage, or None when ``STORAGES["backups_offsite"]`` is not configured."""
    return storages[OFFSITE_ALIAS] if OFFSITE_ALIAS in settings.STORAGES else None


def set_path(backup_id, name):
    return posixpath.join(backup_id, name)


def is_s3(storage):
    """django-storages' S3Storage or a subclass (checked by name: local setups need not load boto3)."""
    return any(f"{cls.__module__}.{cls.__name__}" == "storages.backends.s3.S3Storage" for cls in type(storage).__mro__)


def describe(storage):
    """Where a storage points, for messages (no credentials)."""
    if is_s3(storage):
        where = f"s3://{storage.bucket_name}/{storage.location}".rstrip("/")
        return f"{where} at {storage.endpoint_url}" if storage.endpoint_url else where
    return getattr(storage, "location", type(storage).__name__)


def _error_code(exc):
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


def storage_error(exc, storage, path):
    """A BackupError naming the failed path and, for S3's usual failures, the fix."""
    if isinstance(exc, BackupError):
        return exc
    where = describe(storage)
    code = _error_code(exc)
    if code == "NoSuchBucket":
        hint = f"bucket {storage.bucket_name!r} does not exist; create it or fix BACKUP_S3_BUCKET"
    elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
        hint = (f"the S3 server rejected the credentials ({code}); check BACKUP_S3_ACCESS_KEY_ID, "
                "BACKUP_S3_SECRET_ACCESS_KEY and the bucket policy")
    elif isinstance(exc, NoCredentialsError):
        hint = "no S3 credentials found; set BACKUP_S3_ACCESS_KEY_ID and BACKUP_S3_SECRET_ACCESS_KEY"
    elif isinstance(exc, EndpointConnectionError):
        hint = "the S3 endpoint is unreachable; check BACKUP_S3_ENDPOINT_URL and that the server is up"
    elif isinstance(exc, OSError) and exc.strerror:  # a full disk says "No space left on device"
        hint = exc.strerror
    else:
        hint = f"{type(exc).__name__}: {exc}"
    return BackupError(f"Storage {where}: cannot access {path}: {hint}.")


def _s3_key(storage, path):
    """The object key of ``path`` (under the storage's prefix), as django-storages names it."""
    from storages.utils import clean_name  # S3 only: the local default never loads django-storages

    return storage._normalize_name(clean_name(path))


def _s3_client(storage):
    """The storage's boto3 client, one for every thread. django-storages makes a session, a
    resource and a client per thread (resources are not thread-safe; clients are), and each costs
    about 15 MiB of RSS for its service model: a backup's components run in threads of their own,
    so the set's last files would otherwise load a second one."""
    client = storage.__dict__.get("_backups_s3_client")
    if client is None:
        client = storage.__dict__.setdefault("_backups_s3_client", storage.connection.meta.client)
    return client


class _S3Body:
    """boto3's streaming body of one object, read in chunks; errors become BackupErrors."""

    def __init__(self, storage, path):
        self._storage, self._path = storage, path
        client = _s3_client(storage)
        try:
            self._body = client.get_object(Bucket=storage.bucket_name, Key=_s3_key(storage, path))["Body"]
        except client.exceptions.NoSuchKey:
            raise FileNotFoundError(path) from None
        except STORAGE_FAILURES as exc:
            raise storage_error(exc, storage, path) from None

    def read(self, size=-1):
        try:
            return self._body.read(size if size is not None and size >= 0 else None)
        except STORAGE_FAILURES as exc:
            raise storage_error(exc, self._storage, self._path) from None

    def readable(self):
        return True

    def close(self):
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_stream(storage, path):
    """A binary file object reading ``path`` from the start, in chunks; FileNotFoundError when
    it is not there."""
    if is_s3(storage):
        return _S3Body(storage, path)
    return storage.open(path, "rb")


def presigned_url(storage, path, expire, filename):
    """A short-lived GET URL for one stored object (S3 only), served as a download."""
    return storage.url(path, expire=expire,
                       parameters={"ResponseContentDisposition": f'attachment; filename="{filename}"'})


class PipeWriter:
    """A writable file whose bytes are consumed by ``consume(readable)`` in a background thread,
    so producers that push (tarfile, our own loops) and consumers that pull (``Storage.save``,
    age encryption) meet without a temporary copy. ``close()`` re-raises the consumer's error."""

    def __init__(self, consume, what):
        self.what = what
        read_fd, write_fd = os.pipe()
        self._writer = os.fdopen(write_fd, "wb", buffering=CHUNK_SIZE)
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(consume, os.fdopen(read_fd, "rb")), daemon=True)
        self._thread.start()

    def _run(self, consume, reader):
        try:
            with reader:
                consume(reader)
                reader.read()  # drain, so the producer never blocks on a full pipe
        except BaseException as exc:  # re-raised in the producer's thread
            self._error = exc

    def write(self, data):
        try:
            return self._writer.write(data)
        except BrokenPipeError:
            self._thread.join()
            raise self._consumer_error() from None

    def flush(self):
        pass

    def close(self):
        try:
            self._writer.close()
        except BrokenPipeError:
            pass
        self._thread.join()
        if self._error is not None:
            raise self._consumer_error()

    def abort(self):
        try:
            self._writer.close()
        except OSError:
            pass
        self._thread.join()

    def _consumer_error(self):
        if isinstance(self._error, BackupError):
            return self._error
        return BackupError(f"Could not write {self.what}: {self._error}")


class PipeUpload(PipeWriter):
    """A writable file saved to ``storage`` at ``path`` as it is written."""

    def __init__(self, storage, path):
        self.path = path
        super().__init__(lambda reader: self._save(storage, path, reader), path)

    @staticmethod
    def _save(storage, path, reader):
        try:
            saved = storage.save(path, File(reader, name=posixpath.basename(path)))
        except STORAGE_FAILURES as exc:
            raise storage_error(exc, storage, path) from None
        if saved != path:
            raise BackupError(f"Storage saved {path} as {saved}: the name was taken.")


class _PartBody:
    """A spooled part as botocore reads it, in pieces of at most PIECE bytes: it asks for 1 MiB
    at a time to checksum and sign, and each sender thread's heap would keep that much resident
    (read(n) may return fewer bytes; every reader of a request body loops until b"")."""

    PIECE = 256 * 1024

    def __init__(self, file):
        self._file = file

    def read(self, size=-1):
        return self._file.read(size if size is None or size < 0 else min(size, self.PIECE))

    def seek(self, offset, whence=os.SEEK_SET):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()


class S3Upload:
    """A writable file stored as one S3 object at ``path`` while it is written, by S3's multipart
    upload with fixed bounds. A part gathers in a file in the spool (BACKUP_SPOOL_DIR), not in
    memory; full parts are sent by PARTS_IN_FLIGHT threads while the next one fills. So an upload
    holds PARTS_IN_FLIGHT + 1 parts of disk and about a megabyte of memory per part in flight
    (botocore reads each part twice, for its checksum and its signature, in _PartBody's
    pieces), whatever the object's and the part's size; boto3's managed upload of a stream keeps
    its parts in memory instead, and its memory grew with the data (bench/README.md). An object
    smaller than a part is one PUT. ``close()`` completes the object; ``abort()`` or a failure
    aborts the multipart upload, so no parts are left behind. The part size is BACKUP_S3_PART_MB
    (the storage's ``transfer_config.multipart_chunksize``)."""

    def __init__(self, storage, path):
        from botocore.httpchecksum import DEFAULT_CHECKSUM_ALGORITHM

        self.path, self._storage = path, storage
        self._client = _s3_client(storage)
        self._object = {"Bucket": storage.bucket_name, "Key": _s3_key(storage, path)}
        self._params = storage._get_write_parameters(self._object["Key"])  # ContentType, ACL as configured
        self._checksum = {}
        if self._client.meta.config.request_checksum_calculation == "when_supported":
            self._checksum = {"ChecksumAlgorithm": DEFAULT_CHECKSUM_ALGORITHM}  # as boto3's own uploads do
        self._part_size = storage.transfer_config.multipart_chunksize
        self._files, self._free = [], []  # every spool file; those no part occupies
        self._filling, self._filled = self._spool_file(), 0
        self._upload_id, self._parts, self._sending = None, [], []  # sending: (future, file), oldest first
        self._sender = ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="s3-part")

    def write(self, data):
        view = memoryview(data).cast("B")
        while len(view):
            piece = view[:self._part_size - self._filled]
            self._filling.write(piece)
            self._filled += len(piece)
            view = view[len(piece):]
            if self._filled == self._part_size:
                self._send_filled()
        return len(data)

    def flush(self):
        pass

    def close(self):
        try:
            if self._upload_id is None:
                self._filling.seek(0)
                self._call(self._client.put_object, **self._object, **self._params, **self._checksum,
                           Body=self._filling)
            else:
                if self._filled:
                    self._send_filled()
                while self._sending:
                    self._collect_oldest()
                self._call(self._client.complete_multipart_upload, **self._object, UploadId=self._upload_id,
                           MultipartUpload={"Parts": sorted(self._parts, key=lambda part: part["PartNumber"])})
                self._upload_id = None
        except BaseException:
            self.abort()
            raise
        self._release()

    def abort(self):
        """Give up: wait for the parts being sent, abort the multipart upload (best effort: an
        unfinished one leaves no object, and the server can be gone) and free the spool."""
        for future, _file in self._sending:
            future.exception()  # waits; the error was or will be reported by write() or close()
        self._sending = []
        if self._upload_id is not None:
            try:
                self._client.abort_multipart_upload(**self._object, UploadId=self._upload_id)
            except STORAGE_FAILURES:
                pass
            self._upload_id = None
        self._release()

    def _spool_file(self):
        if self._free:
            file = self._free.pop()
            file.seek(0)
            file.truncate()
            return file
        self._files.append(tempfile.TemporaryFile(dir=spool_dir()))
        return self._files[-1]

    def _send_filled(self):
        """Hand the filled part to a sender (once fewer than PARTS_IN_FLIGHT are being sent) and
        start filling a free spool file."""
        if self._upload_id is None:
            self._upload_id = self._call(self._client.create_multipart_upload, **self._object, **self._params,
                                         **self._checksum)["UploadId"]
        while len(self._sending) >= PARTS_IN_FLIGHT:
            self._collect_oldest()
        number = len(self._parts) + len(self._sending) + 1
        self._sending.append((self._sender.submit(self._send_part, self._filling, number), self._filling))
        self._filling, self._filled = self._spool_file(), 0

    def _send_part(self, part, number):
        part.flush()
        part.seek(0)
        response = self._call(self._client.upload_part, **self._object, UploadId=self._upload_id, PartNumber=number,
                              Body=_PartBody(part), **self._checksum)
        sent = {"ETag": response["ETag"], "PartNumber": number}
        if self._checksum:
            member = f"Checksum{self._checksum['ChecksumAlgorithm'].upper()}"
            if member in response:
                sent[member] = response[member]
        return sent

    def _collect_oldest(self):
        """The oldest part being sent is sent (its error raised here): record it, free its file."""
        future, file = self._sending[0]
        self._parts.append(future.result())
        self._sending.pop(0)
        self._free.append(file)

    def _call(self, method, **kwargs):
        try:
            return method(**kwargs)
        except STORAGE_FAILURES as exc:
            raise storage_error(exc, self._storage, self.path) from None

    def _release(self):
        self._sender.shutdown()
        for file in self._files:
            file.close()


def open_upload(storage, path):
    """A writable file stored at ``path`` as it is written (``write``, then ``close`` to finish or
    ``abort`` to give up): ``S3Upload`` on S3, a ``PipeUpload`` into ``Storage.save`` elsewhere."""
    return S3Upload(storage, path) if is_s3(storage) else PipeUpload(storage, path)


class PipeReader:
    """A readable file fed by ``produce(writable)`` in a background thread (age decryption pushes
    its output). At the end of the data, the producer's error, if any, is raised to the reader."""

    def __init__(self, produce, describe_error):
        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "rb")
        self._describe_error = describe_error
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(produce, os.fdopen(write_fd, "wb")), daemon=True)
        self._thread.start()

    def _run(self, produce, writer):
        try:
            with writer:
                produce(writer)
        except BrokenPipeError:
            pass  # the reader stopped early and closed its end
        except BaseException as exc:
            self._error = exc

    def read(self, size=CHUNK_SIZE):
        data = self._reader.read(size if size and size > 0 else CHUNK_SIZE)
        if not data:
            self._thread.join()
            if self._error is not None:
                raise self._describe_error(self._error)
        return data

    def readable(self):
        return True

    def close(self):
        self._reader.close()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def delete_set(storage, backup_id):
    """Remove every file stored under the backup's prefix (partial sets included)."""
    try:
        try:
            _, files = storage.listdir(backup_id)
        except FileNotFoundError:
            return
        for name in files:
            storage.delete(set_path(backup_id, name))
    except ClientError as exc:
        if _error_code(exc) != "NoSuchBucket":  # no bucket: nothing was stored
            raise storage_error(exc, storage, backup_id) from None
    except STORAGE_FAILURES as exc:
        raise storage_error(exc, storage, backup_id) from None
    # FileSystemStorage leaves the empty folder behind; object stores have none.
    location = getattr(storage, "location", None)
    if location and not is_s3(storage):
        folder = os.path.join(location, backup_id)
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)


def save_chunks(storage, path, chunks):
    """Store the byte chunks of an iterable at ``path``, streaming."""
    upload = open_upload(storage, path)
    try:
        for chunk in chunks:
            upload.write(chunk)
    except BaseException:
        upload.abort()
        raise
    upload.close()


def copy_file(source, target, path):
    """Stream one stored file from ``source`` to the same path in ``target``."""
    with open_stream(source, path) as stream:
        save_chunks(target, path, iter(lambda: stream.read(CHUNK_SIZE), b""))
