"""ChromaDB, either of two ways:

- ``path`` (CHROMA_PATH, a persistent folder): a file-level copy into ``<name>.tar.zst``, with
  ``chroma.sqlite3`` taken through SQLite's online backup API and the segment folders beside it.
  Chroma writes the folders and the database separately, so writers must be stopped while it runs
  (pre_backup/post_backup hooks). Restore extracts beside the folder, checks the database and
  swaps the folders. Needs no Chroma package at all. The backup records the schema migrations of
  ``chroma.sqlite3`` (its ``migrations`` table), and the plan refuses to restore them into a Chroma
  that does not have them all (Chroma cannot open a database a newer version migrated): the
  installed chromadb's, learnt from a new database it makes in the spool, or without chromadb the
  live folder's.
- ``server`` (CHROMA_HOST/CHROMA_PORT): every collection paged out through the HTTP client into
  ``<name>_<collection>.jsonl.zst`` (ids, embeddings, documents, metadatas, uris, collection
  metadata, configuration and schema). Restore loads a new collection beside the live one, checks
  its count, then drops the live one and renames the new one into place. Needs the thin
  ``chromadb-client`` package.

``chroma.directory=PATH`` (path mode) restores the folder into a new or empty folder PATH instead
(side by side: the live folder is not touched), checked the same way.
"""

import argparse
import importlib.util
import os
import secrets
import shutil
import sqlite3
import sys
import tarfile
from contextlib import closing, contextmanager

from backups_app import probes
from backups_app.archive.compression import decompressing, method_of
from backups_app.archive.exports import artifact_stem, batches, read_export, write_export
from backups_app.archive.safetar import extracted, folder_counts, restore_folder
from backups_app.archive.spool import scratch_folder, spool_file
from backups_app.archive.sqlitefile import check_integrity, connect_readonly, online_copy
from backups_app.components._side import DirectoryTarget, FolderPromotion, not_empty, require_empty, side_folder
from backups_app.components.base import WHOLE_STORE, Component, scratch
from backups_app.errors import ComponentError, ConfigurationError, InvalidOption, Unchanged

SQLITE_NAME = "chroma.sqlite3"
EXPORT_FORMAT = "chroma-collection"
CLIENT_PACKAGE = "chromadb-client==1.5.9"
COUNTS_SQL = """
    SELECT d.name, c.name, (SELECT count(*) FROM embeddings e JOIN segments s ON s.id = e.segment_id
                            WHERE s.collection = c.id AND s.scope = 'METADATA')
    FROM collections c JOIN databases d ON d.id = c.database_id ORDER BY 1, 2
"""


def db_counts(path):
    """Items per collection read straight from a ``chroma.sqlite3`` (collections outside the
    default database are named ``<database>/<collection>``)."""
    with closing(connect_readonly(path)) as conn:
        return {(name if database == "default_database" else f"{database}/{name}"): items
                for database, name, items in conn.execute(COUNTS_SQL)}


def migrations(path):
    """{migration folder: highest version} that a ``chroma.sqlite3`` records in its ``migrations``
    table (``sysdb``, ``metadb``, ``embeddings_queue``); empty for a database without one."""
    with closing(connect_readonly(path)) as conn:
        try:
            rows = conn.execute("SELECT dir, max(version) FROM migrations GROUP BY dir ORDER BY dir").fetchall()
        except sqlite3.OperationalError:  # no such table
            return {}
    return dict(rows)


def installed_migrations():
    """The migrations the installed chromadb applies to a new database (its compiled core has some that
    its Python package does not list), or None without chromadb."""
    if importlib.util.find_spec("chromadb") is None:
        return None
    import chromadb
    from chromadb.api.client import SharedSystemClient
    from chromadb.config import Settings

    with scratch_folder("chroma-version-") as folder:
        try:
            chromadb.PersistentClient(path=folder, settings=Settings(anonymized_telemetry=False))
        finally:
            SharedSystemClient.clear_system_cache()
        return migrations(os.path.join(folder, SQLITE_NAME))


def check_folder(folder):
    path = os.path.join(folder, SQLITE_NAME)
    if not os.path.isfile(path):
        raise ComponentError(f"{folder} is not a Chroma folder: it has no {SQLITE_NAME}.")
    check_integrity(path)
    try:
        db_counts(path)
    except sqlite3.Error as exc:
        raise ComponentError(f"{path} is not a Chroma database this version understands: {exc}") from None


def load_export(client, stream, target=None, batch_size=1000):
    """Create collection ``target`` (default: the exported name) from a decompressed export and
    fill it; returns (exported name, items)."""
    from chromadb.api.types import Schema  # the optional client package: only server mode needs it

    header, records = read_export(stream, EXPORT_FORMAT)
    target = target or header["collection"]
    schema = Schema.deserialize_from_json(header["schema"]) if header.get("schema") else None
    collection = client.create_collection(
        target, metadata=header.get("metadata"), schema=schema,
        configuration=None if schema else header.get("configuration"), embedding_function=None)
    loaded = 0
    for batch in batches(records, batch_size):
        columns = {field: [item[field] for item in batch] for field in ("embedding", "document", "metadata", "uri")}
        given = {f"{field}s": values for field, values in columns.items() if any(v is not None for v in values)}
        collection.add(ids=[item["id"] for item in batch], **given)
        loaded += len(batch)
    if collection.count() != loaded:
        raise ComponentError(f"Chroma collection {target} has {collection.count()} items after loading {loaded}.")
    return header["collection"], loaded


def _space(collection):
    """A collection's distance: its configuration's HNSW or SPANN space, else metadata hnsw:space, else l2."""
    config = collection.configuration_json or {}
    for index in ("hnsw", "spann"):
        if (config.get(index) or {}).get("space"):
            return config[index]["space"]
    return (collection.metadata or {}).get("hnsw:space", "l2")


class ChromaSearcher:
    """The searches the probes need (backups_app/probes.py): Chroma's own search is approximate,
    so the exact one is brute force in Python over the collection paged through, a batch at a time.
    ``rename`` maps backed-up collection names to the ones searched (a rehearsal's scratch)."""

    def __init__(self, client, batch_size, rename=None):
        self.client = client
        self.batch_size = batch_size
        self.rename = rename or {}

    def _get(self, collection):
        return self.client.get_collection(self.rename.get(collection, collection), embedding_function=None)

    def collections(self):
        return sorted(c.name for c in self.client.list_collections())

    def vectors_of(self, collection):
        return [""]

    def _pages(self, collection, include):
        for offset in range(0, collection.count(), self.batch_size):
            yield collection.get(limit=self.batch_size, offset=offset, include=include)

    def choose(self, collection, k):
        return probes.choose((i for page in self._pages(self._get(collection), []) for i in page["ids"]), k)

    def vectors(self, collection, ids, name):
        page = self._get(collection).get(ids=list(ids), include=["embeddings"])
        return dict(zip(page["ids"], page["embeddings"]))

    def nearest(self, collection, name, queries, limit):
        collection = self._get(collection)
        search = probes.BruteForce(queries, _space(collection), limit)
        for page in self._pages(collection, ["embeddings"]):
            search.add(page["ids"], page["embeddings"])
        return search.results()


class ChromaComponent(DirectoryTarget, FolderPromotion, Component):
    options = {
        "path": (str, ""),
        "host": (str, ""),
        "port": (int, 8000),
        "batch_size": (int, 1000),
    }
    environment = {"path": "CHROMA_PATH", "host": "CHROMA_HOST", "port": "CHROMA_PORT"}
    configured_by = ("CHROMA_PATH", "CHROMA_HOST")
    backup_order = 80
    restore_options = {"directory": (str, "")}
    target_options = {"directory": "restore the folder into this new or empty folder (absolute path; CHROMA_PATH "
                                   "sources)"}

    def __init__(self, name, options):
        super().__init__(name, options)
        if bool(self.config["path"]) == bool(self.config["host"]):
            raise ConfigurationError(f"Chroma source {name!r} needs exactly one of CHROMA_PATH (a persistent folder) "
                                     "or CHROMA_HOST/CHROMA_PORT (a server).")
        if self.config["host"] and importlib.util.find_spec("chromadb") is None:
            raise ConfigurationError(f"Chroma source {name!r} points at a server (CHROMA_HOST), which needs the "
                                     f"ChromaDB client: pip install {CLIENT_PACKAGE}")

    def backup(self, writer, log):
        return self._backup_folder(writer, log) if self.config["path"] else self._backup_server(writer, log)

    @contextmanager
    def searcher(self, target=None):
        """A ChromaSearcher over the source, or over ``target``: {"path": folder} (a folder restored
        elsewhere) or {"collections": {backed-up name: name searched}} (server mode)."""
        target = target or {}
        if not (target.get("path") or self.config["path"]):
            with self._client() as client:
                yield ChromaSearcher(client, self.config["batch_size"], target.get("collections"))
            return
        if importlib.util.find_spec("chromadb") is None:
            raise ComponentError(f"{self.name}: the probes read a Chroma folder through chromadb, which is not "
                                 "installed here (pip install chromadb).")
        import chromadb
        from chromadb.api.client import SharedSystemClient
        from chromadb.config import Settings

        folder = target.get("path") or self.config["path"]
        try:
            client = chromadb.PersistentClient(path=folder, settings=Settings(anonymized_telemetry=False))
            yield ChromaSearcher(client, self.config["batch_size"], target.get("collections"))
        except ComponentError:
            raise
        except Exception as exc:  # chromadb raises many kinds
            raise ComponentError(f"{self.name}: the probes could not search the Chroma folder {folder}: "
                                 f"{exc}") from None
        finally:
            SharedSystemClient.clear_system_cache()

    def _probe_copy(self, root, copy, log):
        """The probes of a folder backup, searched in a copy of it (the database copy just taken
        and the segment folders), so opening it with chromadb can change nothing live."""
        if not probes.probe_count():
            return {}
        with scratch_folder("chroma-probes-") as folder:
            shutil.copyfile(copy, os.path.join(folder, SQLITE_NAME))
            for entry in sorted(os.listdir(root)):
                if not entry.startswith(SQLITE_NAME) and os.path.isdir(os.path.join(root, entry)):
                    shutil.copytree(os.path.join(root, entry), os.path.join(folder, entry))
            return probes.recording(self, self.searcher({"path": folder}), log)

    def estimate(self):
        """The folder's size (a server's is not known before its collections are read)."""
        return {"bytes_total": folder_counts(self.config["path"])[1]} if self.config["path"] else {}

    def inspect(self):
        if self.config["path"]:
            path = os.path.join(self.config["path"], SQLITE_NAME)
            return db_counts(path) if os.path.isfile(path) else {}
        with self._client() as client:
            return {c.name: c.count() for c in client.list_collections()}

    # Side by side

    def live_places(self):
        return [self.config["path"]] if self.config["path"] else []

    def check_restore_options(self, options):
        if options["directory"] and not self.config["path"]:
            raise InvalidOption(f"{self.name}.directory restores a Chroma folder (CHROMA_PATH); this source is a "
                                "server, whose collections are restored through its API.")
        side_folder(self, "directory", options["directory"])

    def describe_directory(self, folder):
        return f"the folder into {folder}; the live folder {self.config['path']} is not touched"

    def probe_target(self, options, facts):
        return {"path": side_folder(self, "directory", options["directory"])} if options["directory"] else None

    def promote(self, options, facts, tag, log):
        return self.promote_swaps([(self.config["path"], side_folder(self, "directory", options["directory"]))],
                                  tag, log)

    def _restore_into(self, reader, artifacts, options, log):
        target = side_folder(self, "directory", options["directory"])
        if not artifacts:
            raise Unchanged(f"{self.name}: this backup holds no Chroma folder; nothing was restored.")
        require_empty(self, target)
        restore_folder(reader, self.name, artifacts, target, log, check=check_folder)

    def preflight(self, reader, artifacts, options):
        problem = options["directory"] and not_empty(side_folder(self, "directory", options["directory"]))
        if problem:
            return {"problems": [problem]}
        recorded = reader.facts_of(self.name).get("migrations")
        if not (self.config["path"] and recorded):  # server mode, an older backup or an absent folder
            return {}
        here, whose = installed_migrations(), "the installed chromadb"
        live = os.path.join(self.config["path"], SQLITE_NAME)
        if here is None and os.path.isfile(live):
            here, whose = migrations(live), f"the live {live}"
        if here is None:
            return {"notes": ["Chroma's schema version is not checked: chromadb is not installed here and the folder "
                              "holds no database"]}
        newer = [f"{folder} {version} (here {here.get(folder, 'none')})" for folder, version in sorted(recorded.items())
                 if version > here.get(folder, 0)]
        problems = [f"the backup's {SQLITE_NAME} has schema migrations that {whose} does not know: {', '.join(newer)}. "
                    "Chroma cannot open a database a newer version migrated (downgrades are unsupported): restore "
                    "with a Chroma at least as new as the one that made the backup, or back up and restore with the "
                    "export method (CHROMA_HOST: collections go through the API into any version)"] if newer else []
        return {"problems": problems, "migrations": {"backup": recorded, "here": here}}

    def restore(self, reader, artifacts, options, log):
        if options["directory"]:
            self._restore_into(reader, artifacts, options, log)
        elif self.config["path"]:
            self._restore_folder(reader, artifacts, log)
        else:
            self._restore_server(reader, artifacts, log)

    def rehearse(self, reader, artifacts, log):
        if self.config["path"]:
            return self._rehearse_folder(reader, artifacts, log)
        return self._rehearse_server(reader, artifacts, log)

    # path mode

    def _backup_folder(self, writer, log):
        root = self.config["path"]
        if not os.path.exists(root):
            self.missing(writer, log, f"folder {root}", "CHROMA_PATH")
            return {"counts": {}, "absent": [WHOLE_STORE]}
        if not os.path.isfile(os.path.join(root, SQLITE_NAME)):
            raise ComponentError(f"{self.name}: {root} is not a Chroma folder: it has no {SQLITE_NAME} "
                                 "(check CHROMA_PATH).")
        with spool_file(".sqlite3") as copy:
            online_copy(os.path.join(root, SQLITE_NAME), copy)
            check_integrity(copy)
            with writer.open_compressed(f"{self.name}.tar") as (name, out), \
                    tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                tar.add(copy, arcname=SQLITE_NAME)
                for entry in sorted(os.listdir(root)):
                    if not entry.startswith(SQLITE_NAME):  # the live database and its -wal/-shm/-journal
                        tar.add(os.path.join(root, entry), arcname=entry)
            counts, schema = db_counts(copy), migrations(copy)
            found = self._probe_copy(root, copy, log)
        log(f"{self.name}: {sum(counts.values())} items in {len(counts)} collections from {root} into {name} "
            f"(schema migrations {', '.join(f'{folder} {version}' for folder, version in schema.items()) or 'none'})")
        return {**found, "counts": counts, "server_version": f"sqlite {sqlite3.sqlite_version}", "migrations": schema}

    def _restore_folder(self, reader, artifacts, log):
        restore_folder(reader, self.name, artifacts, os.path.abspath(self.config["path"]), log,
                       absent=bool(self.absent(reader)), check=check_folder)

    def _rehearse_folder(self, reader, artifacts, log):
        if not artifacts:  # the folder was absent (a safety backup)
            return {}
        (name,) = artifacts
        with reader.open_decompressed(name) as stream, \
                extracted(stream, f"rehearsal-{self.name}-") as scratch:
            check_folder(scratch)
            counts = db_counts(os.path.join(scratch, SQLITE_NAME))
            self.rehearsal_probes = probes.check_probes(self, reader.facts_of(self.name), {"path": scratch}, log)
        log(f"{self.name}: rehearsal of {name}: {sum(counts.values())} items in {len(counts)} collections")
        return counts

    # server mode

    @contextmanager
    def _client(self):
        import chromadb  # the optional client package: only server mode needs it
        from chromadb.config import Settings

        where = f"{self.config['host']}:{self.config['port']}"
        try:
            client = chromadb.HttpClient(host=self.config["host"], port=self.config["port"],
                                         settings=Settings(anonymized_telemetry=False))
        except Exception as exc:  # the client raises ValueError, httpx errors, ...
            raise ComponentError(f"{self.name}: cannot reach Chroma at {where}: {exc}") from None
        try:
            yield client
        except (ComponentError, OSError):
            raise
        except Exception as exc:
            raise ComponentError(f"{self.name}: Chroma at {where} failed: {type(exc).__name__}: {exc}") from None

    def _items(self, collection):
        size = self.config["batch_size"]
        for offset in range(0, collection.count(), size):
            page = collection.get(limit=size, offset=offset,
                                  include=["embeddings", "documents", "metadatas", "uris"])
            embeddings = page["embeddings"]
            for i, item_id in enumerate(page["ids"]):
                yield {"id": item_id,
                       "embedding": None if embeddings is None else [float(x) for x in embeddings[i]],
                       "document": page["documents"][i], "metadata": page["metadatas"][i], "uri": page["uris"][i]}

    def _backup_server(self, writer, log):
        counts, collections = {}, {}
        with self._client() as client:
            version = client.get_version()
            for listed in client.list_collections():
                collection = client.get_collection(listed.name, embedding_function=None)
                header = {"format": EXPORT_FORMAT, "version": 1, "collection": collection.name,
                          "metadata": collection.metadata, "configuration": collection.configuration_json,
                          "schema": collection.schema.serialize_to_json() if collection.schema else None}
                name, counts[collection.name] = write_export(writer, artifact_stem(self.name, collection.name), header,
                                                             self._items(collection))
                collections[name] = collection.name
                log(f"{self.name}: {collection.name}: {counts[collection.name]} items into {name}")
            found = probes.recording(self, ChromaSearcher(client, self.config["batch_size"]), log)
        return {**found, "counts": counts, "server_version": version, "collections": collections}

    def _load(self, client, reader, artifact, target):
        with reader.open_decompressed(artifact) as stream:
            return load_export(client, stream, target, self.config["batch_size"])

    def _restore_server(self, reader, artifacts, log):
        with self._client() as client:
            for artifact in artifacts:
                staging = f"restoring-{secrets.token_hex(6)}"
                try:
                    name, loaded = self._load(client, reader, artifact, staging)
                    if name in {c.name for c in client.list_collections()}:
                        client.delete_collection(name)
                    client.get_collection(staging, embedding_function=None).modify(name=name)
                except BaseException:
                    if staging in {c.name for c in client.list_collections()}:
                        client.delete_collection(staging)
                    raise
                log(f"{self.name}: restored {name} from {artifact}: {loaded} items")

    def _rehearse_server(self, reader, artifacts, log):
        counts, self.rehearsal_probes = {}, {}
        with self._client() as client:
            def exists(name):
                return name in {c.name for c in client.list_collections()}

            for artifact in artifacts:
                with scratch(f"rehearsal-{secrets.token_hex(6)}", exists, client.delete_collection) as target:
                    name, counts[name] = self._load(client, reader, artifact, target)
                    searcher = ChromaSearcher(client, self.config["batch_size"], {name: target})
                    self.rehearsal_probes.update(probes.check_probes(self, reader.facts_of(self.name), log=log,
                                                                     only=[name], searcher=searcher))
                log(f"{self.name}: rehearsal of {artifact}: {counts[name]} items")
        return counts


def main(argv=None):
    """Load a ``chroma_<collection>.jsonl.zst`` export into a Chroma server without the app."""
    import chromadb  # the optional client package: only server mode needs it
    from chromadb.config import Settings

    parser = argparse.ArgumentParser(prog="python -m backups_app.components.chroma",
                                     description="Import a Chroma export made by the backup app into a new "
                                                 "collection (delete an existing one of that name first).")
    parser.add_argument("export", help="chroma_<collection>.jsonl.zst from a backup set")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--collection", help="collection name (default: the one recorded in the export)")
    args = parser.parse_args(argv)
    try:
        client = chromadb.HttpClient(host=args.host, port=args.port, settings=Settings(anonymized_telemetry=False))
        with open(args.export, "rb") as raw, decompressing(raw, method_of(args.export)) as stream:
            name, loaded = load_export(client, stream, args.collection)
    except Exception as exc:  # a command for people: one readable line, not a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.collection or name}: {loaded} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
