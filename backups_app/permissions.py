"""The permissions the admin and the API check, spelled once. Django creates add/change/delete/
view for each model; download and restore are our own (Backup.Meta.permissions)."""

VIEW_BACKUP = "backups_app.view_backup"
ADD_BACKUP = "backups_app.add_backup"  # take a backup, queue an offsite copy
CHANGE_BACKUP = "backups_app.change_backup"  # verify, pin, unpin, rehearse
DELETE_BACKUP = "backups_app.delete_backup"  # delete, prune
DOWNLOAD_BACKUP = "backups_app.download_backup"
RESTORE_BACKUP = "backups_app.restore_backup"
VIEW_RESTORE = "backups_app.view_restore"
VIEW_ARTIFACT = "backups_app.view_backupartifact"  # the artifacts and checksums on a backup's page
VIEW_VERIFICATION = "backups_app.view_verification"
VIEW_AUDIT = "backups_app.view_auditevent"
VIEW_LOCK = "backups_app.view_operationlock"
