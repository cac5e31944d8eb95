"""Build ``BACKUP_SOURCES`` from environment variables.

Each store declares its own variables (``environment`` and ``configured_by`` on its component,
named after its module: POSTGRES_* for ``components/postgres.py``); this loops over the stores and
imports a store's module only when a variable with its prefix is set. With no source configured
at all, the demo stack under ``demo_dir`` (a SQLite database and an uploads folder, made by
``manage.py demo_stack``) is backed up so that a fresh checkout has something real to back up and
restore. Nothing here raises: a bad value reaches the component, whose error names the variable.
"""

from backups_app import components


def _entry(cls, options):
    return {"ENGINE": components.engine_path(cls), "OPTIONS": options}


def build_backup_sources(env, demo_dir):
    found = []
    for name in components.store_modules():
        if not any(value and key.startswith(f"{name.upper()}_") for key, value in env.items()):
            continue  # nothing of this store is configured: do not even import it
        cls = components.engine_class(name)
        options = cls.options_from_environment(env)
        if options is not None:
            found.append((cls.backup_order, name, _entry(cls, options)))
    sources = {name: entry for _order, name, entry in sorted(found)}
    if not sources:
        sources = {
            "uploads": _entry(components.engine_class("uploads"), {"path": str(demo_dir / "uploads")}),
            "sqlite": _entry(components.engine_class("sqlite"), {"paths": [str(demo_dir / "app.sqlite3")]}),
        }
    return sources
