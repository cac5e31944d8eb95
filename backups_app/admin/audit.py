from django.contrib import admin

from backups_app.admin.base import ReadOnlyAdmin
from backups_app.admin.tables import key_value_table
from backups_app.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "username", "action", "target", "origin")
    list_filter = ("action",)
    search_fields = ("target", "username", "origin")
    date_hierarchy = "created_at"
    fields = ("created_at", "username", "user", "action", "target", "origin", "details_table")
    readonly_fields = fields

    @admin.display(description="details")
    def details_table(self, obj):
        return key_value_table(obj.details)
