"""Held locks, with their holder's state; a stale one (its holder is not an active run) can be
broken here, audited like ``manage.py locks --break``. A live one is refused."""

from django.contrib import admin, messages

from backups_app.admin.base import ReadOnlyAdmin
from backups_app.errors import BackupError
from backups_app.models import OperationLock
from backups_app.permissions import RESTORE_BACKUP
from backups_app.services import locks


@admin.register(OperationLock)
class OperationLockAdmin(ReadOnlyAdmin):
    list_display = ("name", "holder", "acquired_at", "state")
    actions = ["break_locks"]

    @admin.display(description="holder state")
    def state(self, obj):
        return locks.holder_state(obj)[1]

    def has_break_permission(self, request):
        return request.user.has_perm(RESTORE_BACKUP)  # a lock only ever guards restores

    @admin.action(description="Break selected stale locks (refused while the holder runs)", permissions=["break"])
    def break_locks(self, request, queryset):
        for lock in queryset:
            try:
                state = locks.break_lock(lock.name, user=request.user, request=request)
            except BackupError as exc:
                messages.error(request, str(exc))
                continue
            messages.success(request, f"Lock {lock.name!r} broken; its holder {state}.")
