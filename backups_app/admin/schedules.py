"""django-q2's schedule admin, limited to our own tasks (admin/forms.py), with every change
recorded in the audit log. The schedules setup_schedules makes from settings are read-only here,
with the setting to change (services/schedules.MANAGED_BY); the list shows when each one runs."""

from django.conf import settings
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.timesince import timeuntil
from django_q.admin import ScheduleAdmin
from django_q.models import Schedule

from backups_app.admin.forms import ScheduleForm
from backups_app.services import audit
from backups_app.services.schedules import MANAGED_BY


def managed_by(schedule):
    """The setting that manages this schedule, or None for a schedule made in the admin."""
    return MANAGED_BY.get(schedule.name) if schedule is not None else None


class AuditedScheduleAdmin(ScheduleAdmin):
    form = ScheduleForm
    list_display = ("id", "name", "func", "runs", "next_run_in_words", "managed", "repeats", "get_last_run",
                    "get_success")

    @admin.display(description="runs")
    def runs(self, obj):
        if obj.schedule_type == obj.CRON:
            return f"cron {obj.cron}"
        if obj.schedule_type == obj.MINUTES:
            return f"every {obj.minutes} min"
        return obj.get_schedule_type_display()

    @admin.display(description="next run", ordering="next_run")
    def next_run_in_words(self, obj):
        if obj.next_run is None:
            return "—"
        if obj.next_run <= timezone.now():
            return "due now (waits for a worker)"
        return f"in {timeuntil(obj.next_run)}"

    @admin.display(description="managed by")
    def managed(self, obj):
        setting = managed_by(obj)
        return f"{setting} (read-only here)" if setting else "this admin"

    def has_change_permission(self, request, obj=None):
        return managed_by(obj) is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return managed_by(obj) is None and super().has_delete_permission(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        setting = managed_by(self.get_object(request, object_id))
        if setting:
            self.message_user(request, f"Managed by the setting {setting} (now {getattr(settings, setting)!r}): "
                                       "read-only here. Change the environment variable and run manage.py "
                                       "setup_schedules (make run does) to change this schedule.", messages.INFO)
        return super().change_view(request, object_id, form_url, extra_context)

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
