"""The backup history and everything done to a backup: Back up now, download (the set or one
artifact), verify checksums, pin/unpin, restore rehearsal, offsite copy again, delete, the
Retention page, and the restore flow (``restores.RestoreFlow``). Actions check permissions one
way: ``@admin.action(permissions=[...])`` and the ``has_<name>_permission`` methods below."""

from django.contrib import admin, messages
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from backups_app.admin.base import BADGE_COLOURS, RunAdmin, badge, require
from backups_app.admin.forms import BackupNowForm
from backups_app.admin.restores import RestoreFlow
from backups_app.admin.tables import counts_table
from backups_app.downloads import download_response
from backups_app.errors import BackupError
from backups_app.formatting import format_date, format_duration, size_html
from backups_app.models import Backup, BackupArtifact, RunStatus, Trigger
from backups_app.permissions import ADD_BACKUP, CHANGE_BACKUP, DELETE_BACKUP, DOWNLOAD_BACKUP
from backups_app.services import backups, catalog, offsite, retention, verification
from backups_app.services.verification import recall_text


class ArtifactInline(admin.TabularInline):
    model = BackupArtifact
    extra = 0
    can_delete = False
    fields = ("name", "component", "size", "sha256", "download")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_fields(self, request, obj=None):  # no download link for those who may not download
        return self.fields if request.user.has_perm(DOWNLOAD_BACKUP) else self.fields[:-1]

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj):
        return size_html(obj.size_bytes)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(set_id=F("backup__backup_id"))  # not a query per link

    @admin.display(description="download")
    def download(self, obj):
        url = reverse("admin:backups_app_backup_download_artifact", args=[obj.set_id, obj.name])
        return format_html('<a href="{}">download</a>', url)


@admin.register(Backup)
class BackupAdmin(RestoreFlow, RunAdmin):
    # Narrow enough for 1400 px with the Description visible: kind and host are in the filters and on the page.
    list_display = ("backup_id", "status_badge", "verification", "created", "size", "component_list", "started_by",
                    "pinned", "offsite_status", "description")
    list_filter = ("status", "kind", "trigger", "pinned", "offsite_status", "host")
    list_defer = ("log", "manifest")
    search_fields = ("backup_id", "description")
    inlines = [ArtifactInline]
    actions = ["verify_selected", "pin_backups", "unpin_backups", "rehearse_backups", "copy_offsite_again"]
    change_list_template = "admin/backups_app/backup/change_list.html"
    fieldsets = [
        (None, {"fields": ("backup_id", "status_badge", "verification", "last_rehearsal", "kind", "description",
                           "component_list", "size", "trigger", "created_by", "created_at", "started_at", "finished_at",
                           "took", "host", "worker", "progress_table", "error")}),
        ("Offsite copy", {"fields": ("offsite_status", "offsite_verified_at", "offsite_error")}),
        ("Counts", {"fields": ("counts",)}),
        ("Log", {"fields": ("log_text",)}),
    ]
    readonly_fields = ("backup_id", "status_badge", "verification", "last_rehearsal", "kind", "description",
                       "component_list", "size", "trigger", "created_by", "created_at", "started_at", "finished_at",
                       "took", "host", "worker", "progress_table", "error", "offsite_status", "offsite_verified_at",
                       "offsite_error", "counts", "log_text")

    def get_queryset(self, request):
        return super().get_queryset(request).with_last_check().select_related("created_by")  # shown on its page

    @admin.display(description="verified")
    def verification(self, obj):
        """Damaged (the latest verification failed: nobody's newest copy), verified, or never checked."""
        if obj.verified is None:
            return "not verified yet"
        if obj.verified:
            return badge("backup-verified", BADGE_COLOURS[RunStatus.COMPLETED], "verified")
        return format_html("{} the latest verification failed: do not rely on it; verify again, or delete it and "
                           "take a new backup", badge("backup-damaged", BADGE_COLOURS[RunStatus.FAILED], "damaged"))

    @admin.display(description="last rehearsal")
    def last_rehearsal(self, obj):
        """Its newest restore rehearsal: passed or failed, when, the RTO it measured, per component
        with the probe recall."""
        rehearsal = verification.last_rehearsal(obj)
        if rehearsal is None:
            return "never rehearsed"
        parts = format_html_join("; ", "{} {}{}", (
            (name, format_duration(result.get("seconds")), format_html(", {}", recall_text(result))
             if recall_text(result) else "") for name, result in rehearsal.results.items()))
        return format_html('<a class="last-rehearsal" href="{}">{}</a> {} · RTO {} ({})',
                           reverse("admin:backups_app_verification_change", args=[rehearsal.pk]),
                           "✔ passed" if rehearsal.status == RunStatus.COMPLETED else "✘ failed",
                           format_date(rehearsal.finished_at), format_duration(verification.restore_seconds(rehearsal)),
                           parts)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj):
        return size_html(obj.size_bytes)

    @admin.display(description="by", ordering="trigger")
    def started_by(self, obj):
        """The trigger, and who for the admin and the API: "admin: boss", "schedule"."""
        return f"{obj.get_trigger_display()}: {obj.created_by}" if obj.created_by else obj.get_trigger_display()

    @admin.display(description="counts")
    def counts(self, obj):
        return counts_table({n: f.get("counts", {}) for n, f in obj.manifest.get("components", {}).items()})

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        """The page's links for the set (download, restore, verify) when it is usable: ``obj`` is
        the backup the view already read."""
        context["set_links"] = obj if obj is not None and obj.status == RunStatus.COMPLETED else None
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("backup-now/", view(self.backup_now_view), name="backups_app_backup_backup_now"),
            path("retention/", view(self.retention_view), name="backups_app_backup_retention"),
            path("retention/prune/", view(require_POST(self.prune_view)), name="backups_app_backup_prune"),
            path("rescan/", view(self.rescan_view), name="backups_app_backup_rescan"),
            path("<str:backup_id>/verify/", view(self.verify_view), name="backups_app_backup_verify"),
            path("<str:backup_id>/download/", view(self.download_view), name="backups_app_backup_download"),
            path("<str:backup_id>/download/<str:artifact>/", view(self.download_view),
                 name="backups_app_backup_download_artifact"),
            *self.restore_urls(),
        ] + super().get_urls()

    def page_context(self, request, title, **extra):
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, **extra}

    # Permissions of the actions (``@admin.action(permissions=[name])`` asks ``has_<name>_permission``).

    def has_manage_permission(self, request):
        return request.user.has_perm(CHANGE_BACKUP)  # runs are read-only; pinning and rehearsals change state

    def has_offsite_permission(self, request):
        return request.user.has_perm(ADD_BACKUP)  # the same right as taking a backup

    def has_delete_permission(self, request, obj=None):
        # Active and pinned backups are refused by the service too; hiding the button says it first.
        return request.user.has_perm(DELETE_BACKUP) and (obj is None or not (obj.is_active or obj.pinned))

    # Views

    def backup_now_view(self, request):
        require(request, ADD_BACKUP)
        form = BackupNowForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                backup = backups.create_backup(form.cleaned_data["components"], form.cleaned_data["description"],
                                               trigger=Trigger.ADMIN, user=request.user, run_async=True,
                                               request=request)
            except BackupError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"Backup {backup.backup_id} queued.")
                return redirect("admin:backups_app_backup_change", backup.pk)
        return TemplateResponse(request, "admin/backups_app/backup/backup_now.html",
                                self.page_context(request, "Back up now", form=form))

    def verify_view(self, request, backup_id):
        """POST only: queue a checksum verification (``kind=deep``: a restore rehearsal) of a
        completed backup, then show it."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        require(request, CHANGE_BACKUP)
        deep = request.POST.get("kind") == "deep"
        try:
            check = verification.verify(backup_id, deep=deep, trigger=Trigger.ADMIN, user=request.user,
                                        request=request, run_async=True)
        except BackupError as exc:
            messages.error(request, str(exc))
            return redirect("admin:backups_app_backup_changelist")
        messages.success(request, f"{'Restore rehearsal' if deep else 'Verification'} of {backup_id} queued.")
        return redirect("admin:backups_app_verification_change", check.pk)

    def download_view(self, request, backup_id, artifact=None):
        require(request, DOWNLOAD_BACKUP)
        try:
            return download_response(request, backup_id, artifact)
        except BackupError as exc:
            messages.error(request, str(exc))
            return redirect("admin:backups_app_backup_changelist")

    def rescan_view(self, request):
        """POST only: import the sets found in storage that the catalog lacks (signed ones only)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        require(request, ADD_BACKUP)
        try:
            report = catalog.scan(user=request.user, request=request)
        except BackupError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"Storage scanned: {len(report.found)} set(s) found, "
                                       f"{len(report.imported)} imported.")
            for folder, reason in report.skipped.items():
                if reason != catalog.ALREADY_KNOWN:
                    self.message_user(request, f"{folder} not imported: {reason}", messages.WARNING)
        return redirect("admin:backups_app_backup_changelist")

    def retention_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows, error = self._retention_plan()
        return TemplateResponse(request, "admin/backups_app/backup/retention.html", self.page_context(
            request, "Retention", rows=rows, error=error, policy=retention.describe_policy(),
            can_prune=self.has_delete_permission(request), will_delete=sum(1 for _b, d in rows if not d.keep)))

    def prune_view(self, request):
        """POST only. Without ``confirm``: the page listing what goes and what stays, deleting
        nothing. With it: prune the backups that page listed (``backup`` fields)."""
        require(request, DELETE_BACKUP)
        if "confirm" not in request.POST:
            rows, error = self._retention_plan()
            return TemplateResponse(request, "admin/backups_app/backup/prune_confirm.html", self.page_context(
                request, "Prune: are you sure?", error=error, policy=retention.describe_policy(),
                deleted=[(b, d) for b, d in rows if not d.keep], kept=[(b, d) for b, d in rows if d.keep]))
        confirmed = set(request.POST.getlist("backup"))
        try:
            result = retention.prune(user=request.user, request=request, only=confirmed)
        except BackupError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"Pruned {len(result['deleted'])} backup(s); {result['kept']} kept.")
            for backup_id, error in result["errors"].items():
                self.message_user(request, f"{backup_id}: {error}", messages.WARNING)
            spared = confirmed - set(result["deleted"]) - set(result["errors"])
            if spared:
                self.message_user(request, f"Not deleted, the policy keeps them now: {', '.join(sorted(spared))}.",
                                  messages.WARNING)
        return redirect("admin:backups_app_backup_retention")

    @staticmethod
    def _retention_plan():
        """(rows, error): a bad retention setting is shown, not a server error."""
        try:
            return retention.plan(), ""
        except BackupError as exc:
            return [], str(exc)

    def delete_view(self, request, object_id, extra_context=None):
        """A deletion the service refuses (a restore uses the backup, it was pinned meanwhile) goes
        back to the backup's page saying why, instead of a server error."""
        try:
            return super().delete_view(request, object_id, extra_context)
        except BackupError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return redirect("admin:backups_app_backup_change", object_id)

    def response_delete(self, request, obj_display, obj_id):
        """Back to the history, with its filters (Django goes to the index when the model cannot be
        changed, and backups cannot)."""
        self.message_user(request, f"Backup {obj_display} deleted.")
        return HttpResponseRedirect(add_preserved_filters(
            {"preserved_filters": self.get_preserved_filters(request), "opts": self.opts},
            reverse("admin:backups_app_backup_changelist")))

    # Actions

    @admin.action(description="Verify checksums of selected backups", permissions=["manage"])
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

    @admin.action(description="Pin: keep whatever the retention policy says", permissions=["manage"])
    def pin_backups(self, request, queryset):
        for backup in queryset:
            retention.pin(backup.backup_id, user=request.user, request=request)
        self.message_user(request, f"{queryset.count()} backup(s) pinned.")

    @admin.action(description="Unpin: let the retention policy decide again", permissions=["manage"])
    def unpin_backups(self, request, queryset):
        for backup in queryset:
            retention.unpin(backup.backup_id, user=request.user, request=request)
        self.message_user(request, f"{queryset.count()} backup(s) unpinned.")

    @admin.action(description="Restore rehearsal (deep verify into scratch targets)", permissions=["manage"])
    def rehearse_backups(self, request, queryset):
        for backup in queryset:
            try:
                verification.verify(backup.backup_id, deep=True, trigger=Trigger.ADMIN, user=request.user,
                                    request=request, run_async=True)
            except BackupError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(request, f"Rehearsal of {backup.backup_id} queued; see Verifications.")

    @admin.action(description="Copy selected backups to offsite storage again", permissions=["offsite"])
    def copy_offsite_again(self, request, queryset):
        for backup in queryset:
            try:
                offsite.queue_copy(backup)
            except BackupError as exc:
                messages.error(request, str(exc))
                continue
            messages.success(request, f"Offsite copy of {backup.backup_id} queued.")

    def delete_model(self, request, obj):
        backups.delete_backup(obj.backup_id, user=request.user, request=request)

    def delete_queryset(self, request, queryset):
        for backup in queryset:
            try:
                self.delete_model(request, backup)
            except BackupError as exc:
                messages.error(request, str(exc))
