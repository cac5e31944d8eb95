"""What the admins share: read-only run history (written by the services only, like django-q2's
task admin) with a status badge, the log, and live progress refreshed in place while the run is
active (admin/progress.py)."""

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from django.utils.translation import gettext as _

from backups_app.admin import progress
from backups_app.formatting import format_date, format_duration
from backups_app.models import RunStatus
from backups_app.services import roles

BADGE_COLOURS = {
    RunStatus.PENDING: "#6c757d", RunStatus.IN_PROGRESS: "#0d6efd", RunStatus.COMPLETED: "#198754",
    RunStatus.FAILED: "#dc3545", RunStatus.ROLLED_BACK: "#fd7e14",
}


def badge(css_class, colour, text):
    return format_html('<span class="{}" style="background:{};color:#fff;padding:2px 8px;'
                       'border-radius:9px;white-space:nowrap">{}</span>', css_class, colour, text)


def status_badge(run):
    return badge("run-status", BADGE_COLOURS.get(run.status, "#6c757d"), run.get_status_display())


def log_block(text):
    return format_html("<pre style='max-height:30em;overflow:auto;margin:0'>{}</pre>", text or "—")


class MissingPermission(PermissionDenied):
    """Refused for want of one permission; the 403 page (``permission_denied``) names it."""

    def __init__(self, permission):
        super().__init__(permission)
        self.permission = permission


def require(request, permission):
    """For our own admin views: the user holds ``permission`` (from backups_app.permissions)."""
    if not request.user.has_perm(permission):
        raise MissingPermission(permission)


def permission_denied(request, exception=None):
    """The 403 page (``handler403``), styled like the admin: which permission is missing and which
    groups (``manage.py setup_roles``) hold it."""
    missing = getattr(exception, "permission", None)
    context = {**admin.site.each_context(request), "title": "Not allowed", "permission": missing}
    if missing:
        app_label, codename = missing.split(".")
        found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        context.update(permission_name=found.name if found else missing, groups=roles.groups_granting(missing))
    return TemplateResponse(request, "admin/backups_app/permission_denied.html", context, status=403)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RunChangeList(ChangeList):
    """A run list reads the rows without what only a run's page shows (``RunAdmin.list_defer``)."""

    def get_queryset(self, request, exclude_parameters=None):
        return super().get_queryset(request, exclude_parameters).defer(*self.model_admin.list_defer)


class RunAdmin(ReadOnlyAdmin):
    """Backups, restores and verifications."""

    change_form_template = "admin/backups_app/run_change_form.html"
    change_list_template = "admin/backups_app/run_change_list.html"
    list_per_page = 50
    # created_by is nullable, which Django's automatic select_related skips: one query per row without it.
    list_select_related = ("created_by",)
    list_defer = ("log",)  # can be long; the lists never show it
    #: The fields of a run page the run fills in while the page is open (a worker taking a queued
    #: run): the progress poll brings them in place, as the page renders them.
    live_fields = ("started_at", "host", "worker")

    def action_checkbox(self, obj):
        """Django's checkbox, written out: rendering a CheckboxInput through the form templates is
        half the time of a history page of 50 rows."""
        return format_html('<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
                           helpers.ACTION_CHECKBOX_NAME, obj.pk,
                           format_html(_("Select this object for an action - {}"), str(obj)))

    def get_changelist(self, request, **kwargs):
        return RunChangeList

    @admin.display(description="created at", ordering="created_at")
    def created(self, obj):
        return format_html('<span class="nowrap">{}</span>', format_date(obj.created_at))  # the field's text, faster

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return progress.live_status(obj, status_badge(obj))

    @admin.display(description="progress")
    def progress_table(self, obj):
        return progress.live_block(obj, "run-progress", progress.progress_table(obj))

    @admin.display(description="components")
    def component_list(self, obj):
        return ", ".join(obj.components)

    @admin.display(description="duration")
    def took(self, obj):
        return format_duration(obj.duration)

    @admin.display(description="log")
    def log_text(self, obj):
        return progress.live_block(obj, "run-log", log_block(obj.log))

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [path("progress/", self.admin_site.admin_view(self.progress_view), name="%s_%s_progress" % info),
                *super().get_urls()]

    def progress_view(self, request):
        """JSON for the pages' poll: per run asked for (``?id=<pk>``, repeated), whether it is still
        active and the HTML of its status cell and progress table (and its log, with ``log=1``), and
        the HTML of its ``live_fields``."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        ids = [int(pk) for pk in request.GET.getlist("id") if pk.isdigit()]
        runs = {}
        for run in self.get_queryset(request).filter(pk__in=ids):
            form = self.get_form(request, run)(instance=run)
            runs[run.pk] = {"active": run.is_active, "status": self.status_badge(run),
                            "progress": progress.progress_table(run),
                            "fields": {name: str(helpers.AdminReadonlyField(form, name, False, self).contents())
                                       for name in self.live_fields}}
            if request.GET.get("log"):
                runs[run.pk]["log"] = run.log
        return JsonResponse({"runs": runs})

