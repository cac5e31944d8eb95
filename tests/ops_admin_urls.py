"""An admin site with the Backup admin built from OpsBackupAdminMixin, the way the project's
BackupAdmin includes it, so the operations admin is tested on its own."""

from django.contrib import admin
from django.urls import path

from backups_app.admin_ops import AuditEventAdmin, OpsBackupAdminMixin, VerificationAdmin
from backups_app.models import AuditEvent, Backup, Verification


class BackupAdmin(OpsBackupAdminMixin, admin.ModelAdmin):
    list_display = ("backup_id", "status", "pinned")


site = admin.AdminSite(name="admin")
site.register(Backup, BackupAdmin)
site.register(Verification, VerificationAdmin)
site.register(AuditEvent, AuditEventAdmin)

urlpatterns = [path("admin/", site.urls)]
