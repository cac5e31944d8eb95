"""The Django admin is the staff console: history (read-only), Back up now, download, verify,
delete, and the restore flow plan → typed confirmation → progress → result.
Views only parse, authorise and call services."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from backups_app import components
from backups_app.downloads import download_response
from backups_app.errors import BackupError
from backups_app.models import Backup, BackupArtifact, Restore, RunStatus, Trigger
from backups_app.admin_ops import OpsBackupAdminMixin
from backups_app.services import audit, backups, offsite, restores, verification

BADGE_COLOURS = {
    RunStatus.PENDING: "#6c757d", RunStatus.IN_PROGRESS: "#0d6efd", RunStatus.COMPLETED: "#198754",
    RunStatus.FAILED: "#dc3545", RunStatus.ROLLED_BACK: "#fd7e14",
}


def status_badge(run):
    return format_html('<span class="run-status" style="background:{};color:#fff;padding:2px 8px;'
                       'border-radius:9px;white-space:nowrap">{}</span>',
                       BADGE_COLOURS.get(run.status, "#6c757d"), run.get_status_display())


def pretty_json(value):
    return format_html("<pre style='margin:0'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


def log_block(text):
    return format_html("<pre style='max-height:30em;overflow:auto;margin:0'>{}</pre>", text or "—")


def count_rows(plan):
    """[(component, what, live, in backup)] for the plan's comparison table."""
    rows = []
    for name, counts in plan["counts"].items():
        live, stored = (restores.flatten_counts(name, counts[side]) for side in ("live", "backup"))
        for key in sorted(set(live) | set(stored)):
            rows.append((name, key.removeprefix(f"{name}."), live.get(key, "—"), stored.get(key, "—")))
    return rows


class ReadOnlyRunAdmin(admin.ModelAdmin):
    """Run history is written by the services only (like django-q2's task admin)."""

    change_form_template = "admin/backups_app/run_change_form.html"
    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return status_badge(obj)

    @admin.display(description="components")
    def component_list(self, obj):
        return ", ".join(obj.components)

    @admin.display(description="log")
    def log_text(self, obj):
        return log_block(obj.log)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = {**(extra_context or {}), "refresh": obj is not None and obj.is_active}
        return super().change_view(request, object_id, form_url, extra_context)


class ArtifactInline(admin.TabularInline):
    model = BackupArtifact
    extra = 0
    can_delete = False
    fields = ("name", "component", "size_bytes", "sha256", "download")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="download")
    def download(self, obj):
        url = reverse("admin:backups_app_backup_download_artifact", args=[obj.backup.backup_id, obj.name])
        return format_html('<a href="{}">download</a>', url)


class BackupNowForm(forms.Form):
    components = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, required=True)
    description = forms.CharField(max_length=500, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = components.source_names()
        self.fields["components"].choices = [(n, n) for n in names]
        self.fields["components"].initial = names


class RestoreForm(forms.Form):
    components = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, required=True)
    options = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False,
                              help_text="One COMPONENT.KEY=VALUE per line, e.g. postgres.no_owner=true")
    confirmation = forms.CharField(required=False, label="Type the backup id to confirm")

    def __init__(self, backup, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = list(backup.manifest.get("components", {}))
        self.fields["components"].choices = [(n, n) for n in names]
        self.fields["components"].initial = names

    def restore_options(self):
        return restores.parse_option_assignments(
            line for line in self.cleaned_data["options"].splitlines() if line.strip())


@admin.register(Backup)
class BackupAdmin(OpsBackupAdminMixin, ReadOnlyRunAdmin):
    list_display = ("backup_id", "status_badge", "kind", "created_at", "size", "component_list", "trigger",
                    "created_by", "pinned", "offsite_status", "description")
    list_filter = ("status", "kind", "trigger", "pinned", "offsite_status")
    search_fields = ("backup_id", "description")
    inlines = [ArtifactInline]
    actions = ["verify_selected", "copy_offsite_again"]
    change_list_template = "admin/backups_app/backup/change_list.html"
    fieldsets = [
        (None, {"fields": ("backup_id", "status_badge", "kind", "description", "component_list", "size",
                           "trigger", "created_by", "created_at", "started_at", "finished_at", "progress",
                           "error", "links")}),
        ("Offsite copy", {"fields": ("offsite_status", "offsite_verified_at", "offsite_error")}),
        ("Counts", {"fields": ("counts",)}),
        ("Log", {"fields": ("log_text",)}),
    ]
    readonly_fields = ("backup_id", "status_badge", "kind", "description", "component_list", "size", "trigger",
                       "created_by", "created_at", "started_at", "finished_at", "progress", "error", "links",
                       "offsite_status", "offsite_verified_at", "offsite_error", "counts", "log_text")

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj):
        return filesizeformat(obj.size_bytes)

    @admin.display(description="counts")
    def counts(self, obj):
        return pretty_json({n: f.get("counts", {}) for n, f in obj.manifest.get("components", {}).items()})

    @admin.display(description="actions")
    def links(self, obj):
        if obj.status != RunStatus.COMPLETED:
            return "—"
        return format_html_join(" · ", '<a href="{}">{}</a>', [
            (reverse("admin:backups_app_backup_download", args=[obj.backup_id]), "Download (.tar)"),
            (reverse("admin:backups_app_backup_restore", args=[obj.backup_id]), "Restore…"),
        ])

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("backup-now/", view(self.backup_now_view), name="backups_app_backup_backup_now"),
            path("<str:backup_id>/download/", view(self.download_view), name="backups_app_backup_download"),
            path("<str:backup_id>/download/<str:artifact>/", view(self.download_view),
                 name="backups_app_backup_download_artifact"),
            path("<str:backup_id>/restore/", view(self.restore_view), name="backups_app_backup_restore"),
            path("<str:backup_id>/restore/confirm/", view(require_POST(self.restore_confirm_view)),
                 name="backups_app_backup_restore_confirm"),
        ] + super().get_urls()

    def _context(self, request, title, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **extra}

    def backup_now_view(self, request):
        if not self.has_perm(request, "add_backup"):
            raise PermissionDenied
        form = BackupNowForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                backup = backups.create_backup(form.cleaned_data["components"], form.cleaned_data["description"],
                                               trigger=Trigger.ADMIN, user=request.user, run_async=True)
            except BackupError as exc:
                messages.error(request, str(exc))
            else:
                audit.record("backup.create", request=request, target=backup.backup_id,
                             details={"trigger": Trigger.ADMIN})
                messages.success(request, f"Backup {backup.backup_id} queued.")
                return redirect("admin:backups_app_backup_change", backup.pk)
        return TemplateResponse(request, "admin/backups_app/backup/backup_now.html",
                                self._context(request, "Back up now", form=form))

    def download_view(self, request, backup_id, artifact=None):
        if not self.has_perm(request, "download_backup"):
            raise PermissionDenied
        try:
            return download_response(request, backup_id, artifact)
        except BackupError as exc:
            messages.error(request, str(exc))
            return redirect("admin:backups_app_backup_changelist")

    def _restorable(self, request, backup_id):
        if not self.has_perm(request, "restore_backup"):
            raise PermissionDenied
        try:
            return backups.get_backup(backup_id)
        except BackupError as exc:
            messages.error(request, str(exc))
            return None

    def restore_view(self, request, backup_id):
        """Step 1 (GET): choose components. Step 2 (POST): the plan — checksums verified, live vs
        backup counts — and the typed confirmation that step 3 (restore_confirm_view) checks."""
        backup = self._restorable(request, backup_id)
        if backup is None:
            return redirect("admin:backups_app_backup_changelist")
        form = RestoreForm(backup, request.POST or None)
        plan = None
        if request.method == "POST" and form.is_valid():
            try:
                plan = restores.plan_restore(backup.backup_id, form.cleaned_data["components"],
                                             form.restore_options())
            except BackupError as exc:
                form.add_error(None, str(exc))
        return TemplateResponse(request, "admin/backups_app/backup/restore.html",
                                self._context(request, f"Restore {backup.backup_id}", backup=backup, form=form,
                                              plan=plan, count_rows=plan and count_rows(plan)))

    def restore_confirm_view(self, request, backup_id):
        backup = self._restorable(request, backup_id)
        if backup is None:
            return redirect("admin:backups_app_backup_changelist")
        form = RestoreForm(backup, request.POST)
        if not form.is_valid():
            messages.error(request, "Choose at least one component.")
            return redirect("admin:backups_app_backup_restore", backup.backup_id)
        if form.cleaned_data["confirmation"].strip() != backup.backup_id:
            messages.error(request, f"Not confirmed: type {backup.backup_id} exactly. Nothing was changed.")
            return redirect("admin:backups_app_backup_restore", backup.backup_id)
        try:
            restore = restores.start_restore(backup.backup_id, form.cleaned_data["components"],
                                             form.restore_options(), confirm=True, trigger=Trigger.ADMIN,
                                             user=request.user, run_async=True)
        except BackupError as exc:
            messages.error(request, str(exc))
            return redirect("admin:backups_app_backup_restore", backup.backup_id)
        audit.record("restore.start", request=request, target=restore.restore_id,
                     details={"backup_id": backup.backup_id, "components": restore.components})
        messages.success(request, f"Restore {restore.restore_id} queued.")
        return redirect("admin:backups_app_restore_change", restore.pk)

    def has_perm(self, request, codename):
        return request.user.has_perm(f"backups_app.{codename}")

    @admin.action(description="Verify checksums of selected backups")
    def verify_selected(self, request, queryset):
        for backup in queryset.filter(status=RunStatus.COMPLETED):
            try:
                result = verification.quick_check(backup.backup_id, Trigger.ADMIN, user=request.user, request=request)
            except BackupError as exc:
                messages.error(request, f"{backup.backup_id}: {exc}")
                continue
            if result["ok"]:
                messages.success(request, f"Verified {backup.backup_id}: all {len(result['artifacts'])} artifacts "
                                          "match their checksums.")
            else:
                failed = "; ".join(f"{n}: {e}" for n, e in result["artifacts"].items() if e)
                messages.error(request, f"Verification FAILED for {backup.backup_id}: {failed}")

    def has_offsite_permission(self, request):
        return request.user.has_perm("backups_app.add_backup")  # the same right as taking a backup

    @admin.action(description="Copy selected backups to offsite storage again", permissions=["offsite"])
    def copy_offsite_again(self, request, queryset):
        for backup in queryset:
            try:
                offsite.queue_copy(backup)
            except BackupError as exc:
                messages.error(request, str(exc))
                continue
            messages.success(request, f"Offsite copy of {backup.backup_id} queued.")

    def has_delete_permission(self, request, obj=None):
        # Active and pinned backups are refused by the service too; hiding the button says it first.
        return request.user.has_perm("backups_app.delete_backup") and (
            obj is None or not (obj.is_active or obj.pinned))

    def delete_model(self, request, obj):
        backups.delete_backup(obj.backup_id)
        audit.record("backup.delete", request=request, target=obj.backup_id)

    def delete_queryset(self, request, queryset):
        for backup in queryset:
            try:
                self.delete_model(request, backup)
            except BackupError as exc:
                messages.error(request, str(exc))


@admin.register(Restore)
class RestoreAdmin(ReadOnlyRunAdmin):
    list_display = ("restore_id", "status_badge", "source_backup_id", "component_list", "trigger", "created_by",
                    "created_at", "duration")
    list_filter = ("status", "trigger")
    search_fields = ("restore_id", "source_backup_id")
    fieldsets = [
        (None, {"fields": ("restore_id", "status_badge", "source_backup_id", "component_list", "options",
                           "trigger", "created_by", "created_at", "started_at", "finished_at", "progress",
                           "safety_backup", "error")}),
        ("Plan", {"fields": ("plan_view",)}),
        ("Log", {"fields": ("log_text",)}),
    ]
    readonly_fields = ("restore_id", "status_badge", "source_backup_id", "component_list", "options", "trigger",
                       "created_by", "created_at", "started_at", "finished_at", "progress", "safety_backup",
                       "error", "plan_view", "log_text")

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="plan")
    def plan_view(self, obj):
        return pretty_json(obj.plan) if obj.plan else "—"
