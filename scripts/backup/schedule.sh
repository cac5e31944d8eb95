#!/usr/bin/env bash
# Scheduled backups with the system cron, for hosts that prefer it to the django-q2 worker
# (`manage.py setup_schedules`). Use one or the other, not both.
#
#   schedule.sh install-cron   write $BACKUP_CRON_FILE (default /etc/cron.d/rag-backups; needs root)
#   schedule.sh status         show the installed jobs and the health checks
#   schedule.sh remove         delete the cron file
#   schedule.sh health-check   the checks of GET /api/system/health; exit 1 when unhealthy
#   schedule.sh daily|weekly|monthly|rehearsal   run one job now, as cron would
#
# Times come from BACKUP_SCHEDULE_DAILY/_WEEKLY/_MONTHLY/_REHEARSAL (cron syntax, the same settings
# as the django-q2 schedules; empty = no such job). Jobs run as $BACKUP_CRON_USER (default: you)
# and append to $BACKUP_CRON_LOG (default /var/log/rag-backups.log).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT_ROOT="$(cd "$HERE/../.." && pwd)"
CRON_FILE="${BACKUP_CRON_FILE:-/etc/cron.d/rag-backups}"
CRON_USER="${BACKUP_CRON_USER:-$(id -un)}"
CRON_LOG="${BACKUP_CRON_LOG:-/var/log/rag-backups.log}"
MARKER="# Installed by scripts/backup/schedule.sh; remove with: schedule.sh remove"

# The shared helpers of the backup scripts (config file loading, the project's Python).
# shellcheck source=scripts/backup/lib.sh
. "$HERE/lib.sh"
load_config

manage() {
  cd "$PROJECT_ROOT"
  "$(project_python)" manage.py "$@"
}

JOBS=(daily weekly monthly rehearsal)
DAILY="${BACKUP_SCHEDULE_DAILY-0 2 * * *}"
WEEKLY="${BACKUP_SCHEDULE_WEEKLY-0 3 * * 0}"
MONTHLY="${BACKUP_SCHEDULE_MONTHLY-0 4 1 * *}"
REHEARSAL="${BACKUP_SCHEDULE_REHEARSAL-0 5 * * 0}"

when_of() {
  case "$1" in daily) echo "$DAILY" ;; weekly) echo "$WEEKLY" ;; monthly) echo "$MONTHLY" ;; rehearsal) echo "$REHEARSAL" ;; esac
}

install_cron() {
  local job when tmp
  for job in "${JOBS[@]}"; do
    when="$(when_of "$job")"
    if [ -n "$when" ] && [ "$(wc -w <<<"$when")" -ne 5 ]; then
      echo "Schedule for $job '$when' is not a 5-field cron expression (e.g. '0 2 * * *')." >&2
      exit 2
    fi
  done
  tmp="$(mktemp "$(dirname "$CRON_FILE")/.rag-backups.XXXXXX")"
  {
    echo "$MARKER"
    echo "SHELL=/bin/sh"
    for job in "${JOBS[@]}"; do
      when="$(when_of "$job")"
      [ -z "$when" ] || printf '%s %s %q %q >> %q 2>&1\n' "$when" "$CRON_USER" "$HERE/schedule.sh" "$job" "$CRON_LOG"
    done
    # Marks runs whose worker died as failed and frees their locks.
    printf '*/5 * * * * %s cd %q && %q manage.py sweepruns >> %q 2>&1\n' "$CRON_USER" "$PROJECT_ROOT" \
      "$(project_python)" "$CRON_LOG"
  } >"$tmp"
  chmod 0644 "$tmp"
  mv "$tmp" "$CRON_FILE"  # cron never reads a half-written file
  echo "Installed $CRON_FILE:"
  cat "$CRON_FILE"
}

case "${1:-}" in
  install-cron) install_cron ;;
  status)
    if [ -f "$CRON_FILE" ]; then echo "Cron jobs ($CRON_FILE):"; grep -v '^#' "$CRON_FILE"; else
      echo "No cron jobs installed ($CRON_FILE does not exist)."; fi
    manage backup_health || exit $?
    ;;
  remove)
    if [ -f "$CRON_FILE" ]; then
      grep -qxF "$MARKER" "$CRON_FILE" || { echo "$CRON_FILE was not written by schedule.sh; not removing it." >&2; exit 2; }
      rm -f "$CRON_FILE"
      echo "Removed $CRON_FILE."
    else
      echo "Nothing to remove ($CRON_FILE does not exist)."
    fi
    ;;
  health-check) manage backup_health ;;
  daily | weekly | monthly | rehearsal)
    echo "$(date -u +%FT%TZ) schedule.sh $1"
    manage run_scheduled "$1"
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
