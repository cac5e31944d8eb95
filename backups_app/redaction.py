"""Keeping secrets out of what people see. Two ways, for two kinds of text:

- ``mask(text)``: the configured secret values (source passwords and keys, storage keys, mail
  and webhook settings) replaced by ``***`` wherever error text or a log line is stored or shown.
  A safety net behind messages that never include them; it never raises, a misconfigured
  source included (then the values it was given are masked by their names).
- ``redact(line)``: secret-looking values in text we did not write (config files shown as a diff):
  URL user info, Slack webhook paths, values of secret-named keys in env/YAML/JSON/XML, and
  ``hide_private_keys(text)`` for PEM private key bodies.
"""

import hashlib
import re
from urllib.parse import unquote, urlsplit

from django.conf import settings

from backups_app import components

# Settings that hold secrets outside the sources: storage keys, mail, webhook.
SECRET_SETTINGS = ("BACKUP_S3_SECRET_ACCESS_KEY", "BACKUP_OFFSITE_S3_SECRET_ACCESS_KEY", "EMAIL_HOST_PASSWORD",
                   "BACKUP_NOTIFY_WEBHOOK")
# Option names taken for secrets when a source cannot be built.
SECRET_WORDS = ("password", "secret", "key", "token")


def _guessed_secrets(options):
    """Secret-named values and URL passwords of a source's OPTIONS as given."""
    found = []
    for key, value in options.items():
        if value and any(word in key.lower() for word in SECRET_WORDS):
            found.append(str(value))
        elif isinstance(value, str) and "://" in value:
            try:
                password = urlsplit(value).password
            except ValueError:
                password = None
            found += [password, unquote(password)] if password else []
    return found


def _source_secrets():
    try:
        built = components.all_components()
    except Exception:  # a misconfigured source (the system check says which): mask what it was given
        return [secret for entry in settings.BACKUP_SOURCES.values()
                for secret in _guessed_secrets(entry.get("OPTIONS") or {})]
    return [str(c.config[k]) for c in built.values() for k in c.secret_options if c.config.get(k)]


def known_secrets():
    secrets = _source_secrets()
    secrets += [str(getattr(settings, name)) for name in SECRET_SETTINGS if getattr(settings, name, "")]
    secrets += [key for key in getattr(settings, "BACKUP_SIGNING_KEY", []) if key]
    for storage in settings.STORAGES.values():
        secrets += [str(v) for k, v in storage.get("OPTIONS", {}).items() if "secret" in k and v]
    app_db_password = settings.DATABASES["default"].get("PASSWORD")
    return secrets + ([app_db_password] if app_db_password else [])


def mask(text):
    """Replace configured secret values (also as Python shows them escaped in reprs)."""
    text = str(text)
    for secret in known_secrets():
        for form in {secret, repr(secret)[1:-1]}:
            if len(form) >= 4:
                text = text.replace(form, "***")
    return text


# A name holding a secret word. It is matched from the start of a name only and without
# backtracking (the lookahead finds the word, ++ takes the rest), else long lines cost quadratic time.
SECRET_NAME = r"(?<![\w.-])(?=[\w.-]*?(?:secret|pass|pwd|token|key|private|credential|auth|webhook))[\w.-]++"
REDACTIONS = [  # (pattern, replacement) applied to each line
    # URL user info, up to the last @ (a raw @ in a password happens)
    (re.compile(r"(?i)(?<![a-z0-9])([a-z][a-z0-9+.-]{0,31}://)[^\s\"'<>]{1,256}@"), r"\1<redacted>@"),
    (re.compile(r"(?i)(hooks\.slack\.com/services/)[\w/-]+"), r"\1<redacted>"),
    # XML: <password>…</password>, <db:password type="…">…</db:password>
    (re.compile(rf"(?i)(<(?:[\w.-]++:)?{SECRET_NAME}(?:\s[^<>]{{0,256}})?>)[^<]*"), r"\1<redacted>"),
    # KEY=value, KEY: value, "key": "value" (env, YAML, JSON)
    (re.compile(rf"(?i)([\"']?{SECRET_NAME}[\"']?\s*[:=]\s*)(?:\"[^\"]*\"|'[^']*'|\S.*)"), r"\1<redacted>"),
]
PRIVATE_KEY = re.compile(r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----)(.*?)(?=-----END |\Z)", re.S)


def redact(line):
    for pattern, replacement in REDACTIONS:
        line = pattern.sub(replacement, line)
    return line


def hide_private_keys(text):
    """PEM private key bodies become one line with a fingerprint, so a changed key still shows."""
    return PRIVATE_KEY.sub(
        lambda m: f"{m[1]}\n<redacted private key {hashlib.sha256(m[2].encode()).hexdigest()[:12]}>\n", text)
