"""The component contract: one class per data store, small and alike. ``docs/adding-a-store.md``
walks through adding one.

A component is built from one ``BACKUP_SOURCES`` entry: ``name`` is the source name users select
and ``OPTIONS`` are checked against ``options`` (unknown keys are rejected, like django-storages
does). Restore-time options (``--set NAME.KEY=VALUE``) are checked against ``restore_options``.

A store's module is named after its default source (``postgres.py`` → source ``postgres``) and
its environment variables after the module (``POSTGRES_*``): ``environment`` maps them to
OPTIONS, and the source exists when one of ``configured_by`` is set. The source builder
(``backupsite/sources.py``) imports a store's module only when one of its variables is set, so
the client libraries of stores nobody uses are never loaded.

The facts ``backup()`` returns go into ``metadata.json`` under ``components.<name>``:

- ``counts`` (always): what the store holds, in the shape ``inspect()`` and ``rehearse()`` return
  (rows per table, points per collection, keys per database, files and bytes, ...). Verification
  and the restore plan compare these, key by key. A store may add a count that is not a table's under
  a key no table can have (PostgreSQL: ``pg_catalog.pg_largeobject_metadata``, its large objects).
- ``server_version`` / ``tool_version`` (when known): the store's and the dump tool's versions.
- ``absent`` (safety backups only): what the source is configured to hold but did not exist when
  the backup ran, as a list of the store's own names (SQLite artifacts, collections, bucket
  labels, config paths), or ``[WHOLE_STORE]`` when the whole folder or store was missing.
  Restoring that backup removes them again, so a rollback leaves no store the restore created.
  Write it with ``missing()``, read it with ``absent()``.
- ``probes`` (vector stores): recorded neighbours that prove retrieval after a rehearsal or a
  restore (``backups_app/probes.py``; such a store has ``searcher(target)``, and ``rehearse()``
  leaves what the probes found in ``rehearsal_probes``).
- anything the store's restore needs (``method``, ``collections``, ``paths``, ...).
The service adds ``engine`` and ``artifacts``.
"""

from contextlib import contextmanager

from backups_app.errors import ComponentError, ConfigurationError, InvalidOption, Unchanged

#: In ``absent``: the whole store (folder, local database) did not exist.
WHOLE_STORE = "*"


@contextmanager
def scratch(name, exists, drop):
    """A rehearsal's scratch target (collection, database) called ``name``: whatever happens
    inside, it is dropped on the way out if it was made."""
    try:
        yield name
    finally:
        if exists(name):
            drop(name)


class Component:
    #: Source options: {key: (converter, default)}; a default of ``REQUIRED`` makes a key mandatory.
    options = {}
    #: Restore options: {key: (converter, default)}.
    restore_options = {}
    #: The restore options that send a restore somewhere other than the live store or pick a part of
    #: the backup (issue 13): {key: what the admin's "Restore into …" field says}. Each is also a key
    #: of ``restore_options``; ``docs/side-by-side.md`` lists them.
    target_options = {}
    #: Keys of OPTIONS that are secrets: never logged, never shown.
    secret_options = ()
    #: {option key: environment variable} for the source built from the environment.
    environment = {}
    #: Environment variables any of which configures the source.
    configured_by = ()
    #: Where the source goes among those built from the environment, so the order backups take
    #: and lists show: databases first, then files, then vector stores.
    backup_order = 100
    #: Upload folders: left out of a backup whose API request says ``include_uploads: false``.
    holds_uploads = False
    #: Vector stores: the probes' results of the last ``rehearse()`` (``probes.check_probes``).
    rehearsal_probes = None

    REQUIRED = object()

    def __init__(self, name, options):
        self.name = name
        self.config = self._parse(options, self.options, f"BACKUP_SOURCES[{name!r}]['OPTIONS']",
                                  ConfigurationError)

    @classmethod
    def options_from_environment(cls, env):
        """OPTIONS for the source built from environment variables ``env``, or None when they
        configure none. Empty variables count as unset (the option's default applies)."""
        if not any(env.get(variable) for variable in cls.configured_by):
            return None
        return {key: env[variable] for key, variable in cls.environment.items() if env.get(variable)}

    def _parse(self, given, spec, where, error):
        unknown = sorted(set(given) - set(spec))
        if unknown:
            raise error(f"{where}: unknown option(s) {', '.join(unknown)}; {type(self).__name__} accepts "
                        f"{', '.join(sorted(spec)) or 'none'}.")
        parsed = {}
        for key, (convert, default) in spec.items():
            variable = f" ({self.environment[key]})" if error is ConfigurationError and key in self.environment else ""
            if key not in given:
                if default is self.REQUIRED:
                    raise error(f"{where}: option {key!r}{variable} is required.")
                parsed[key] = default
                continue
            try:
                parsed[key] = convert(given[key])
            except (TypeError, ValueError) as exc:
                reason = f"expected a whole number, got {given[key]!r}" if convert is int else str(exc)
                raise error(f"{where}: option {key!r}{variable}: {reason}.") from None
        return parsed

    def parse_restore_options(self, given):
        parsed = self._parse(given or {}, self.restore_options, f"restore options for {self.name!r}", InvalidOption)
        self.check_restore_options(parsed)
        return parsed

    def check_restore_options(self, options):
        """Raise InvalidOption for parsed options that make no sense together, or for a target
        that is the live store in disguise (the checks that need no backup; the rest are problems
        in ``preflight``)."""

    def targets_live(self, options):
        """Whether a restore with these parsed options writes into the live store. One that does
        not (a side-by-side restore into another database, folder, collection name, db index or
        key prefix) needs no safety backup and is never rolled back: the live store is not touched."""
        return True

    def describe_target(self, options):
        """Where a restore with these parsed options writes, and what part of the backup, for the
        plan and the run log: "database docs_scratch", or None for all of it into the live store."""
        return None

    def probe_target(self, options, facts):
        """Where the probes (backups_app/probes.py) search after a restore with these parsed
        options of a backup whose manifest facts for this source are ``facts``: the
        ``searcher(target)`` argument for a side-by-side or partial restore, or None for the whole
        live store. Its values also stand in for the source's own options in BACKUP_PROBE_COMMAND's
        environment (UPLOADS_DIR: the folder restored into), so a store without probes that
        restores side by side returns the options that name its target."""
        return None

    # Promotion (services/promote.py): a completed side-by-side restore swapped in for the live store.

    def promote(self, options, facts, tag, log):
        """Swap in what a side-by-side restore with these parsed options wrote (``facts``: the
        backup's for this source; ``tag``: the restore id, for the names the replaced data gets)
        and return the record ``undo_promotion`` and ``drop_replaced`` need. Raise Unchanged, naming
        the reason, when it cannot (nothing swapped)."""
        raise Unchanged(f"{self.name}: a side-by-side restore of this store cannot be promoted; copy what you "
                        "need from it by hand (docs/side-by-side.md).")

    def undo_promotion(self, record, log):
        """Swap back what ``promote`` swapped in (Unchanged when it cannot)."""
        raise Unchanged(f"{self.name}: nothing to undo.")

    def drop_replaced(self, record, log):
        """Remove the live data ``promote`` replaced (after it, ``undo_promotion`` cannot run)."""

    def live_places(self):
        """The folders and files this source holds live: a side-by-side folder target may not be
        one of them or lie inside one (``components/_side.py``)."""
        return []

    # The interface. ``log(text)`` appends a line to the run's log.

    def backup(self, writer, log):
        """Stream the store into artifacts via ``writer``; return the facts (see above)."""
        raise NotImplementedError

    def inspect(self):
        """Live counts in the same shape as ``backup()``'s ``counts``."""
        raise NotImplementedError

    def estimate(self):
        """What ``backup()`` will stream, known cheaply before it starts, for the progress bar
        (services/progress.py): ``{"bytes_total": n}`` (the bytes the component writes before
        compression, about), or ``{"items_total": n, "items_unit": "keys"}`` for a store counted in
        things (the component then calls ``writer.meter.add_items``); {} when unknown."""
        return {}

    def restore(self, reader, artifacts, options, log):
        """Apply ``artifacts`` (names in this set) from ``reader``; ``options`` are parsed restore
        options. Atomic where the store allows; the service covers the rest with a safety backup.
        Raise ``errors.Unchanged`` when it fails before writing anything, so nothing is rolled back."""
        raise NotImplementedError

    def preflight(self, reader, artifacts, options):
        """Check, before anything changes, that restoring ``artifacts`` with these parsed options can
        succeed here, and say what it will do beyond the counts. Reads only (the live store and, if
        need be, the head of an artifact). Returns ``{"problems": [...], "notes": [...]}`` plus any
        details the plan shows (the live and the backed-up configuration, ...). A problem refuses the
        restore in the plan and names the way out (a dump newer than the tools here, a server older
        than the data, a missing privilege); a note tells what will happen (objects the restore
        removes, a collection dropped and recreated)."""
        return {}

    def rehearse(self, reader, artifacts, log):
        """Restore ``artifacts`` into a scratch target (temporary database, collection, db index or
        folder), return counts in ``backup()``'s shape, and drop the scratch target. Never touches
        live data. Used by deep verification (restore rehearsal)."""
        raise NotImplementedError

    def changes_data(self, options):
        """Whether a restore with these parsed options writes anything. A restore whose selected
        components all answer False (a preview) needs no safety backup and has nothing to roll back."""
        return True

    def rollback_options(self):
        """Restore options that put a safety backup back exactly (the defaults, unless a
        component's default restore only previews)."""
        return self.parse_restore_options({})

    def required_programs(self):
        """[(program path or name, install hint)] checked at startup."""
        return []

    def describe(self):
        """Where this source points, without secrets (for plans and logs)."""
        return {k: v for k, v in self.config.items() if k not in self.secret_options}

    # The ``absent`` convention, for safety backups of stores that do not exist (yet).

    def missing(self, writer, log, what, hint):
        """Call when ``what`` (a folder, file, collection, bucket) does not exist. In a safety
        backup it is logged and the caller records it in ``absent``; any other backup fails here
        with an error that names ``hint`` (the setting to check)."""
        if not writer.allow_missing:
            raise ComponentError(f"{self.name}: {what} does not exist (check {hint}).")
        log(f"{self.name}: {what} does not exist; recorded as absent")

    def absent(self, reader):
        """The ``absent`` list this component recorded in the set ``reader`` reads (older sets
        wrote ``true`` for a whole folder)."""
        value = reader.facts_of(self.name).get("absent") or []
        return [WHOLE_STORE] if value is True else list(value)
