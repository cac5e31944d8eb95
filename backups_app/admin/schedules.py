"""django-q2's schedule admin, limited to our own tasks (admin/forms.py), with every change
recorded in the audit log."""

from django.contrib import admin
from django_q.admin import ScheduleAdmin
from django_q.models import Schedule

from backups_app.admin.forms import ScheduleForm
from backups_app.services import audit


class AuditedScheduleAdmin(ScheduleAdmin):
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
