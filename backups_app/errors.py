"""Errors with text a person can act on. Every message names what failed and, where we know
it, the fix. None of them may contain a secret."""

from django.core.exceptions import ImproperlyConfigured


class BackupError(Exception):
    """Base class: the message is shown to users and stored on the run."""


class InvalidId(BackupError):
    pass


class InvalidOption(BackupError):
    """A request's option (restore option, selection) is not valid: the caller's to fix."""


class NotFound(BackupError):
    pass


class UnknownComponent(BackupError):
    pass


class NotCompleted(BackupError):
    """The backup exists but is pending, running or failed, so it cannot be used yet (or at all)."""


class ConfigurationError(BackupError, ImproperlyConfigured):
    """The deployment's configuration is wrong (the operator's to fix, not the caller's): the
    message names the setting or environment variable and the fix. The API answers 503."""


class Unavailable(BackupError):
    """Something the app relies on is down (the task broker); not the caller's fault. API: 503."""


class ChecksumMismatch(BackupError):
    pass


class InvalidSet(BackupError):
    """A stored set that cannot be trusted as it is: its metadata.json is malformed, or differs
    from what the catalog recorded when the backup was taken. The API answers 409."""


class UnsafeArchive(BackupError):
    pass


class ComponentError(BackupError):
    pass


class Unchanged(ComponentError):
    """A component's restore failed before it wrote anything (a single transaction rolled back, a
    scratch database or spare index never switched in): the store is exactly as it was, so there
    is nothing to roll back."""


class ConfirmationRequired(BackupError):
    """Raised instead of restoring; ``plan`` holds the warning and live vs backup counts."""

    def __init__(self, message, plan):
        super().__init__(message)
        self.plan = plan


class Busy(BackupError):
    """Another operation holds the lock (a restore is running)."""


class HookFailed(BackupError):
    pass
