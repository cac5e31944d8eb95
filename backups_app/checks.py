"""System checks: configuration mistakes are reported at startup with a hint, not at 2 a.m."""

import shutil

from django.conf import settings
from django.core.checks import Error, Warning, register

from backups_app import components
from backups_app.errors import ConfigurationError
from backups_app.services import hooks


@register()
def check_sources(app_configs, **kwargs):
    errors = []
    components.reset()
    try:
        configured = components.all_components()
    except ConfigurationError as exc:
        return [Error(str(exc), hint="Fix BACKUP_SOURCES or the environment variables it is built from.",
                      id="backups.E001")]
    if not configured:
        errors.append(Warning("No backup source is configured.",
                              hint="Set POSTGRES_DB, UPLOADS_DIR, SQLITE_PATHS, ... (see README).", id="backups.W001"))
    for name, component in configured.items():
        for program, hint in component.required_programs():
            if not shutil.which(program):
                errors.append(Error(f"Source {name!r} needs {program}, which is not installed.", hint=hint,
                                    id="backups.E002"))
    return errors


@register()
def check_hooks(app_configs, **kwargs):
    unknown = sorted(set(settings.BACKUP_HOOKS) - set(hooks.STAGES))
    errors = []
    if unknown:
        errors.append(Error(f"BACKUP_HOOKS has unknown stage(s) {', '.join(unknown)}.",
                            hint=f"Use {', '.join(hooks.STAGES)}.", id="backups.E003"))
    for stage in hooks.STAGES:
        try:
            hooks.configured(stage)
        except ConfigurationError as exc:
            errors.append(Error(str(exc), hint='Example: {"pre_restore": [{"command": ["systemctl", "stop", '
                                              '"app-worker"], "on_error": "fail"}]}', id="backups.E004"))
    return errors


@register()
def check_storage(app_configs, **kwargs):
    if "backups" not in settings.STORAGES:
        return [Error('STORAGES has no "backups" entry.', hint="See backupsite/settings.py for the default.",
                      id="backups.E005")]
    return []
