#!/usr/bin/env bash
# Back up the configured sources: a thin wrapper over `python manage.py backup`.
# The backup id is the last line of stdout; progress goes to stderr; non-zero exit on failure.
set -euo pipefail
# shellcheck source=scripts/backup/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  cat <<'USAGE'
Usage: backup.sh [--component NAME]... [--description TEXT] [--async]

  --component NAME     back up only this source (repeatable; also --components a,b).
                       Default: every configured source.
  --description TEXT   stored with the backup.
  --include-uploads    accepted for the seed's scripts; upload folders are included by default.
  --async              hand the backup to the django-q2 worker and return at once.

Configuration: environment variables, or KEY=VALUE lines in $BACKUP_CONFIG
(default: scripts/backup/config.env; see config.env.example).
USAGE
}

components=()
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --component | --components)
      [ $# -ge 2 ] || { echo "$1 needs a value." >&2; exit 2; }
      components+=("$2"); shift 2 ;;
    --component=* | --components=*) components+=("${1#*=}"); shift ;;
    --description)
      [ $# -ge 2 ] || { echo "$1 needs a value." >&2; exit 2; }
      args+=(--description "$2"); shift 2 ;;
    --description=*) args+=("$1"); shift ;;
    --include-uploads | --async) args+=("$1"); shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "Unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ ${#components[@]} -eq 0 ] || args+=(--components "$(join_components "${components[@]}")")

load_config
run_manage backup "${args[@]}"
