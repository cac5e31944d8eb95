from django.contrib import admin

from backups_app.admin.base import ReadOnlyAdmin
from backups_app.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "username", "action", "target", "origin")
    list_filter = ("action",)
    search_fields = ("target", "username", "origin")
    date_hierarchy = "created_at"
