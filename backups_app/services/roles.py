"""The staff roles ``manage.py setup_roles`` creates: three groups, each with the rights of the one
before it plus its own. Made again from this table on every run, so it is idempotent and a right
removed here is removed from the group too."""

from django.contrib.auth.models import Group, Permission

from backups_app import permissions as p

VIEWER_RIGHTS = (p.VIEW_BACKUP, p.VIEW_ARTIFACT, p.VIEW_RESTORE, p.VIEW_VERIFICATION, p.VIEW_AUDIT, p.VIEW_LOCK)
OPERATOR_RIGHTS = VIEWER_RIGHTS + (p.ADD_BACKUP, p.CHANGE_BACKUP, p.DOWNLOAD_BACKUP)
RESTORER_RIGHTS = OPERATOR_RIGHTS + (p.RESTORE_BACKUP,)

ROLES = {
    "Backup viewers": VIEWER_RIGHTS,  # history, artifacts and their checksums, logs, audit
    "Backup operators": OPERATOR_RIGHTS,  # + back up now, verify, pin, download
    "Restorers": RESTORER_RIGHTS,  # + restore
}


def permission(dotted):
    app_label, codename = dotted.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def setup_roles():
    """Create or update the groups; returns {group name: "created" | "updated" | "unchanged"}."""
    outcome = {}
    for name, rights in ROLES.items():
        group, created = Group.objects.get_or_create(name=name)
        wanted = {permission(right) for right in rights}
        changed = set(group.permissions.all()) != wanted
        if changed:
            group.permissions.set(wanted)
        outcome[name] = "created" if created else "updated" if changed else "unchanged"
    return outcome


def groups_granting(dotted):
    """The names of the groups that hold this permission, for "ask to be added to ..."."""
    app_label, codename = dotted.split(".")
    return list(Group.objects.filter(permissions__content_type__app_label=app_label,
                                     permissions__codename=codename).order_by("name").values_list("name", flat=True))
