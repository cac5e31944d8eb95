from django import forms
from django_q.models import Schedule

from backups_app import components
from backups_app.services import restores
from backups_app.tasks import scheduled_backup, scheduled_rehearsal, sweep

# The tasks setup_schedules creates. A schedule runs its func in the worker with the worker's
# rights, so the admin must not name anything else (os.system, a restore with confirm=True, ...).
SCHEDULABLE_TASKS = tuple(f"{task.__module__}.{task.__name__}"
                          for task in (scheduled_backup, scheduled_rehearsal, sweep))


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
