#!/usr/bin/env bash
# Container entrypoint (see docs/docker.md).
#   web        migrate the app database, write the django-q2 schedules (BACKUP_SCHEDULE_*),
#              then serve with gunicorn on 0.0.0.0:$PORT (the default; GUNICORN_CMD_ARGS and
#              WEB_CONCURRENCY tune it, see the Dockerfile)
#   runserver  migrate, then Django's development server on 0.0.0.0:$PORT (debugging only)
#   worker     the django-q2 worker: python manage.py qcluster
#   anything else runs as given: scripts/backup/backup.sh, python manage.py listbackups, ...
# Only the web server migrates; docker-compose.yml starts the worker once web is healthy, so
# two containers never migrate at the same time.
set -euo pipefail
cd "$(dirname "$0")/../.."
case "${1:-web}" in
  web)
    python manage.py migrate --noinput
    python manage.py setup_schedules
    exec gunicorn backupsite.wsgi:application
    ;;
  runserver)
    python manage.py migrate --noinput
    exec python manage.py runserver "0.0.0.0:${PORT:-8000}"
    ;;
  worker)
    exec python manage.py qcluster
    ;;
  *)
    exec "$@"
    ;;
esac
