"""The stores and the registry of configured sources.

Every module in this package but ``base`` and the private helpers (``_name``) is one store, named
after its default source, holding one Component subclass (``store_modules()``, ``engine_class()``).
The registry of configured sources (``settings.BACKUP_SOURCES``) is built on first use and rebuilt
after ``reset()`` or a settings change (tests use ``override_settings``)."""

import importlib
import pkgutil

from django.conf import settings
from django.utils.module_loading import import_string

from backups_app.components.base import Component
from backups_app.errors import ConfigurationError, UnknownComponent

_components = None


def store_modules():
    """The store modules' names (``postgres``, ``qdrant``, ...), found without importing them."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_"))


def engine_class(module_name):
    """The Component subclass defined in store module ``module_name`` (imports it)."""
    module = importlib.import_module(f"{__name__}.{module_name}")
    (cls,) = [c for c in vars(module).values()
              if isinstance(c, type) and issubclass(c, Component) and c.__module__ == module.__name__]
    return cls


def engine_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def engines():
    """{store module name: Component subclass} for every store (imports them all)."""
    return {name: engine_class(name) for name in store_modules()}


def reset():
    global _components
    _components = None


def _build():
    built = {}
    for name, entry in settings.BACKUP_SOURCES.items():
        engine = entry.get("ENGINE")
        try:
            cls = import_string(engine)
        except ImportError as exc:
            raise ConfigurationError(f"BACKUP_SOURCES[{name!r}]: cannot import ENGINE {engine!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Component)):
            raise ConfigurationError(f"BACKUP_SOURCES[{name!r}]: {engine} is not a Component subclass.")
        built[name] = cls(name, entry.get("OPTIONS", {}))
    return built


def all_components():
    global _components
    if _components is None:
        _components = _build()
    return _components


def source_names():
    return list(all_components())


def get_component(name):
    components = all_components()
    if name not in components:
        raise UnknownComponent(
            f"Unknown component {name!r}. Configured components: {', '.join(components) or 'none'}."
        )
    return components[name]


def resolve_names(names):
    """Validate a user's selection; ``None`` means every configured source. An explicit empty
    selection is an error: a client whose filter came out empty must not get everything."""
    if names is None:
        return source_names()
    if not names:
        raise UnknownComponent(f"No component selected. Configured components: {', '.join(all_components())}.")
    unknown = [n for n in names if n not in all_components()]
    if unknown:
        raise UnknownComponent(
            f"Unknown component(s) {', '.join(map(repr, unknown))}. "
            f"Configured components: {', '.join(all_components()) or 'none'}."
        )
    return list(dict.fromkeys(names))
