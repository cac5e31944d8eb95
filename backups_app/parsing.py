"""Parsing the text that settings, environment variables, CLI options and form fields give us.
Shared by settings.py (so it imports nothing from Django) and by the components' option specs."""


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
    """A list from a list or a comma-separated string (as environment variables give it);
    blanks dropped. ``None`` gives an empty list."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [str(item).strip() for item in items if str(item).strip()]


def choice(*allowed):
    """A converter accepting one of ``allowed`` (restore modes and the like)."""

    def convert(value):
        if value not in allowed:
            raise ValueError(f"expected {' or '.join(allowed)}, got {value!r}")
        return value

    return convert
