"""The component interface: one class per data store, small and alike.

A component is built from one ``BACKUP_SOURCES`` entry: ``name`` is the source name users select
and ``OPTIONS`` are checked against ``options`` (unknown keys are rejected, like
django-storages does). Restore-time options (``--set NAME.KEY=VALUE``) are checked against
``restore_options``.
"""

from backups_app.errors import ConfigurationError


def parse_bool(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def comma_list(value):
    """A list from a list or a comma-separated string (as environment variables give it)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def choice(*allowed):
    """A converter accepting one of ``allowed`` (restore modes and the like)."""

    def convert(value):
        if value not in allowed:
            raise ValueError(f"expected {' or '.join(allowed)}, got {value!r}")
        return value

    return convert


class Component:
    #: Source options: {key: (converter, default)}; a default of ``REQUIRED`` makes a key mandatory.
    options = {}
    #: Restore options: {key: (converter, default)}.
    restore_options = {}
    #: Keys of OPTIONS that are secrets: never logged, never shown.
    secret_options = ()

    REQUIRED = object()

    def __init__(self, name, options):
        self.name = name
        self.config = self._parse(options, self.options, f"BACKUP_SOURCES[{name!r}]['OPTIONS']")

    def _parse(self, given, spec, where):
        unknown = sorted(set(given) - set(spec))
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown option(s) {', '.join(unknown)}; {type(self).__name__} accepts "
                f"{', '.join(sorted(spec)) or 'none'}."
            )
        parsed = {}
        for key, (convert, default) in spec.items():
            if key not in given:
                if default is self.REQUIRED:
                    raise ConfigurationError(f"{where}: option {key!r} is required.")
                parsed[key] = default
                continue
            try:
                parsed[key] = convert(given[key])
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"{where}: option {key!r}: {exc}") from None
        return parsed

    def parse_restore_options(self, given):
        return self._parse(given or {}, self.restore_options, f"restore options for {self.name!r}")

    # The interface. ``log(text)`` appends a line to the run's log.

    def backup(self, writer, log):
        """Stream the store into artifacts via ``writer``; return manifest facts
        (``counts`` and versions)."""
        raise NotImplementedError

    def inspect(self):
        """Live counts in the same shape as ``backup()``'s ``counts``."""
        raise NotImplementedError

    def restore(self, reader, artifacts, options, log):
        """Apply ``artifacts`` (names in this set) from ``reader``; ``options`` are parsed restore
        options. Atomic where the store allows; the service covers the rest with a safety backup."""
        raise NotImplementedError

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
