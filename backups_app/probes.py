"""Retrieval-level proof (issue 13 §3): the restored vectors still find the same neighbours.

At backup time each vector collection (Qdrant, Chroma, PostgreSQL columns in
POSTGRES_VECTOR_COLUMNS) records ``BACKUP_PROBES`` probes under ``components.<name>.probes``:
stored points chosen reproducibly (the ids with the smallest SHA-256 of their text), each one's
own vector as the query, and the exact top-10 neighbour ids with their scores::

    {"docs": {"probes": [{"id": 7, "vector": "text", "query": "<base64 float32>",
                          "neighbours": [[7, 1.0], [12, 0.93], ...]}, ...]}}

After a rehearsal, a restore or a side-by-side restore the same queries run exactly against what
was restored (``check_probes``), and recall@10 is the share of the recorded ids found again (a
neighbour swapped for another at the same distance counts as found). A probe below
``BACKUP_PROBE_MIN_RECALL`` fails the check, named by collection and probe.

A store takes part by giving a *searcher* (``component.searcher(target)``, a context manager) with:

- ``collections()``: the collections to probe; ``vectors_of(collection)``: its dense vector
  names ("" for an unnamed one);
- ``choose(collection, k)``: the probe ids (``choose()`` below, or the same rule in SQL);
- ``vectors(collection, ids, name)``: {id: vector};
- ``nearest(collection, name, queries, limit)``: per query [(id, score)], best first, by exact
  search (no index).

``BACKUP_PROBE_COMMAND`` (``run_probe_command``) is an application's own probe: an argument list
run after a restore with the restored targets in its environment.
"""

import base64
import hashlib
import heapq
import json
import os
import shlex
import subprocess
from contextlib import nullcontext

from django.conf import settings

from backups_app.errors import BackupError, ConfigurationError
from backups_app.redaction import mask

LIMIT = 10
#: Scores this close (relative) are a tie: either neighbour is right.
TIE = 1e-6
#: Seconds BACKUP_PROBE_COMMAND may run, and the output kept of it.
COMMAND_TIMEOUT = 600
OUTPUT_KEPT = 4000
#: Items a brute-force search holds at once.
BATCH = 1000


# --- Settings, read at use ---------------------------------------------------------------------

def probe_count():
    """BACKUP_PROBES: probes per collection (0 = none)."""
    value = getattr(settings, "BACKUP_PROBES", 5)
    try:
        count = int(value)
        if count < 0 or count > 1000 or str(value).strip() != str(count):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigurationError(f"BACKUP_PROBES={value!r}: give a whole number from 0 (no probes) to 1000.") from None
    return count


def min_recall():
    """BACKUP_PROBE_MIN_RECALL: the lowest recall@10 a probe may have (0..1)."""
    value = getattr(settings, "BACKUP_PROBE_MIN_RECALL", 1.0)
    try:
        recall = float(value)
        if not 0 <= recall <= 1:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigurationError(f"BACKUP_PROBE_MIN_RECALL={value!r}: give a number from 0 to 1 (1.0: every "
                                 "recorded neighbour must be found again).") from None
    return recall


def probe_command():
    """BACKUP_PROBE_COMMAND as an argument list ([] when unset): a JSON list of strings, or a
    string split like a shell would (it never runs through one)."""
    value = getattr(settings, "BACKUP_PROBE_COMMAND", "") or []
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("[") else shlex.split(text)
        except ValueError as exc:
            raise ConfigurationError(f"BACKUP_PROBE_COMMAND cannot be read ({exc}): give a JSON list of strings, "
                                     'e.g. ["python", "rag_probe.py"], or a plain command line.') from None
    if not isinstance(value, list) or not all(isinstance(arg, str) and arg for arg in value):
        raise ConfigurationError("BACKUP_PROBE_COMMAND must be a list of non-empty strings, e.g. "
                                 '["python", "rag_probe.py"].')
    return value


# --- Vectors in the manifest --------------------------------------------------------------------

def encode(vector):
    import numpy as np  # here, not at the top: the management commands that never probe skip its 0.15 s

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()


def decode(text):
    import numpy as np

    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(float).tolist()


def _key(item_id):
    return hashlib.sha256(str(item_id).encode()).hexdigest()


def choose(ids, k):
    """The ``k`` ids of the stream ``ids`` with the smallest SHA-256 of their text: the same ones
    each time, in any order of listing, holding only ``k`` at once."""
    return sorted(heapq.nsmallest(k, ids, key=_key), key=_key)


def _plain(item_id):
    """An id as JSON keeps it: numbers as they are, anything else (UUIDs) as text."""
    return item_id if isinstance(item_id, int) and not isinstance(item_id, bool) else str(item_id)


class BruteForce:
    """The exact ``limit`` nearest items to each of ``queries``, fed the collection in batches
    (``add(ids, vectors)``): holds the queries, one batch and ``limit`` results per query.
    ``metric``: ``l2`` (squared Euclidean, Chroma's), ``cosine`` (1 - cosine similarity) or
    ``ip`` (1 - dot product); smaller is nearer, ties go to the smaller id text."""

    def __init__(self, queries, metric, limit=LIMIT):
        if metric not in ("l2", "cosine", "ip"):
            raise BackupError(f"unknown distance {metric!r} (l2, cosine or ip)")
        import numpy as np

        self.queries = np.asarray(queries, dtype=float).reshape(len(queries), -1)
        self.metric, self.limit = metric, limit
        self.best = [[] for _ in queries]  # (distance, id text, id) best first

    def add(self, ids, vectors):
        if not ids:
            return
        import numpy as np

        block = np.asarray(vectors, dtype=float)
        if self.metric == "l2":
            distances = ((self.queries[:, None, :] - block[None, :, :]) ** 2).sum(axis=2)
        elif self.metric == "ip":
            distances = 1 - self.queries @ block.T
        else:
            norms = np.linalg.norm(self.queries, axis=1)[:, None] * np.linalg.norm(block, axis=1)[None, :]
            distances = 1 - (self.queries @ block.T) / np.where(norms == 0, 1, norms)
        for row, best in zip(distances, self.best):
            merged = best + [(float(d), str(i), i) for d, i in zip(row, ids)]
            best[:] = heapq.nsmallest(self.limit, merged, key=lambda entry: entry[:2])

    def results(self):
        return [[(i, d) for d, _, i in best] for best in self.best]


# --- Recording and checking -----------------------------------------------------------------------

def record(searcher, log, name):
    """The ``probes`` facts of every collection ``searcher`` offers, or {} with BACKUP_PROBES=0."""
    k = probe_count()
    found = {}
    if not k:
        return found
    for collection in searcher.collections():
        chosen = searcher.choose(collection, k)
        probes = []
        for vector in searcher.vectors_of(collection):
            stored = searcher.vectors(collection, chosen, vector)
            picked = [(i, encode(stored[i])) for i in chosen if stored.get(i) is not None]
            answers = searcher.nearest(collection, vector, [decode(q) for _, q in picked], LIMIT)
            probes += [{"id": _plain(i), "vector": vector, "query": query,
                        "neighbours": [[_plain(n), float(score)] for n, score in answer]}
                       for (i, query), answer in zip(picked, answers)]
        found[collection] = {"probes": probes}
        log(f"{name}: {collection}: {len(probes)} probe(s) recorded (exact top-{LIMIT} of stored points' own vectors)")
    return found


def _tie(a, b):
    return abs(a - b) <= TIE * max(1.0, abs(a), abs(b))


def recall(neighbours, answer):
    """recall@10 of ``answer`` [(id, score)] against the recorded ``neighbours`` [[id, score]]:
    a recorded id missing from the answer still counts when the answer holds another id at the
    recorded last score (a tie at the cut)."""
    if not neighbours:
        return 1.0
    want = {str(i) for i, _ in neighbours}
    got = [(str(i), s) for i, s in answer]
    hits = sum(1 for i, _ in got if i in want)
    cut = neighbours[-1][1]
    missing_at_cut = sum(1 for i, s in neighbours if _tie(s, cut) and i not in {g for g, _ in got})
    extra_at_cut = sum(1 for i, s in got if i not in want and _tie(s, cut))
    return (hits + min(missing_at_cut, extra_at_cut)) / len(neighbours)


def _describe(number, probe):
    vector = f", vector {probe['vector']}" if probe["vector"] else ""
    return f"probe {number} (point {probe['id']}{vector})"


def check(searcher, recorded, threshold):
    """{collection: {"recall", "probes", "ok", "failed": [...], "error"}} for the ``recorded``
    probes run against ``searcher``; recall is the mean over the collection's probes."""
    results = {}
    for collection, entry in sorted(recorded.items()):
        probes = entry.get("probes") or []
        result = {"probes": len(probes), "recall": None, "ok": True, "failed": []}
        try:
            recalls = [None] * len(probes)
            for vector in dict.fromkeys(p["vector"] for p in probes):
                numbers = [n for n, p in enumerate(probes) if p["vector"] == vector]
                answers = searcher.nearest(collection, vector, [decode(probes[n]["query"]) for n in numbers], LIMIT)
                for n, answer in zip(numbers, answers):
                    recalls[n] = recall(probes[n]["neighbours"], answer)
        except BackupError as exc:
            result.update(ok=False, error=f"collection {collection}: the probes could not run: {exc}")
            results[collection] = result
            continue
        if recalls:
            result["recall"] = round(sum(recalls) / len(recalls), 4)
        for n, value in enumerate(recalls):
            if value < threshold:
                result["ok"] = False
                result["failed"].append(f"collection {collection}: {_describe(n + 1, probes[n])} recall@{LIMIT} "
                                        f"{value:.2f}, below BACKUP_PROBE_MIN_RECALL {threshold:g}")
        results[collection] = result
    return results


def problems(results):
    """The failure texts of ``check()`` results (each names the collection and the probe)."""
    return [text for r in results.values() for text in ([r["error"]] if r.get("error") else r["failed"])]


def check_probes(component, facts, target=None, log=None, only=None, searcher=None):
    """Run the probes ``facts`` (the component's facts in the backup's manifest) recorded against
    ``component``'s live store, or against ``target`` (what a rehearsal or a side-by-side restore
    wrote, in the store's own terms: {"dbname": ...}, {"path": ...} or {"collections": {backed-up
    name: restored name}}), or through an open ``searcher``; ``only``: these collections. Returns
    ``check()``'s results, {} when the backup recorded no probes or the store takes none."""
    recorded = (facts or {}).get("probes") or {}
    if only is None and target and "collections" in target:  # a restore of some collections only
        only = list(target["collections"])
    if only is not None:
        recorded = {c: recorded[c] for c in only if c in recorded}
    if not recorded or (searcher is None and not hasattr(component, "searcher")):
        return {}
    with nullcontext(searcher) if searcher is not None else component.searcher(target) as opened:
        results = check(opened, recorded, min_recall())
    if log:
        for collection, result in results.items():
            shown = "n/a" if result["recall"] is None else f"{result['recall']:.2f}"
            log(f"{component.name}: {collection}: probe recall@{LIMIT} {shown} over {result['probes']} probe(s)"
                + ("" if result["ok"] else " — " + "; ".join(problems({collection: result}))))
    return results


def recording(component, searcher_context, log):
    """The ``probes`` facts for a backup, from ``searcher_context`` (a searcher context manager, or
    a searcher): a store that cannot answer the probes gives {"error": ...} and a logged warning,
    never a failed backup."""
    if not probe_count():
        return {}
    try:
        context = searcher_context if hasattr(searcher_context, "__enter__") else nullcontext(searcher_context)
        with context as searcher:
            return {"probes": record(searcher, log, component.name)}
    except Exception as exc:  # a store client's own errors too: the backup itself is sound
        text = mask(str(exc) or "the store gave no reason")
        log(f"warning: {component.name}: probes not recorded: {text}")
        return {"probes_error": text}


# --- BACKUP_PROBE_COMMAND -----------------------------------------------------------------------------

def target_environment(targets):
    """Environment variables naming what a restore wrote: each restored source's own variables
    (POSTGRES_DB, QDRANT_PATH, CHROMA_PATH, ...) with the target's values, and BACKUP_TARGETS, a
    JSON {source: {option: value}} of them all (without secrets)."""
    env, shown = {}, {}
    for component, target in targets:
        target = dict(target or {})
        if "collections" in target:  # {backed-up name: restored name}: the restored ones
            target["collections"] = list(target["collections"].values())
        config = {**component.config, **target}
        for key, variable in component.environment.items():
            value = config.get(key)
            if value not in (None, "", []):
                env[variable] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        shown[component.name] = {k: v for k, v in config.items() if k not in component.secret_options}
    env["BACKUP_TARGETS"] = json.dumps(shown, default=str)
    return env


def run_probe_command(targets, extra_env, log):
    """Run BACKUP_PROBE_COMMAND (if set) with the restored ``targets`` [(component, target or
    None)] in its environment; {"command", "exit_status", "output", "ok"} or None when unset."""
    argv = probe_command()
    if not argv:
        return None
    env = {**os.environ, **target_environment(targets), **extra_env}
    log(f"running BACKUP_PROBE_COMMAND {mask(shlex.join(argv))}")
    try:
        done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT, check=False)
        status, output = done.returncode, done.stdout
    except subprocess.TimeoutExpired as exc:
        status, output = None, (exc.output or b"") + f"\n(stopped after {COMMAND_TIMEOUT} s)".encode()
    except OSError as exc:
        status, output = None, f"cannot run {argv[0]}: {exc.strerror or exc}".encode()
    text = mask(output.decode(errors="replace")[-OUTPUT_KEPT:])
    result = {"command": mask(shlex.join(argv)), "exit_status": status, "output": text, "ok": status == 0}
    log(f"BACKUP_PROBE_COMMAND exited with {status if status is not None else 'no status'}"
        + (f": {text.strip()[-300:]}" if text.strip() else ""))
    return result
