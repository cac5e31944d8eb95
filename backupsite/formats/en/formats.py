"""The admin shows dates in the app's one format (backups_app/formatting.py), not "Feb. 4, 2026, noon"."""

from backups_app import formatting

DATETIME_FORMAT = formatting.DATETIME_FORMAT
SHORT_DATETIME_FORMAT = formatting.DATETIME_FORMAT
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
