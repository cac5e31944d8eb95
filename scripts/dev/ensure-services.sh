#!/usr/bin/env bash
# Start the PostgreSQL and Redis servers the tests use (127.0.0.1:5432 trust auth as postgres,
# 127.0.0.1:6379) when they are not running. initdb/pg_ctl refuse root, so they run as postgres.
set -euo pipefail
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  version="$(ls /etc/postgresql 2>/dev/null | sort -n | tail -1)"
  if [ -z "$version" ]; then
    version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
    $SUDO pg_createcluster "$version" main
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || \
    $SUDO runuser -u postgres -- pg_ctlcluster "$version" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -w -Atc "select 1" >/dev/null 2>&1; then
  # A stock cluster asks for passwords over TCP; the tests use trust on loopback only.
  hba="$($SUDO runuser -u postgres -- psql -Atc 'show hba_file')"
  $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  $SUDO runuser -u postgres -- psql -qc 'select pg_reload_conf()' >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
