"""Qdrant: every collection (or QDRANT_COLLECTIONS) by one of two methods.

- ``snapshot`` (a server): Qdrant's own collection snapshot, made on the server, streamed into
  ``<name>_<collection>.snapshot`` while hashed and checked against the snapshot's sha256, then
  deleted on the server. Restore streams the file back as a multipart upload with
  ``priority=snapshot`` (``replica`` would restore nothing into an empty collection) and the
  checksum of the bytes sent (the decrypted ones for an encrypted set), then deletes the uploaded
  file the server keeps. Snapshots restore only into the same or the next minor Qdrant version, so
  the server version is recorded and a mismatch is refused in the plan unless
  ``allow_version_mismatch``. A live collection whose config differs from the backup's (another
  embedding model: other vectors or shard count, which Qdrant refuses in place; or other settings,
  which an in-place recovery would keep) is dropped and recovered from the snapshot, after the
  safety backup.
- ``export`` (any Qdrant, qdrant-client's local mode included, any version): the collection
  config, payload indexes and every point (id, all vectors, payload) scrolled into
  ``<name>_<collection>.jsonl.zst`` (see exports.py). Restore recreates the collection, upserts
  in batches and checks the point count.

Both record in the manifest each collection's config and payload index schema (``configs``), the
aliases of the backed-up collections (``aliases``: snapshots hold none, and dropping a collection
drops its aliases; they are put back in one atomic alias change after a restore) and the
embedding-model label (QDRANT_EMBEDDING_MODEL, or ``embedding_model`` in a collection's metadata).
The restore plan shows them beside the live ones.

``auto`` picks snapshot for a server and export for a local path.

Side by side (docs/side-by-side.md): ``qdrant.suffix=_restored`` restores each selected collection
as ``<name>_restored``, a name no collection or alias has yet (the live collections and their
aliases are not touched; promote switches the aliases); ``qdrant.collections=a,b`` selects
collections, for a live or a side-by-side restore.
Run ``python -m backups_app.components.qdrant --help`` to import an export by hand.
"""

import argparse
import importlib.metadata
import os
import re
import secrets
import sys
import time
from contextlib import contextmanager
from urllib.parse import quote

from backups_app import probes
from backups_app.archive.compression import decompressing, method_of
from backups_app.archive.exports import artifact_stem, batches, read_export, write_export
from backups_app.archive.storage import CHUNK_SIZE
from backups_app.components.base import WHOLE_STORE, Component, scratch
from backups_app.errors import ChecksumMismatch, ComponentError, ConfigurationError, InvalidOption, Unchanged
from backups_app.parsing import comma_list, parse_bool

EXPORT_FORMAT = "qdrant-collection"
SNAPSHOT_SUFFIX = ".snapshot"
#: Characters Qdrant refuses in a collection name on snapshot upload (older endpoints accept them).
UPLOAD_REFUSES = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
#: The settings Qdrant compares before recovering a snapshot into an existing collection.
COMPATIBILITY = ("vectors", "shard_number")
# httpx and qdrant-client (a second or more to import) are imported where they are used: the system
# checks import every configured store's module, and a command that never talks to Qdrant (a quick
# verification, a listing) should not pay for them.


def _request_errors(*more):
    """What a failed request to Qdrant raises, for an ``except`` clause (evaluated only then)."""
    import httpx
    from qdrant_client.http.exceptions import ApiException

    return (ApiException, httpx.HTTPError, *more)


def _client(**kwargs):
    from qdrant_client import QdrantClient

    return QdrantClient(**kwargs)


HINTS = {401: "no API key, or not this server's: check QDRANT_API_KEY",
         403: "this API key may not do that: uploading a snapshot needs a key with global manage access (a "
              "read-only or collection-scoped key can back up, never restore)"}


def _method(value):
    if value not in ("auto", "snapshot", "export"):
        raise ValueError(f"{value!r} is not a method; use auto, snapshot or export")
    return value


def _minor(version):
    match = re.match(r"v?(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _diff(model, value):
    """A request model (``*Diff``, extra fields forbidden) from a response model: keeps the fields
    this qdrant-client knows, so exports from other versions still load."""
    if value is None:
        return None
    data = value.model_dump(exclude_none=True)
    return model(**{k: v for k, v in data.items() if k in model.model_fields})


def _info(config, payload_schema):
    """What a restore needs to be right, as recorded in the manifest: the collection config and the
    payload index schema (without the per-index point counts, which follow the data)."""
    return {"config": config, "payload_schema": {field: {k: v for k, v in index.items() if k != "points"}
                                                 for field, index in (payload_schema or {}).items()}}


def _differences(backup, live):
    """The settings in which a live collection differs from the backed-up one: first those Qdrant
    refuses to recover a snapshot over (COMPATIBILITY), then the others."""
    b, lv = backup["config"], live["config"]
    params = [k for k in COMPATIBILITY if b["params"].get(k, 1) != lv["params"].get(k, 1)]
    params += sorted(k for k in set(b["params"]) | set(lv["params"])
                     if k not in COMPATIBILITY and b["params"].get(k) != lv["params"].get(k))
    others = sorted(k for k in set(b) | set(lv) if k != "params" and b.get(k) != lv.get(k))
    return params + others + (["payload indexes"] if backup["payload_schema"] != live["payload_schema"] else [])


def _label(info, default):
    """The embedding-model label: the collection's metadata ``embedding_model``, else the source's."""
    return ((info["config"].get("metadata") or {}).get("embedding_model") or default) if info else None


def _summary(info, default_label):
    """The plan's view of a recorded or live collection."""
    if info is None:
        return None
    params = info["config"].get("params", {})
    return {"vectors": params.get("vectors"), "sparse_vectors": params.get("sparse_vectors"),
            "shard_number": params.get("shard_number", 1), "replication_factor": params.get("replication_factor", 1),
            "on_disk_payload": params.get("on_disk_payload"), "payload": params.get("payload"),
            "quantization": info["config"].get("quantization_config"),
            "payload_indexes": {field: index.get("data_type") for field, index in info["payload_schema"].items()},
            "embedding_model": _label(info, default_label)}


def _plain(meta):
    """(sha256, size) of the bytes ``reader.open()`` gives: the decrypted ones for an encrypted artifact."""
    if meta.get("encryption"):
        return meta["plaintext_sha256"], meta["plaintext_size"]
    return meta["sha256"], meta["size"]


def _upload_refusal(collection):
    """Why Qdrant's upload endpoint refuses ``collection``, or None."""
    if UPLOAD_REFUSES.search(collection):
        return (f"collection name {collection!r} has a character Qdrant refuses on snapshot upload (< > : \" / \\ "
                "| ? * or a control character), so its snapshot cannot be restored by upload. Back the collection "
                "up with QDRANT_METHOD=export and restore that backup, or copy the snapshot file to the server and "
                "recover it by location (PUT /collections/{name}/snapshots/recover, docs/vectors.md).")
    return None


class Interrupted(ComponentError):
    """The request may have reached Qdrant but no answer came (a timeout or a lost connection)."""


class Refused(ComponentError):
    """Qdrant answered with an HTTP error ``status``."""

    def __init__(self, text, status):
        super().__init__(text)
        self.status = status


class SnapshotMethod:
    """Qdrant's REST API over httpx: snapshots stream through in chunks both ways."""

    #: Seconds between two looks at the telemetry while waiting out a recovery, and at most in all.
    poll, recovery_wait = 0.5, 3600

    def __init__(self, url, api_key, timeout):
        import httpx

        self.url = url
        self.timeout = timeout
        self.http = httpx.Client(base_url=url, headers={"api-key": api_key} if api_key else {},
                                 timeout=httpx.Timeout(timeout, connect=10))

    def close(self):
        self.http.close()

    @contextmanager
    def _request(self, method, path, **kwargs):
        import httpx

        try:
            with self.http.stream(method, path, **kwargs) as response:
                if response.is_error:
                    response.read()
                    try:
                        detail = response.json()["status"]["error"]
                    except (ValueError, KeyError, TypeError):  # 401 and missing files answer plain text
                        detail = response.text[:300] or response.reason_phrase
                    hint = f" ({HINTS[response.status_code]})" if response.status_code in HINTS else ""
                    raise Refused(f"Qdrant at {self.url} refused {method} {path}: HTTP {response.status_code} "
                                  f"{detail}{hint}", response.status_code)
                yield response
        except httpx.TimeoutException:
            raise Interrupted(f"Qdrant at {self.url} did not answer {method} {path} within {self.timeout} s "
                              "(raise QDRANT_TIMEOUT for large collections).") from None
        except httpx.ConnectError as exc:
            raise ComponentError(f"Cannot reach Qdrant at {self.url} ({method} {path}): {exc}") from None
        except httpx.HTTPError as exc:
            raise Interrupted(f"Lost the connection to Qdrant at {self.url} ({method} {path}): {exc}") from None

    def _body(self, method, path, **kwargs):
        with self._request(method, path, **kwargs) as response:
            response.read()
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ComponentError(f"Qdrant at {self.url} answered {method} {path} with something that is not "
                                 "Qdrant's JSON: is QDRANT_URL right?")
        return body

    def call(self, method, path, **kwargs):
        return self._body(method, path, **kwargs).get("result")

    @staticmethod
    def _c(collection):
        return f"/collections/{quote(collection, safe='')}"

    def version(self):
        return self._body("GET", "/").get("version", "unknown")

    def collections(self):
        return sorted(c["name"] for c in self.call("GET", "/collections")["collections"])

    def count(self, collection):
        return self.call("POST", f"{self._c(collection)}/points/count", json={"exact": True})["count"]

    def drop(self, collection):
        self.call("DELETE", self._c(collection))

    def collection_info(self, collection):
        info = self.call("GET", self._c(collection))
        return _info(info["config"], info.get("payload_schema"))

    def aliases(self):
        return self.call("GET", "/aliases")["aliases"]

    def set_aliases(self, actions):
        self.call("POST", "/collections/aliases", json={"actions": actions})

    def _delete_snapshot(self, collection, file, log):
        try:
            self.call("DELETE", f"{self._c(collection)}/snapshots/{quote(file, safe='')}", params={"wait": "true"})
        except Refused as exc:
            if exc.status != 404:  # 404: never stored (refused before), or the collection is gone
                log(f"could not delete snapshot {file} of {collection} on the server; delete it by hand: {exc}")
        except ComponentError as exc:
            log(f"could not delete snapshot {file} of {collection} on the server; delete it by hand: {exc}")

    def backup_collection(self, writer, stem, collection, keep, log):
        """Returns (artifact name, points); the count is taken just before the snapshot."""
        points = self.count(collection)
        snapshot = self.call("POST", f"{self._c(collection)}/snapshots", params={"wait": "true"})
        checksum = snapshot.get("checksum")
        if not (isinstance(checksum, str) and SHA256_HEX.fullmatch(checksum)):
            log(f"Qdrant gave no usable checksum for snapshot {snapshot['name']} ({checksum!r}; S3 snapshot storage "
                "gives none): the download is hashed and stored without that check")
            checksum = None
        path = f"{self._c(collection)}/snapshots/{quote(snapshot['name'], safe='')}"
        name = stem + SNAPSHOT_SUFFIX
        try:
            with writer.open(name) as sink, self._request("GET", path) as response:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                digest = sink.hexdigest()
                if checksum and digest != checksum:
                    raise ChecksumMismatch(
                        f"Snapshot {snapshot['name']} of {collection} arrived damaged (sha256 {digest[:12]}…, "
                        f"Qdrant says {checksum[:12]}…); nothing was stored, try again.")
        finally:
            if keep:
                log(f"kept snapshot {snapshot['name']} on the server (QDRANT_KEEP_SNAPSHOTS)")
            else:
                self._delete_snapshot(collection, snapshot["name"], log)
        return name, points

    def recovering(self, collection):
        """Whether the server reports a running snapshot recovery of ``collection``."""
        telemetry = self.call("GET", "/telemetry", params={"details_level": 2})
        return any(entry.get("id") == collection and entry.get("running_snapshot_recovery")
                   for entry in (telemetry.get("collections") or {}).get("snapshots") or [])

    def settle(self, collection, log):
        """Wait until no recovery of ``collection`` runs on the server: one started by an upload whose
        answer never came goes on there, and would race anything done to the collection next."""
        deadline = time.monotonic() + self.recovery_wait
        while self.recovering(collection):
            if time.monotonic() > deadline:
                raise ComponentError(
                    f"Qdrant at {self.url} is still recovering {collection} from an upload whose answer never came, "
                    f"after {self.recovery_wait} s; wait until GET /telemetry?details_level=2 shows no "
                    "running_snapshot_recovery for it before touching it (then restore the safety backup by hand).")
            time.sleep(self.poll)
        log(f"no snapshot recovery of {collection} runs on the server any more")

    def restore_collection(self, reader, artifact, collection, log):
        refusal = _upload_refusal(collection)
        if refusal:
            raise ComponentError(refusal)
        checksum, size = _plain(reader.meta(artifact))
        file = f"restore-{secrets.token_hex(4)}-{artifact}"  # the name the server keeps the upload under
        boundary = secrets.token_hex(16)
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="snapshot"; filename="{file}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body():
            yield head
            with reader.open(artifact) as stream:  # verified against the manifest as it streams
                while chunk := stream.read(CHUNK_SIZE):
                    yield chunk
            yield tail

        try:
            self.call("POST", f"{self._c(collection)}/snapshots/upload",
                      params={"priority": "snapshot", "checksum": checksum, "wait": "true"}, content=body(),
                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                               "Content-Length": str(len(head) + size + len(tail))})
        except Interrupted:
            log(f"{collection}: no answer to the upload; waiting until the server finished recovering it")
            self.settle(collection, log)
            raise
        finally:
            self._delete_snapshot(collection, file, log)


class ExportMethod:
    """qdrant-client against a server or a local folder: scroll out, upsert back."""

    def __init__(self, client, batch_size):
        self.client = client
        self.batch_size = batch_size

    def close(self):
        self.client.close()

    def version(self):
        return "local" if self.client.init_options.get("path") else self.client.info().version

    def collections(self):
        return sorted(c.name for c in self.client.get_collections().collections)

    def count(self, collection):
        return self.client.count(collection, exact=True).count

    def drop(self, collection):
        self.client.delete_collection(collection)

    def collection_info(self, collection):
        info = self.client.get_collection(collection)
        return _info(info.config.model_dump(mode="json", exclude_none=True),
                     {field: index.model_dump(mode="json", exclude_none=True)
                      for field, index in (info.payload_schema or {}).items()})

    def aliases(self):
        return [alias.model_dump(mode="json") for alias in self.client.get_aliases().aliases]

    def set_aliases(self, actions):
        from qdrant_client import models

        self.client.update_collection_aliases([
            models.CreateAliasOperation(**action) if "create_alias" in action else models.DeleteAliasOperation(**action)
            for action in actions])

    def _points(self, collection):
        offset = None
        while True:
            points, offset = self.client.scroll(collection, limit=self.batch_size, offset=offset,
                                                with_payload=True, with_vectors=True)
            for point in points:
                yield point.model_dump(mode="json", include={"id", "vector", "payload"})
            if offset is None:
                return

    def backup_collection(self, writer, stem, collection, keep, log):
        header = {"format": EXPORT_FORMAT, "version": 1, "collection": collection, **self.collection_info(collection)}
        return write_export(writer, stem, header, self._points(collection))

    def load(self, stream, collection=None):
        """Recreate ``collection`` (default: the exported one) from an export stream; returns
        (collection, points)."""
        from qdrant_client import models

        header, records = read_export(stream, EXPORT_FORMAT)
        collection = collection or header["collection"]
        config = models.CollectionConfig.model_validate(header["config"])
        params = config.params
        if self.client.collection_exists(collection):
            self.client.delete_collection(collection)
        self.client.create_collection(
            collection,
            vectors_config=params.vectors, sparse_vectors_config=params.sparse_vectors,
            shard_number=params.shard_number, sharding_method=params.sharding_method,
            replication_factor=params.replication_factor, write_consistency_factor=params.write_consistency_factor,
            on_disk_payload=params.on_disk_payload, payload=params.payload,
            hnsw_config=_diff(models.HnswConfigDiff, config.hnsw_config),
            optimizers_config=_diff(models.OptimizersConfigDiff, config.optimizer_config),
            wal_config=_diff(models.WalConfigDiff, config.wal_config),
            quantization_config=config.quantization_config,
            strict_mode_config=_diff(models.StrictModeConfig, config.strict_mode_config),
            metadata=config.metadata,
        )
        if not self.client.init_options.get("path"):  # local mode keeps no payload indexes (and warns)
            for field, index in header.get("payload_schema", {}).items():
                info = models.PayloadIndexInfo.model_validate({"points": 0, **index})
                self.client.create_payload_index(collection, field, field_schema=info.params or info.data_type,
                                                 wait=True)
        loaded = 0
        for batch in batches(records, self.batch_size):
            self.client.upsert(collection, [models.PointStruct(**record) for record in batch], wait=True)
            loaded += len(batch)
        live = self.count(collection)
        if live != loaded:
            raise ComponentError(f"Collection {collection} has {live} points after loading {loaded} from the export.")
        return collection, loaded

    def restore_collection(self, reader, artifact, collection, log):
        with reader.open_decompressed(artifact) as stream:
            self.load(stream, collection)


class QdrantSearcher:
    """The exact searches the probes need (backups_app/probes.py), through qdrant-client;
    ``rename`` maps backed-up collection names to the ones searched (a rehearsal's scratch)."""

    def __init__(self, client, collections=(), rename=None):
        self.client = client
        self.names = list(collections)
        self.rename = rename or {}

    def _c(self, collection):
        return self.rename.get(collection, collection)

    def collections(self):
        return self.names

    def vectors_of(self, collection):
        from qdrant_client import models

        vectors = self.client.get_collection(self._c(collection)).config.params.vectors
        if isinstance(vectors, models.VectorParams):
            return [] if vectors.multivector_config else [""]
        return sorted(name for name, params in (vectors or {}).items() if not params.multivector_config)

    def _ids(self, collection):
        offset = None
        while True:
            points, offset = self.client.scroll(self._c(collection), limit=1000, offset=offset, with_payload=False,
                                                with_vectors=False)
            yield from (point.id for point in points)
            if offset is None:
                return

    def choose(self, collection, k):
        return probes.choose(self._ids(collection), k)

    def vectors(self, collection, ids, name):
        points = self.client.retrieve(self._c(collection), ids, with_payload=False,
                                      with_vectors=[name] if name else True)
        return {p.id: (p.vector or {}).get(name) if name else p.vector for p in points}

    def nearest(self, collection, name, queries, limit):
        from qdrant_client import models

        # Local mode always searches exactly (and warns about search_params).
        exact = None if self.client.init_options.get("path") else models.SearchParams(exact=True)
        return [[(p.id, p.score) for p in self.client.query_points(
            self._c(collection), query=query, using=name or None, limit=limit, with_payload=False,
            search_params=exact).points] for query in queries]


class QdrantComponent(Component):
    options = {
        "url": (str, ""),
        "api_key": (str, ""),
        "path": (str, ""),
        "collections": (comma_list, []),
        "method": (_method, "auto"),
        "keep_snapshots": (parse_bool, False),
        "timeout": (int, 300),
        "batch_size": (int, 500),
        "embedding_model": (str, ""),
    }
    secret_options = ("api_key",)
    restore_options = {"allow_version_mismatch": (parse_bool, False), "suffix": (str, ""),
                       "collections": (comma_list, [])}
    target_options = {"suffix": "restore each collection as <name><suffix>, e.g. _restored (the live ones are not "
                                "touched)",
                      "collections": "only these collections (comma-separated)"}
    environment = {"url": "QDRANT_URL", "api_key": "QDRANT_API_KEY", "path": "QDRANT_PATH",
                   "collections": "QDRANT_COLLECTIONS", "method": "QDRANT_METHOD",
                   "keep_snapshots": "QDRANT_KEEP_SNAPSHOTS", "timeout": "QDRANT_TIMEOUT",
                   "embedding_model": "QDRANT_EMBEDDING_MODEL"}
    configured_by = ("QDRANT_URL", "QDRANT_HOST", "QDRANT_PATH")
    backup_order = 70

    @classmethod
    def options_from_environment(cls, env):
        """A server by QDRANT_URL, or by QDRANT_HOST and QDRANT_PORT (6333), or a local folder."""
        options = super().options_from_environment(env)
        if options is not None and "url" not in options and env.get("QDRANT_HOST"):
            options["url"] = f"http://{env['QDRANT_HOST']}:{env.get('QDRANT_PORT') or 6333}"
        return options

    def __init__(self, name, options):
        super().__init__(name, options)
        c = self.config
        if bool(c["url"]) == bool(c["path"]):
            raise ConfigurationError(f"Qdrant source {name!r} needs exactly one of QDRANT_URL (or QDRANT_HOST/"
                                     "QDRANT_PORT) for a server or QDRANT_PATH for qdrant-client's local mode.")
        if c["path"] and c["method"] == "snapshot":
            raise ConfigurationError(f"Qdrant source {name!r}: QDRANT_METHOD=snapshot needs a server; local mode "
                                     "(QDRANT_PATH) is backed up with QDRANT_METHOD=export (or auto).")
        self.method = c["method"] if c["method"] != "auto" else ("export" if c["path"] else "snapshot")

    @contextmanager
    def _open(self, method):
        c = self.config
        try:
            if method == "snapshot":
                store = SnapshotMethod(c["url"], c["api_key"], c["timeout"])
            elif c["path"]:
                store = ExportMethod(_client(path=c["path"]), c["batch_size"])
            else:
                store = ExportMethod(_client(url=c["url"], api_key=c["api_key"] or None, timeout=c["timeout"],
                                             check_compatibility=False), c["batch_size"])
        except RuntimeError as exc:  # local mode allows one process at a time
            raise ComponentError(f"{self.name}: cannot open the Qdrant folder {c['path']}: {exc} Stop the program "
                                 "using it (a pre_backup/pre_restore hook) or run a Qdrant server.") from None
        try:
            yield store
        except _request_errors() as exc:
            raise ComponentError(f"{self.name}: Qdrant request failed: {exc}") from None
        finally:
            store.close()

    @contextmanager
    def searcher(self, target=None, collections=(), client=None):
        """A QdrantSearcher over the source (``client``: one already open, local mode allows one) or
        over ``target`` {"collections": {backed-up name: name searched}}."""
        c = self.config
        own = client is None
        try:
            client = client or (_client(path=c["path"]) if c["path"] else _client(
                url=c["url"], api_key=c["api_key"] or None, timeout=c["timeout"], check_compatibility=False))
        except RuntimeError as exc:
            raise ComponentError(f"{self.name}: cannot open the Qdrant folder {c['path']}: {exc}") from None
        try:
            yield QdrantSearcher(client, collections, (target or {}).get("collections"))
        except _request_errors(ValueError, KeyError) as exc:  # local mode: ValueError "not found"
            raise ComponentError(f"{self.name}: a probe search failed: {exc}") from None
        finally:
            if own:
                client.close()

    def _no_folder(self):
        """Local mode whose folder does not exist (opening it would create it)."""
        return self.config["path"] and not os.path.isdir(self.config["path"])

    def _selected(self, store, writer, log):
        live = store.collections()
        wanted = self.config["collections"] or live
        missing = [c for c in wanted if c not in live]
        if missing and not writer.allow_missing:
            raise ComponentError(f"{self.name}: collection(s) {', '.join(missing)} do not exist in Qdrant "
                                 f"(check QDRANT_COLLECTIONS; existing: {', '.join(live) or 'none'}).")
        for collection in missing:
            self.missing(writer, log, f"collection {collection}", "QDRANT_COLLECTIONS")
        return [c for c in wanted if c in live], missing

    def backup(self, writer, log):
        counts, artifacts, configs = {}, {}, {}
        if self._no_folder():
            self.missing(writer, log, f"the Qdrant folder {self.config['path']}", "QDRANT_PATH")
            return {"counts": counts, "method": self.method, "collections": artifacts, "absent": [WHOLE_STORE]}
        with self._open(self.method) as store:
            version = store.version()
            selected, absent = self._selected(store, writer, log)
            for collection in selected:
                configs[collection] = store.collection_info(collection)
                name, counts[collection] = store.backup_collection(
                    writer, artifact_stem(self.name, collection), collection, self.config["keep_snapshots"], log)
                artifacts[name] = collection
                log(f"{self.name}: {collection}: {counts[collection]} points into {name} ({self.method})")
            # Every alias of the selection: with the whole server selected, every alias there is.
            aliases = [a for a in store.aliases() if a["collection_name"] in selected]
            found = probes.recording(self, self.searcher(collections=selected, client=getattr(store, "client", None)),
                                     log)
        return {**found, "counts": counts, "server_version": version, "method": self.method, "collections": artifacts,
                "configs": configs, "aliases": aliases, "embedding_model": self.config["embedding_model"] or None,
                "absent": absent, "tool_version": f"qdrant-client {importlib.metadata.version('qdrant-client')}"}

    def inspect(self):
        if self._no_folder():
            return {}
        with self._open(self.method) as store:
            live = store.collections()
            return {c: store.count(c) for c in (self.config["collections"] or live) if c in live}

    def _targets(self, reader, artifacts):
        """The method the backup used and [(artifact, collection)]."""
        facts = reader.facts_of(self.name)
        method = facts.get("method", self.method)
        if method == "snapshot" and self.config["path"]:
            raise ComponentError(f"{self.name}: this backup holds server snapshots; they cannot be loaded into local "
                                 "mode (QDRANT_PATH). Restore into a Qdrant server, or back up with "
                                 "QDRANT_METHOD=export.")
        collections = facts.get("collections", {})
        unknown = [a for a in artifacts if a not in collections]
        if unknown:
            raise ComponentError(f"{self.name}: {', '.join(unknown)} belong to no collection in the manifest.")
        return method, [(a, collections[a]) for a in artifacts]

    def _version_refusal(self, store, backed_up, allow, log):
        """Why the server may not take these snapshots, or None."""
        live = store.version()
        then, now = _minor(backed_up), _minor(live)
        if then and now and not (now[0] == then[0] and now[1] in (then[1], then[1] + 1)):
            if not allow:
                return (f"these snapshots were made by Qdrant {backed_up}; this server runs {live}. Qdrant restores a "
                        "snapshot only into the same or the next minor version. Restore into a matching server, use "
                        "a backup taken with QDRANT_METHOD=export, or set the restore option "
                        f"{self.name}.allow_version_mismatch=true to try anyway.")
            log(f"{self.name}: snapshot from Qdrant {backed_up} into {live} (allow_version_mismatch)")
        return None

    def preflight(self, reader, artifacts, options):
        facts = reader.facts_of(self.name)
        method, targets = self._targets(reader, artifacts)
        targets, refusals = self._chosen(targets, options)
        if options["suffix"]:
            return self._side_preflight(reader, method, targets, refusals, options)
        problems, notes, shown = refusals, [], {}
        recorded, label = facts.get("configs", {}), facts.get("embedding_model")
        live_label = self.config["embedding_model"] or None
        restored = [collection for _, collection in targets]
        if self._no_folder():
            return {"collections": {c: {"backup": _summary(recorded.get(c), label), "live": None} for c in restored}}
        with self._open(method) as store:
            if method == "snapshot" and targets:
                refusal = self._version_refusal(store, facts.get("server_version"),
                                                options["allow_version_mismatch"], lambda text: None)
                problems += [refusal] if refusal else []
                problems += [r for r in map(_upload_refusal, restored) if r]
            live = store.collections()
            for collection in restored:
                backup = recorded.get(collection)
                now = store.collection_info(collection) if collection in live else None
                shown[collection] = {"backup": _summary(backup, label), "live": _summary(now, live_label)}
                differs = _differences(backup, now) if backup and now else []
                if method == "snapshot" and differs:
                    refused = " (Qdrant refuses such a snapshot in place)" if set(differs) & set(COMPATIBILITY) else ""
                    notes.append(f"collection {collection}: {', '.join(differs)} differ from the backup{refused}: the "
                                 "restore drops it and recovers it from the snapshot, after the safety backup")
                if backup and now and _label(backup, label) != _label(now, live_label):
                    notes.append(f"collection {collection}: the backup's embedding model is "
                                 f"{_label(backup, label) or 'unrecorded'}, the live one "
                                 f"{_label(now, live_label) or 'unrecorded'}: queries must use the backup's model")
            aliases = {"backup": facts.get("aliases"),
                       "live": [a for a in store.aliases() if a["collection_name"] in restored]}
        return {"problems": problems, "notes": notes, "collections": shown, "aliases": aliases}

    def _put_back_aliases(self, store, recorded, restored, log):
        """Make the aliases of the ``restored`` collections the ``recorded`` ones, in one atomic change."""
        want = {a["alias_name"]: a["collection_name"] for a in recorded if a["collection_name"] in restored}
        live = {a["alias_name"]: a["collection_name"] for a in store.aliases()}
        actions = [{"delete_alias": {"alias_name": alias}} for alias, collection in live.items()
                   if (collection in restored or alias in want) and want.get(alias) != collection]
        actions += [{"create_alias": {"collection_name": collection, "alias_name": alias}}
                    for alias, collection in want.items() if live.get(alias) != collection]
        if actions:
            store.set_aliases(actions)
            log(f"{self.name}: aliases put back: {', '.join(f'{a} → {c}' for a, c in want.items()) or 'none'}")

    def restore(self, reader, artifacts, options, log):
        facts = reader.facts_of(self.name)
        method, targets = self._targets(reader, artifacts)
        targets, refusals = self._chosen(targets, options)
        if refusals:
            raise Unchanged(f"{self.name}: {'; '.join(refusals)}; nothing was changed.")
        if options["suffix"]:
            return self._restore_side(reader, method, targets, options, log)
        recorded = facts.get("configs", {})
        with self._open(method) as store:
            if method == "snapshot" and targets:
                refusal = self._version_refusal(store, facts.get("server_version"),
                                                options["allow_version_mismatch"], log)
                if refusal:
                    raise Unchanged(f"{self.name}: {refusal}")
            existed = set(store.collections())
            absent = [] if options["collections"] else self.absent(reader)
            for collection in sorted(existed) if WHOLE_STORE in absent else absent:
                if collection in existed:
                    log(f"{self.name}: collection {collection} did not exist in this backup; dropping it")
                    store.drop(collection)
            created = []
            try:
                for artifact, collection in targets:
                    if collection not in existed:
                        created.append(collection)
                    elif method == "snapshot" and collection in recorded:
                        differs = _differences(recorded[collection], store.collection_info(collection))
                        if differs:
                            log(f"{self.name}: {collection}: {', '.join(differs)} differ from the backup; dropping "
                                "it to recover it from the snapshot")
                            store.drop(collection)
                    store.restore_collection(reader, artifact, collection, log)
                    log(f"{self.name}: restored {collection} from {artifact}: {store.count(collection)} points "
                        f"(backup: {facts.get('counts', {}).get(collection, '?')})")
                if "aliases" in facts:  # sets made before aliases were recorded leave them as they are
                    self._put_back_aliases(store, facts["aliases"], [c for _, c in targets], log)
            except Exception:
                # Collections that did not exist before are not in the safety backup: remove our partial work.
                for collection in created:
                    try:
                        if collection in store.collections():
                            store.drop(collection)
                    except Exception as exc:  # the original error matters more
                        log(f"{self.name}: could not drop the partial collection {collection}: {exc}")
                raise

    # Side by side

    def check_restore_options(self, options):
        suffix = options["suffix"]
        if suffix and (UPLOAD_REFUSES.search(suffix) or suffix != suffix.strip()):
            raise InvalidOption(f"{self.name}.suffix={suffix!r}: a collection name suffix may not hold spaces at its "
                                "ends or < > : \" / \\ | ? * (Qdrant refuses them in names); use e.g. _restored.")

    def targets_live(self, options):
        return not options["suffix"]

    def describe_target(self, options):
        which = f"collections {', '.join(options['collections'])}" if options["collections"] else "every collection"
        if options["suffix"]:
            return (f"{which} as <name>{options['suffix']}; the live collections and their aliases are not touched "
                    "(promote switches the aliases)")
        return f"only {which}, replaced in place" if options["collections"] else None

    def probe_target(self, options, facts):
        """{"collections": {backed-up name: name restored as}} for the collections restored (only
        those: qdrant.collections), or None for all of them in place."""
        if not (options["suffix"] or options["collections"]):
            return None
        chosen = options["collections"] or list(facts.get("collections", {}).values())
        return {"collections": {c: c + options["suffix"] for c in chosen}}

    @staticmethod
    def _chosen(targets, options):
        """(the [(artifact, collection)] qdrant.collections selects, [why a selection is refused])."""
        wanted = options["collections"]
        if not wanted:
            return targets, []
        have = [collection for _, collection in targets]
        missing = [c for c in wanted if c not in have]
        refusals = [f"collection(s) {', '.join(missing)} are not in this backup (it holds {', '.join(have) or 'none'})"]
        return [(a, c) for a, c in targets if c in wanted], refusals if missing else []

    def _side_problems(self, store, targets, suffix):
        """Why the collections cannot be restored under ``suffix`` as the server is now."""
        live, aliases = set(store.collections()), {a["alias_name"] for a in store.aliases()}
        problems = []
        for _, collection in targets:
            into = collection + suffix
            if into in live:
                problems.append(f"collection {into} exists; drop it or choose another {self.name}.suffix (nothing "
                                "there is replaced)")
            elif into in aliases:
                problems.append(f"{into} is an alias; choose another {self.name}.suffix")
            elif into in self.config["collections"]:
                problems.append(f"{into} is a collection this source backs up (QDRANT_COLLECTIONS); choose another "
                                f"{self.name}.suffix")
        return problems

    def _side_preflight(self, reader, method, targets, problems, options):
        facts, suffix = reader.facts_of(self.name), options["suffix"]
        with self._open(method) as store:
            if method == "snapshot" and targets:
                refusal = self._version_refusal(store, facts.get("server_version"),
                                                options["allow_version_mismatch"], lambda text: None)
                problems += [refusal] if refusal else []
                problems += [r for r in (_upload_refusal(c + suffix) for _, c in targets) if r]
            problems += self._side_problems(store, targets, suffix)
        notes = [f"restores {c} as {c + suffix}" for _, c in targets]
        notes.append("the live collections and their aliases are not changed; manage.py promote switches the aliases "
                     "to the restored collections")
        return {"problems": problems, "notes": notes, "restored_as": {c: c + suffix for _, c in targets}}

    def _restore_side(self, reader, method, targets, options, log):
        facts, suffix = reader.facts_of(self.name), options["suffix"]
        with self._open(method) as store:
            problems = self._side_problems(store, targets, suffix)
            if method == "snapshot" and targets:
                refusal = self._version_refusal(store, facts.get("server_version"),
                                                options["allow_version_mismatch"], log)
                problems += [refusal] if refusal else []
            if problems:
                raise Unchanged(f"{self.name}: {'; '.join(problems)}; nothing was changed.")
            made = []
            try:
                for artifact, collection in targets:
                    made.append(collection + suffix)
                    store.restore_collection(reader, artifact, collection + suffix, log)
                    log(f"{self.name}: restored {collection} as {collection + suffix} from {artifact}: "
                        f"{store.count(collection + suffix)} points; {collection} was not touched")
            except Exception as exc:
                self._drop_made(store, made, log)
                raise Unchanged(f"{self.name}: restoring {made[-1]} failed ({exc}); the collections it made were "
                                "dropped and the live ones were not touched") from None

    def promote(self, options, facts, tag, log):
        """Switch every alias that points at a restored collection's live twin to the restored one,
        in one atomic alias change; the live collections are kept (drop_replaced removes them)."""
        renamed = self.probe_target(options, facts)["collections"]
        with self._open(self.method) as store:
            present = set(store.collections())
            gone = [into for into in renamed.values() if into not in present]
            if gone:
                raise Unchanged(f"{self.name}: collection(s) {', '.join(gone)} no longer exist; nothing was switched.")
            switched = {a["alias_name"]: [a["collection_name"], renamed[a["collection_name"]]]
                        for a in store.aliases() if a["collection_name"] in renamed}
            if not switched:
                raise Unchanged(f"{self.name}: no alias points at {', '.join(renamed)}, so there is nothing to switch "
                                "atomically. Point the app at an alias (POST /collections/aliases, create_alias "
                                "docs_live → docs) and promote again, or query the restored collections by name.")
            store.set_aliases(self._alias_actions({alias: new for alias, (_old, new) in switched.items()}))
        log(f"{self.name}: aliases switched in one change: "
            + ", ".join(f"{alias} → {new} (was {old})" for alias, (old, new) in switched.items())
            + "; the replaced collections are kept until --drop-old")
        return {"aliases": switched, "collections": renamed}

    def undo_promotion(self, record, log):
        with self._open(self.method) as store:
            present = set(store.collections())
            gone = sorted({old for old, _new in record["aliases"].values() if old not in present})
            if gone:
                raise Unchanged(f"{self.name}: collection(s) {', '.join(gone)}, which the aliases pointed at before, "
                                "were dropped; the promotion cannot be undone.")
            store.set_aliases(self._alias_actions({alias: old for alias, (old, _new) in record["aliases"].items()}))
        log(f"{self.name}: aliases switched back in one change: "
            + ", ".join(f"{alias} → {old}" for alias, (old, _new) in record["aliases"].items()))

    def drop_replaced(self, record, log):
        with self._open(self.method) as store:
            pointed = {a["collection_name"] for a in store.aliases()}
            for old in sorted({old for old, _new in record["aliases"].values()}):
                if old in pointed:
                    log(f"{self.name}: kept {old}: an alias points at it again")
                elif old in store.collections():
                    store.drop(old)
                    log(f"{self.name}: dropped {old}, the collection the promotion replaced")

    @staticmethod
    def _alias_actions(pointing):
        """The actions of one atomic alias change pointing each alias of ``pointing`` at its collection."""
        actions = []
        for alias, collection in pointing.items():
            actions += [{"delete_alias": {"alias_name": alias}},
                        {"create_alias": {"collection_name": collection, "alias_name": alias}}]
        return actions

    def _drop_made(self, store, collections, log):
        """Drop the collections a failed restore made (a failure is logged: the first error matters)."""
        for collection in collections:
            try:
                if collection in store.collections():
                    store.drop(collection)
            except Exception as exc:
                log(f"{self.name}: could not drop the partial collection {collection}: {exc}")

    def rehearse(self, reader, artifacts, log):
        method, targets = self._targets(reader, artifacts)
        counts, self.rehearsal_probes = {}, {}
        with self._open(method) as store:
            for artifact, collection in targets:
                target = f"{collection}-rehearsal-{secrets.token_hex(4)}"
                with scratch(target, lambda name: name in store.collections(), store.drop):
                    store.restore_collection(reader, artifact, target, log)
                    counts[collection] = store.count(target)
                    with self.searcher({"collections": {collection: target}},
                                       client=getattr(store, "client", None)) as searcher:
                        self.rehearsal_probes.update(probes.check_probes(
                            self, reader.facts_of(self.name), log=log, only=[collection], searcher=searcher))
                log(f"{self.name}: rehearsal of {artifact}: {counts[collection]} points")
        return counts


def main(argv=None):
    """Load a ``.jsonl.zst`` / ``.jsonl.gz`` / ``.jsonl`` export into Qdrant without the app."""
    parser = argparse.ArgumentParser(prog="python -m backups_app.components.qdrant",
                                     description="Import a Qdrant export made by the backup app. The collection "
                                                 "is recreated (an existing one is replaced).")
    parser.add_argument("export", help="qdrant_<collection>.jsonl.zst from a backup set")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="Qdrant server, e.g. http://localhost:6333 (API key from QDRANT_API_KEY)")
    target.add_argument("--path", help="qdrant-client local mode folder")
    parser.add_argument("--collection", help="collection name (default: the one recorded in the export)")
    args = parser.parse_args(argv)

    client = _client(path=args.path) if args.path else _client(
        url=args.url, api_key=os.environ.get("QDRANT_API_KEY") or None, check_compatibility=False)
    store = ExportMethod(client, 500)
    try:
        with open(args.export, "rb") as raw, decompressing(raw, method_of(args.export)) as stream:
            collection, loaded = store.load(stream, args.collection)
    except _request_errors(ComponentError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{collection}: {loaded} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
