"""Qdrant: every collection (or QDRANT_COLLECTIONS) by one of two methods.

- ``snapshot`` (a server): Qdrant's own collection snapshot, made on the server, streamed into
  ``<name>_<collection>.snapshot`` while hashed and checked against the snapshot's sha256, then
  deleted on the server. Restore streams the file back as a multipart upload with
  ``priority=snapshot`` (``replica`` would restore nothing into an empty collection) and the
  checksum. Snapshots restore only into the same or the next minor Qdrant version, so the
  server version is recorded and a mismatch is refused unless ``allow_version_mismatch``.
- ``export`` (any Qdrant, qdrant-client's local mode included, any version): the collection
  config, payload indexes and every point (id, all vectors, payload) scrolled into
  ``<name>_<collection>.jsonl.zst`` (see exports.py). Restore recreates the collection, upserts
  in batches and checks the point count.

``auto`` picks snapshot for a server and export for a local path.
Run ``python -m backups_app.components.qdrant --help`` to import an export by hand.
"""

import argparse
import importlib.metadata
import os
import re
import secrets
import sys
from contextlib import contextmanager
from urllib.parse import quote

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException

from backups_app.archive.compression import decompressing, method_of
from backups_app.archive.exports import artifact_stem, batches, read_export, write_export
from backups_app.archive.storage import CHUNK_SIZE
from backups_app.components.base import WHOLE_STORE, Component, scratch
from backups_app.errors import ChecksumMismatch, ComponentError, ConfigurationError
from backups_app.parsing import comma_list, parse_bool

EXPORT_FORMAT = "qdrant-collection"
SNAPSHOT_SUFFIX = ".snapshot"


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


class SnapshotMethod:
    """Qdrant's REST API over httpx: snapshots stream through in chunks both ways."""

    def __init__(self, url, api_key, timeout):
        self.url = url
        self.timeout = timeout
        self.http = httpx.Client(base_url=url, headers={"api-key": api_key} if api_key else {},
                                 timeout=httpx.Timeout(timeout, connect=10))

    def close(self):
        self.http.close()

    @contextmanager
    def _request(self, method, path, **kwargs):
        try:
            with self.http.stream(method, path, **kwargs) as response:
                if response.is_error:
                    response.read()
                    try:
                        detail = response.json()["status"]["error"]
                    except (ValueError, KeyError, TypeError):
                        detail = response.text[:300] or response.reason_phrase
                    raise ComponentError(f"Qdrant at {self.url} refused {method} {path}: HTTP {response.status_code} "
                                         f"{detail}")
                yield response
        except httpx.TimeoutException:
            raise ComponentError(f"Qdrant at {self.url} did not answer {method} {path} within {self.timeout} s "
                                 "(raise QDRANT_TIMEOUT for large collections).") from None
        except httpx.HTTPError as exc:
            raise ComponentError(f"Cannot reach Qdrant at {self.url} ({method} {path}): {exc}") from None

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

    def backup_collection(self, writer, stem, collection, keep, log):
        """Returns (artifact name, points); the count is taken just before the snapshot."""
        points = self.count(collection)
        snapshot = self.call("POST", f"{self._c(collection)}/snapshots", params={"wait": "true"})
        path = f"{self._c(collection)}/snapshots/{quote(snapshot['name'], safe='')}"
        name = stem + SNAPSHOT_SUFFIX
        try:
            with writer.open(name) as sink, self._request("GET", path) as response:
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                digest = sink.hexdigest()
                if snapshot.get("checksum") and digest != snapshot["checksum"]:
                    raise ChecksumMismatch(
                        f"Snapshot {snapshot['name']} of {collection} arrived damaged (sha256 {digest[:12]}…, "
                        f"Qdrant says {snapshot['checksum'][:12]}…); nothing was stored, try again.")
        finally:
            if keep:
                log(f"kept snapshot {snapshot['name']} on the server (QDRANT_KEEP_SNAPSHOTS)")
            else:
                try:
                    self.call("DELETE", path, params={"wait": "true"})
                except ComponentError as exc:
                    log(f"could not delete snapshot {snapshot['name']} on the server; delete it by hand: {exc}")
        return name, points

    def restore_collection(self, reader, artifact, collection):
        meta = reader.manifest["artifacts"][artifact]
        boundary = secrets.token_hex(16)
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="snapshot"; filename="{artifact}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body():
            yield head
            with reader.open(artifact) as stream:  # verified against the manifest as it streams
                while chunk := stream.read(CHUNK_SIZE):
                    yield chunk
            yield tail

        self.call("POST", f"{self._c(collection)}/snapshots/upload",
                  params={"priority": "snapshot", "checksum": meta["sha256"], "wait": "true"}, content=body(),
                  headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                           "Content-Length": str(len(head) + meta["size"] + len(tail))})


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
        info = self.client.get_collection(collection)
        header = {"format": EXPORT_FORMAT, "version": 1, "collection": collection,
                  "config": info.config.model_dump(mode="json", exclude_none=True),
                  "payload_schema": {field: index.model_dump(mode="json", exclude_none=True)
                                     for field, index in (info.payload_schema or {}).items()}}
        return write_export(writer, stem, header, self._points(collection))

    def load(self, stream, collection=None):
        """Recreate ``collection`` (default: the exported one) from an export stream; returns
        (collection, points)."""
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
            on_disk_payload=params.on_disk_payload,
            hnsw_config=_diff(models.HnswConfigDiff, config.hnsw_config),
            optimizers_config=_diff(models.OptimizersConfigDiff, config.optimizer_config),
            wal_config=_diff(models.WalConfigDiff, config.wal_config),
            quantization_config=config.quantization_config,
            strict_mode_config=_diff(models.StrictModeConfig, config.strict_mode_config),
            metadata=config.metadata,
        )
        if not self.client.init_options.get("path"):  # local mode ignores payload indexes (and warns)
            for field, index in header.get("payload_schema", {}).items():
                info = models.PayloadIndexInfo.model_validate(index)
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

    def restore_collection(self, reader, artifact, collection):
        with reader.open_decompressed(artifact) as stream:
            self.load(stream, collection)


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
    }
    secret_options = ("api_key",)
    restore_options = {"allow_version_mismatch": (parse_bool, False)}
    environment = {"url": "QDRANT_URL", "api_key": "QDRANT_API_KEY", "path": "QDRANT_PATH",
                   "collections": "QDRANT_COLLECTIONS", "method": "QDRANT_METHOD",
                   "keep_snapshots": "QDRANT_KEEP_SNAPSHOTS", "timeout": "QDRANT_TIMEOUT"}
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
                store = ExportMethod(QdrantClient(path=c["path"]), c["batch_size"])
            else:
                store = ExportMethod(QdrantClient(url=c["url"], api_key=c["api_key"] or None, timeout=c["timeout"],
                                                  check_compatibility=False), c["batch_size"])
        except RuntimeError as exc:  # local mode allows one process at a time
            raise ComponentError(f"{self.name}: cannot open the Qdrant folder {c['path']}: {exc} Stop the program "
                                 "using it (a pre_backup/pre_restore hook) or run a Qdrant server.") from None
        try:
            yield store
        except (ApiException, httpx.HTTPError) as exc:
            raise ComponentError(f"{self.name}: Qdrant request failed: {exc}") from None
        finally:
            store.close()

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
        counts, artifacts = {}, {}
        path = self.config["path"]
        if path and not os.path.isdir(path):
            self.missing(writer, log, f"the Qdrant folder {path}", "QDRANT_PATH")
            return {"counts": counts, "method": self.method, "collections": artifacts, "absent": [WHOLE_STORE]}
        with self._open(self.method) as store:
            version = store.version()
            selected, absent = self._selected(store, writer, log)
            for collection in selected:
                name, counts[collection] = store.backup_collection(
                    writer, artifact_stem(self.name, collection), collection, self.config["keep_snapshots"], log)
                artifacts[name] = collection
                log(f"{self.name}: {collection}: {counts[collection]} points into {name} ({self.method})")
        return {"counts": counts, "server_version": version, "method": self.method, "collections": artifacts,
                "absent": absent, "tool_version": f"qdrant-client {importlib.metadata.version('qdrant-client')}"}

    def inspect(self):
        if self.config["path"] and not os.path.isdir(self.config["path"]):
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

    def _check_version(self, store, backed_up, allow, log):
        live = store.version()
        then, now = _minor(backed_up), _minor(live)
        if then and now and not (now[0] == then[0] and now[1] in (then[1], then[1] + 1)):
            if not allow:
                raise ComponentError(
                    f"{self.name}: these snapshots were made by Qdrant {backed_up}; this server runs {live}. Qdrant "
                    "restores a snapshot only into the same or the next minor version. Restore into a matching "
                    "server, use a backup taken with QDRANT_METHOD=export, or set the restore option "
                    f"{self.name}.allow_version_mismatch=true to try anyway.")
            log(f"{self.name}: snapshot from Qdrant {backed_up} into {live} (allow_version_mismatch)")

    def restore(self, reader, artifacts, options, log):
        facts = reader.facts_of(self.name)
        method, targets = self._targets(reader, artifacts)
        with self._open(method) as store:
            if method == "snapshot" and targets:
                self._check_version(store, facts.get("server_version"), options["allow_version_mismatch"], log)
            existed = set(store.collections())
            absent = self.absent(reader)
            for collection in sorted(existed) if WHOLE_STORE in absent else absent:
                if collection in existed:
                    log(f"{self.name}: collection {collection} did not exist in this backup; dropping it")
                    store.drop(collection)
            created = []
            try:
                for artifact, collection in targets:
                    if collection not in existed:
                        created.append(collection)
                    store.restore_collection(reader, artifact, collection)
                    log(f"{self.name}: restored {collection} from {artifact}: {store.count(collection)} points "
                        f"(backup: {facts.get('counts', {}).get(collection, '?')})")
            except Exception:
                # Collections that did not exist before are not in the safety backup: remove our partial work.
                for collection in created:
                    try:
                        store.drop(collection)
                    except Exception as exc:  # the original error matters more
                        log(f"{self.name}: could not drop the partial collection {collection}: {exc}")
                raise

    def rehearse(self, reader, artifacts, log):
        method, targets = self._targets(reader, artifacts)
        counts = {}
        with self._open(method) as store:
            for artifact, collection in targets:
                target = f"{collection}-rehearsal-{secrets.token_hex(4)}"
                with scratch(target, lambda name: name in store.collections(), store.drop):
                    store.restore_collection(reader, artifact, target)
                    counts[collection] = store.count(target)
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

    client = QdrantClient(path=args.path) if args.path else QdrantClient(
        url=args.url, api_key=os.environ.get("QDRANT_API_KEY") or None, check_compatibility=False)
    store = ExportMethod(client, 500)
    try:
        with open(args.export, "rb") as raw, decompressing(raw, method_of(args.export)) as stream:
            collection, loaded = store.load(stream, args.collection)
    except (ComponentError, ApiException, httpx.HTTPError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{collection}: {loaded} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
