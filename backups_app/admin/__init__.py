"""The Django admin is the staff console. One module per model admin (registered on import):
backups (history, Back up now, download, verify, pin, rehearse, offsite, retention), restores
(the plan → typed confirmation → progress flow and the restore history), verifications, audit
log, locks (see and break stale ones), API tokens and django-q2 schedules; ``base`` holds what
the run admins share and ``forms`` the forms. Views only parse, authorise and call services."""

from backups_app.admin import audit, backups, locks, restores, schedules, tokens, verifications  # noqa: F401
