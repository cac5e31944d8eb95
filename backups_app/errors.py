"""Errors with text a person can act on. Every message names what failed and, where we know
it, the fix. None of them may contain a secret."""


class BackupError(Exception):
    """Base class: the message is shown to users and stored on the run."""


class InvalidId(BackupError):
    pass


class NotFound(BackupError):
    pass


class UnknownComponent(BackupError):
    pass


class NotCompleted(BackupError):
    """The backup exists but is pending, running or failed, so it cannot be used yet (or at all)."""


class ConfigurationError(BackupError):
    pass


class ChecksumMismatch(BackupError):
    pass


class UnsafeArchive(BackupError):
    pass


class ComponentError(BackupError):
    pass


class ConfirmationRequired(BackupError):
    """Raised instead of restoring; ``plan`` holds the warning and live vs backup counts."""

    def __init__(self, message, plan):
        super().__init__(message)
        self.plan = plan


class Busy(BackupError):
    """Another operation holds the lock (a restore is running)."""


class HookFailed(BackupError):
    pass
