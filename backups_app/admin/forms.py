from django import forms
from django_q.models import Schedule

from backups_app import components
from backups_app.errors import InvalidOption, UnknownComponent
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
        # "Restore into …": one field per target option of each configured component in the backup.
        self.target_fields = {}
        for name in names:
            try:
                component = components.get_component(name)
            except UnknownComponent:
                continue  # the plan says so
            for key, help_text in component.target_options.items():
                field = f"into__{name}__{key}"
                self.fields[field] = forms.CharField(required=False, label=f"{name}.{key}", help_text=help_text)
                self.target_fields.setdefault(name, []).append(field)

    def fill_from(self, query):
        """Step 1 filled in from "change the selection" (``components`` and ``options`` in the query,
        as step 2 sends them): the "Restore into …" lines go back into their own fields."""
        if "components" in query:
            self.initial["components"] = query.getlist("components")
        into = {self.fields[field].label: field for fields in self.target_fields.values() for field in fields}
        rest = []
        for line in query.get("options", "").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in into:
                self.initial[into[key.strip()]] = value.strip()
            elif line.strip():
                rest.append(line.strip())
        self.initial["options"] = "\n".join(rest)

    def into_given(self):
        """Whether a "Restore into …" field is filled in (the section is then shown open)."""
        return self.is_bound or any(self.initial.get(f) for fields in self.target_fields.values() for f in fields)

    def into_groups(self):
        """[(component, [bound fields])] for the template's "Restore into …" section."""
        return [(name, [self[field] for field in fields]) for name, fields in self.target_fields.items()]

    def option_lines(self):
        """The options as COMPONENT.KEY=VALUE lines: the text box's and the "Restore into …"
        fields' (a key given in both is refused)."""
        lines = [line.strip() for line in self.cleaned_data["options"].splitlines() if line.strip()]
        given = {line.partition("=")[0].strip() for line in lines}
        for fields in self.target_fields.values():
            for field in fields:
                value = self.cleaned_data.get(field, "").strip()
                key = self.fields[field].label
                if value and key in given:
                    raise InvalidOption(f"Restore option {key} is given twice (in the options box and in "
                                        "“Restore into …”); give it once.")
                if value:
                    lines.append(f"{key}={value}")
        return lines

    def restore_options(self):
        return restores.parse_option_assignments(self.option_lines())


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
