#!/usr/bin/env bash
# Container entrypoint (see docs/docker.md).
#   web        migrate the app database, then serve with gunicorn on :8000 (the default;
#              GUNICORN_CMD_ARGS and WEB_CONCURRENCY tune it, see the Dockerfile)
#   runserver  migrate, then Django's development server on :8000 (debugging only)
#   worker     the django-q2 worker: python manage.py qcluster
#   anything else runs as given: scripts/backup/backup.sh, python manage.py listbackups, ...
# Only the web server migrates; docker-compose.yml starts the worker once web is healthy, so
# two containers never migrate at the same time.
set -euo pipefail
cd /app
case "${1:-web}" in
  web)
    python manage.py migrate --noinput
    exec gunicorn backupsite.wsgi:application --bind 0.0.0.0:8000
    ;;
  runserver)
    python manage.py migrate --noinput
    exec python manage.py runserver 0.0.0.0:8000
    ;;
  worker)
    exec python manage.py qcluster
    ;;
  *)
    exec "$@"
    ;;
esac
