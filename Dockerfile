# The backup app: web (gunicorn) and worker (django-q2) from one image. See docs/docker.md.
FROM python:3.11-slim-bookworm

# pg_dump must be at least as new as the PostgreSQL server it backs up. Empty: Debian bookworm's
# client (15). A major version (e.g. 17) installs postgresql-client-17 from the PostgreSQL
# project's apt repository (PGDG, signing key shipped in Debian's postgresql-common).
ARG PG_CLIENT_VERSION=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/app/var \
    STATIC_ROOT=/app/static \
    BACKUP_DIR=/app/backups \
    BACKUP_SPOOL_DIR=/app/spool \
    PORT=8000 \
    GUNICORN_CMD_ARGS="--worker-class gthread --threads 4 --access-logfile - --no-control-socket"
# gunicorn listens on 0.0.0.0:$PORT. gthread: a long streamed download runs in a thread while
# the worker process keeps answering gunicorn's heartbeat (a sync worker would be killed after
# --timeout). WEB_CONCURRENCY sets the number of processes. No control socket: the home folder
# is read-only.

# Client tools the components call: pg_dump/pg_restore, zstd, age, redis-cli.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates zstd age redis-tools; \
    if [ -n "$PG_CLIENT_VERSION" ]; then \
        apt-get install -y --no-install-recommends postgresql-common; \
        /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y; \
        apt-get install -y --no-install-recommends "postgresql-client-$PG_CLIENT_VERSION"; \
    else \
        apt-get install -y --no-install-recommends postgresql-client; \
    fi; \
    rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

# The code stays root-owned (read-only for the app user); only runtime folders are writable.
# Its bytecode is compiled here: PYTHONDONTWRITEBYTECODE (and a read-only /app) would otherwise make
# every manage.py command compile the app's modules again (~0.1-0.2 s of each start-up).
COPY . .
RUN python -m compileall -q backups_app backupsite \
    && DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v0 \
    && mkdir -p /app/var /app/backups /app/spool \
    && chown app:app /app/var /app/backups /app/spool \
    && chmod 0700 /app/backups

USER app
EXPOSE 8000
ENTRYPOINT ["/app/scripts/docker/entrypoint.sh"]
CMD ["web"]
