"""Admin for operations: pin/unpin and rehearsal actions and the Retention page for the Backup
admin (``OpsBackupAdminMixin``), the read-only Verification and audit log admins, and audited
django-q2 schedule edits limited to our own tasks. Imported by ``BackupsAppConfig.ready``."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from django_q.admin import ScheduleAdmin
from django_q.models import Schedule

from backups_app import tasks
from backups_app.errors import BackupError
from backups_app.models import AuditEvent, Trigger, Verification
from backups_app.services import audit, retention, verification

# The tasks setup_schedules creates. A schedule runs its func in the worker with the worker's
# rights, so the admin must not name anything else (os.system, a restore with confirm=True, ...).
SCHEDULABLE_TASKS = tuple(f"{task.__module__}.{task.__name__}"
                          for task in (tasks.scheduled_backup, tasks.scheduled_rehearsal, tasks.sweep))


@admin.action(description="Pin: keep whatever the retention policy says")
def pin_backups(modeladmin, request, queryset):
    for backup in queryset:
        retention.pin(backup.backup_id, request=request)
    modeladmin.message_user(request, f"{queryset.count()} backup(s) pinned.")


@admin.action(description="Unpin: let the retention policy decide again")
def unpin_backups(modeladmin, request, queryset):
    for backup in queryset:
        retention.unpin(backup.backup_id, request=request)
    modeladmin.message_user(request, f"{queryset.count()} backup(s) unpinned.")


@admin.action(description="Restore rehearsal (deep verify into scratch targets)")
def rehearse_backups(modeladmin, request, queryset):
    for backup in queryset:
        try:
            verification.verify(backup.backup_id, deep=True, trigger=Trigger.ADMIN, user=request.user,
                                request=request, run_async=True)
        except BackupError as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
            continue
        modeladmin.message_user(request, f"Rehearsal of {backup.backup_id} queued; see Verifications.")


class OpsBackupAdminMixin:
    """``class BackupAdmin(OpsBackupAdminMixin, admin.ModelAdmin)`` adds the actions above and the
    Retention page at ``<changelist>/retention/`` (URL name ``admin:backups_app_backup_retention``)."""

    ops_actions = (pin_backups, unpin_backups, rehearse_backups)

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Runs are read-only in the admin; pinning and rehearsals need the change permission.
        if request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}"):
            for action in self.ops_actions:
                actions[action.__name__] = self.get_action(action)
        return actions

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_retention"
        return [path("retention/", self.admin_site.admin_view(self.retention_view), name=name),
                *super().get_urls()]

    def retention_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_delete_permission(request):
                raise PermissionDenied
            try:
                result = retention.prune(user=request.user, request=request)
            except BackupError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"Pruned {len(result['deleted'])} backup(s); {result['kept']} kept.")
                for backup_id, error in result["errors"].items():
                    self.message_user(request, f"{backup_id}: {error}", messages.WARNING)
            return HttpResponseRedirect(request.path)
        try:
            rows, error = retention.plan(), ""
        except BackupError as exc:  # a bad retention setting is shown, not a server error
            rows, error = [], str(exc)
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": "Retention",
            "rows": rows, "error": error, "policy": retention.describe_policy(),
            "can_prune": self.has_delete_permission(request),
            "will_delete": sum(1 for _b, d in rows if not d.keep),
        }
        return TemplateResponse(request, "admin/backups_app/backup/retention.html", context)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Verification)
class VerificationAdmin(ReadOnlyAdmin):
    list_display = ("source_backup_id", "kind", "status", "created_at", "duration", "trigger", "summary")
    list_filter = ("kind", "status", "trigger")
    search_fields = ("source_backup_id",)
    fields = ("source_backup_id", "kind", "status", "trigger", "created_by", "created_at", "started_at",
              "finished_at", "results_table", "error", "log")
    readonly_fields = fields

    @admin.display(description="result")
    def summary(self, obj):
        return ", ".join(f"{name}: {self._state(result)}" for name, result in obj.results.items())

    @staticmethod
    def _state(result):
        if result.get("skipped"):
            return "skipped"
        state = "ok" if result["ok"] else "FAILED"
        return f"{state} in {result['seconds']} s" if "seconds" in result else state

    @admin.display(description="results")
    def results_table(self, obj):
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((name, self._state(r), r.get("note") or r.get("error") or "") for name, r in obj.results.items()),
        )
        return format_html("<table><tr><th>component / artifact</th><th>result</th><th>detail</th></tr>{}</table>",
                           rows)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "username", "action", "target", "origin")
    list_filter = ("action",)
    search_fields = ("target", "username", "origin")
    date_hierarchy = "created_at"


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = "__all__"

    def clean_func(self):
        func = self.cleaned_data["func"]
        if func not in SCHEDULABLE_TASKS:
            raise forms.ValidationError(
                f"{func!r} cannot be scheduled here; schedules may only run {', '.join(SCHEDULABLE_TASKS)} "
                "(manage.py setup_schedules creates them from the BACKUP_SCHEDULE_* settings).")
        return func

    def clean_hook(self):  # the hook is a callable too, run in the worker after the task
        if self.cleaned_data["hook"]:
            raise forms.ValidationError("Hooks cannot be set here; leave it empty.")
        return self.cleaned_data["hook"]

    def clean_kwargs(self):  # our tasks take no keyword arguments, and q_options could set a hook
        if self.cleaned_data["kwargs"]:
            raise forms.ValidationError("Keyword arguments cannot be set here; the schedulable tasks take none.")
        return self.cleaned_data["kwargs"]


class AuditedScheduleAdmin(ScheduleAdmin):
    """django-q2's schedule admin, limited to our own tasks, with every change recorded in the audit log."""

    form = ScheduleForm

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit.record("schedule.change" if change else "schedule.create", request=request,
                     target=obj.name or obj.func, details={"fields": form.changed_data})

    def delete_model(self, request, obj):
        audit.record("schedule.delete", request=request, target=obj.name or obj.func)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit.record("schedule.delete", request=request, target=obj.name or obj.func)
        super().delete_queryset(request, queryset)


admin.site.unregister(Schedule)
admin.site.register(Schedule, AuditedScheduleAdmin)
