"""The restore flow, on the Backup admin's URLs: choose components (GET) → the plan, every
checksum verified and live vs backup counts (POST) → the typed backup id (POST-only confirm; a
wrong id shows the plan again with the same choices) → the restore's page. And the read-only
restore history."""

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from backups_app.admin import tables
from backups_app.admin.base import RunAdmin, require
from backups_app.admin.forms import RestoreForm
from backups_app.errors import BackupError
from backups_app.models import Restore, Trigger
from backups_app.permissions import RESTORE_BACKUP
from backups_app.services import backups, promote, restores, verification

PROMOTION_ACTIONS = [("promote", "Promote"), ("undo", "Undo promotion"), ("drop_old", "Drop the replaced data")]


def promotion_actions(restore):
    """[(action, label)] the restore's page offers: promote a completed side-by-side restore, then
    undo it or drop what it replaced."""
    state = promote.promotion(restore).get("state")
    if state == promote.PROMOTED:
        return [a for a in PROMOTION_ACTIONS if a[0] != "promote"]
    return [PROMOTION_ACTIONS[0]] if promote.can_promote(restore) is None else []


def live_components(plan):
    """The components the plan writes into the live store (the others go side by side)."""
    return [name for name in plan["components"] if plan.get("targets", {}).get(name, {}).get("live", True)]


class RestoreFlow:
    """Mixed into the Backup admin: ``restore_urls()`` go into its ``get_urls()``."""

    def restore_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<str:backup_id>/restore/", view(self.restore_view), name="backups_app_backup_restore"),
            path("<str:backup_id>/restore/confirm/", view(require_POST(self.restore_confirm_view)),
                 name="backups_app_backup_restore_confirm"),
        ]

    def _restorable(self, request, backup_id):
        require(request, RESTORE_BACKUP)
        try:
            return backups.get_backup(backup_id)
        except BackupError as exc:
            messages.error(request, str(exc))
            return None

    def restore_view(self, request, backup_id):
        """Step 1 (GET): choose components, filled in again by "change the selection". Step 2 (POST):
        the plan and the typed confirmation that step 3 (restore_confirm_view) checks."""
        backup = self._restorable(request, backup_id)
        if backup is None:
            return redirect("admin:backups_app_backup_changelist")
        form = RestoreForm(backup, request.POST or None)
        if request.method == "GET":
            form.fill_from(request.GET)
        return self._restore_page(request, backup, form)

    def _restore_page(self, request, backup, form, confirmation_error=""):
        """Step 2 (the plan) for a valid bound form, else step 1 with the form's errors."""
        plan = None
        if form.is_bound and form.is_valid():
            try:
                plan = restores.plan_restore(backup.backup_id, form.cleaned_data["components"],
                                             form.restore_options())
            except BackupError as exc:
                form.add_error(None, str(exc))
        options_text = plan and "\n".join(form.option_lines())
        selection = plan and urlencode({"components": plan["components"], "options": options_text}, doseq=True)
        return TemplateResponse(request, "admin/backups_app/backup/restore.html",
                                self.page_context(request, f"Restore {backup.backup_id}", backup=backup, form=form,
                                                  plan=plan, plan_table=plan and tables.plan_with_raw(plan),
                                                  options_text=options_text, selection_query=selection,
                                                  confirmation_error=confirmation_error,
                                                  live_names=plan and live_components(plan)))

    def restore_confirm_view(self, request, backup_id):
        backup = self._restorable(request, backup_id)
        if backup is None:
            return redirect("admin:backups_app_backup_changelist")
        form = RestoreForm(backup, request.POST)
        if not form.is_valid():
            messages.error(request, "Choose at least one component.")
            return redirect("admin:backups_app_backup_restore", backup.backup_id)
        if form.cleaned_data["confirmation"].strip() != backup.backup_id:
            return self._restore_page(request, backup, form, confirmation_error=(
                f"Not confirmed: type {backup.backup_id} exactly. Nothing was changed."))
        try:
            restore = restores.start_restore(backup.backup_id, form.cleaned_data["components"],
                                             form.restore_options(), confirm=True, trigger=Trigger.ADMIN,
                                             user=request.user, run_async=True, request=request)
        except BackupError as exc:
            messages.error(request, str(exc))
            return redirect("admin:backups_app_backup_restore", backup.backup_id)
        messages.success(request, f"Restore {restore.restore_id} queued.")
        return redirect("admin:backups_app_restore_change", restore.pk)


@admin.register(Restore)
class RestoreAdmin(RunAdmin):
    list_display = ("restore_id", "status_badge", "source_backup_id", "component_list", "trigger", "created_by",
                    "created", "took", "host")
    list_filter = ("status", "trigger", "host")
    search_fields = ("restore_id", "source_backup_id")
    fieldsets = [
        (None, {"fields": ("restore_id", "status_badge", "source_backup_id", "component_list", "options_table",
                           "trigger", "created_by", "created_at", "started_at", "finished_at", "took", "host",
                           "worker", "progress_table", "safety_backup", "error", "probe_check")}),
        ("Plan", {"fields": ("plan_view",)}),
        ("Log", {"fields": ("log_text",)}),
    ]
    # Filled in while the page is open: the plan once the checksums are verified (and its live
    # counts once the safety backup has them), the safety backup once it is taken.
    live_fields = (*RunAdmin.live_fields, "safety_backup", "plan_view")
    readonly_fields = ("restore_id", "status_badge", "source_backup_id", "component_list", "options_table", "trigger",
                       "created_by", "created_at", "started_at", "finished_at", "took", "host", "worker",
                       "progress_table", "safety_backup", "error", "probe_check", "plan_view", "log_text")

    # Promote (services/promote.py): buttons on a completed side-by-side restore, POST only.

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        actions = promotion_actions(obj) if obj is not None and request.user.has_perm(RESTORE_BACKUP) else []
        return super().change_view(request, object_id, form_url, {**(extra_context or {}),
                                                                  "promotion_actions": actions})

    def get_urls(self):
        view = self.admin_site.admin_view
        return [path("<path:object_id>/promote/", view(require_POST(self.promote_view)),
                     name="backups_app_restore_promote"), *super().get_urls()]

    def promote_view(self, request, object_id):
        require(request, RESTORE_BACKUP)
        restore = self.get_object(request, object_id)
        if restore is None:
            messages.error(request, "No such restore.")
            return redirect("admin:backups_app_restore_changelist")
        action = request.POST.get("action")
        if action not in dict(PROMOTION_ACTIONS):
            messages.error(request, "Unknown promotion action; nothing was changed.")
        else:
            try:
                lines = promote.promote(restore.restore_id, drop_old=action == "drop_old",
                                        undo=action == "undo", user=request.user, request=request)
                messages.success(request, "; ".join(lines) or "Done.")
            except BackupError as exc:
                messages.error(request, str(exc))
        return redirect("admin:backups_app_restore_change", restore.pk)

    @admin.display(description="retrieval probes")
    def probe_check(self, obj):
        """The check after the restore (services/verification.check_restore): recall per collection."""
        check = verification.of_restore(obj)
        if check is None:
            return "—"
        parts = [f"{name}: {verification.recall_text(r) or ('ok' if r['ok'] else 'FAILED')}"
                 for name, r in check.results.items()]
        return format_html('<a href="{}">{}</a>: {}', reverse("admin:backups_app_verification_change", args=[check.pk]),
                           check.get_status_display(), "; ".join(parts))

    @admin.display(description="options")
    def options_table(self, obj):
        return tables.key_value_table(obj.options)

    @admin.display(description="plan")
    def plan_view(self, obj):
        if not obj.plan.get("components"):
            return "—"
        return tables.plan_with_raw(obj.plan, live_label="live before the restore")
