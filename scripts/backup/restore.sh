#!/usr/bin/env bash
# Restore a backup: a thin wrapper over `python manage.py restore` (checksums verified, safety
# backup first, automatic rollback on failure). Non-zero exit on any failure or refusal.
set -euo pipefail
# shellcheck source=scripts/backup/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: restore.sh [--dry-run [--json]] [--component NAME]... [--force] [--set COMPONENT.KEY=VALUE]... BACKUP

  BACKUP               backup_YYYYMMDD_HHMMSS, "latest", or the backup's folder under BACKUP_DIR.
  --dry-run            verify checksums and print the plan: per component what happens, its counts
                       in the backup vs live now (≠ marks a difference); change nothing.
  --json               with --dry-run: the plan as JSON instead of the table.
  --component NAME     restore only this component (repeatable; also --components a,b).
                       Default: every component in the backup.
  --force, --yes       do not ask for confirmation. Without it the restore asks you to type the
                       backup id, and refuses when there is no terminal to ask on.
  --set C.KEY=VALUE    a restore option for one component, e.g. --set postgres.no_owner=true.
  --async              hand the restore to the django-q2 worker and return at once.

Configuration: environment variables, or KEY=VALUE lines in $BACKUP_CONFIG
(default: scripts/backup/config.env; see config.env.example).
USAGE
}

# The seed's runbooks pass the backup's folder; accept it only when it is in BACKUP_DIR, so a
# copy elsewhere is never mistaken for the stored backup of the same name.
backup_id_of() {
  local given="${1%/}"
  case "$given" in
    */*) ;;
    *) echo "$given"; return ;;
  esac
  local folder backup_dir
  folder="$(cd "$(dirname "$given")" 2>/dev/null && pwd -P)" || folder=""
  backup_dir="$(cd "${BACKUP_DIR:-$PROJECT_ROOT/backups}" 2>/dev/null && pwd -P)" || backup_dir=""
  if [ -z "$folder" ] || [ "$folder" != "$backup_dir" ]; then
    echo "$1 is not a folder in BACKUP_DIR (${BACKUP_DIR:-$PROJECT_ROOT/backups}); pass a backup id" \
      "(restore.sh latest, or an id from: python manage.py listbackups)." >&2
    return 2
  fi
  basename "$given"
}

components=()
args=()
backup=""
while [ $# -gt 0 ]; do
  case "$1" in
    --component | --components | --set)
      [ $# -ge 2 ] || { echo "$1 needs a value." >&2; exit 2; }
      if [ "$1" = --set ]; then args+=(--set "$2"); else components+=("$2"); fi
      shift 2 ;;
    --component=* | --components=*) components+=("${1#*=}"); shift ;;
    --set=*) args+=("$1"); shift ;;
    --force | --yes) args+=(--yes); shift ;;
    --dry-run | --json | --async) args+=("$1"); shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "Unknown option: $1" >&2; usage >&2; exit 2 ;;
    *)
      [ -z "$backup" ] || { echo "Only one backup can be restored at a time (got $backup and $1)." >&2; exit 2; }
      backup="$1"; shift ;;
  esac
done
if [ -z "$backup" ]; then
  echo "Which backup? Pass a backup id or 'latest'." >&2
  usage >&2
  exit 2
fi
[ ${#components[@]} -eq 0 ] || args+=(--components "$(join_components "${components[@]}")")

load_config
backup_id="$(backup_id_of "$backup")" || exit 2
run_manage restore "${args[@]}" -- "$backup_id"
