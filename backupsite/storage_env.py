"""Build the ``STORAGES`` entries for backups from environment variables.

``{PREFIX}STORAGE`` picks ``local`` (FileSystemStorage at ``{PREFIX}DIR``) or ``s3``
(django-storages' S3Storage with ``{PREFIX}S3_BUCKET``, ``_ENDPOINT_URL``, ``_PREFIX``,
``_REGION``, ``_ACCESS_KEY_ID``, ``_SECRET_ACCESS_KEY``). The primary copy uses ``BACKUP_``,
the offsite copy ``BACKUP_OFFSITE_``. Mistakes are reported by the system checks (backups.E1xx).
"""

MB = 1024 * 1024
# S3 allows 10,000 parts per object: 8 MB parts give objects up to 78 GB. Our uploads
# (archive/storage.py S3Upload) take the part size from the storage's transfer_config and spool
# three parts to disk; the concurrency here bounds django-storages' own save(), should anything use it.
DEFAULT_PART_MB = 8
PARTS_IN_MEMORY = 2


def _transfer_config(part_mb):
    from boto3.s3.transfer import TransferConfig  # settings import boto3 only when S3 storage is configured

    config = TransferConfig(multipart_threshold=part_mb * MB, multipart_chunksize=part_mb * MB,
                            max_concurrency=PARTS_IN_MEMORY)
    # s3transfer buffers this many parts of a non-seekable stream; the default is 10.
    config.max_in_memory_upload_chunks = PARTS_IN_MEMORY
    return config


def storage_entry(env, prefix, local_dir):
    """``env`` is a ``backupsite.env.Environment``: a bad value is recorded there, never raised."""
    kind = env.get(f"{prefix}STORAGE", "local")
    if kind != "s3":
        return {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(env.get(f"{prefix}DIR") or local_dir or ""), "file_permissions_mode": 0o600,
                            "directory_permissions_mode": 0o700}}
    endpoint = env.get(f"{prefix}S3_ENDPOINT_URL") or None
    options = {
        "bucket_name": env.get(f"{prefix}S3_BUCKET", ""),
        "location": env.get(f"{prefix}S3_PREFIX", "").strip("/"),
        "endpoint_url": endpoint,
        "region_name": env.get(f"{prefix}S3_REGION") or None,
        # Empty keys fall back to boto3's own chain (instance role, AWS_* variables, ~/.aws).
        "access_key": env.get(f"{prefix}S3_ACCESS_KEY_ID") or None,
        "secret_key": env.get(f"{prefix}S3_SECRET_ACCESS_KEY") or None,
        # MinIO and most S3-compatible servers want path-style URLs.
        "addressing_style": "path" if endpoint else None,
        "file_overwrite": True,
        # Artifacts are opaque bytes. Guessing from the name would store ``.tar.gz`` with
        # ``Content-Encoding: gzip``, and browsers would then unpack it on download.
        "object_parameters": {"ContentType": "application/octet-stream"},
        "default_acl": None,
        "transfer_config": _transfer_config(env.int(f"{prefix}S3_PART_MB", DEFAULT_PART_MB, low=5, high=5120,
                                                    fix="use a whole number of MB from 5 to 5120 (S3's part sizes)")),
    }
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
