# shellcheck shell=bash
# Shared by backup.sh and restore.sh (sourced, not run): find the project, load the optional
# configuration file and run `manage.py` with the project's Python. No eval, no shell strings.

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Load KEY=VALUE lines from $BACKUP_CONFIG, else scripts/backup/config.env when it exists.
# The file is read as data, never executed: no $(...), no $VAR expansion, one pair of quotes
# around a value is removed. Variables already set in the environment win over the file, so
# `POSTGRES_DB=other backup.sh` overrides it for one run. The same file works as a
# docker compose `env_file` (compose expands `$` in values unless they are single-quoted).
load_config() {
  local file="${BACKUP_CONFIG:-$PROJECT_ROOT/scripts/backup/config.env}"
  if [ ! -f "$file" ]; then
    if [ -n "${BACKUP_CONFIG:-}" ]; then
      echo "BACKUP_CONFIG=$BACKUP_CONFIG: no such file." >&2
      return 2
    fi
    return 0
  fi
  local line key value number=0
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line#export }"
    if [[ ! "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
      # The line itself is not shown: it may hold a password.
      echo "$file:$number: expected NAME=VALUE (a variable name, '=', the value; no spaces around '=')." >&2
      return 2
    fi
    key="${BASH_REMATCH[1]}"
    value="${BASH_REMATCH[2]}"
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value="${BASH_REMATCH[1]}"
    fi
    [ -n "${!key+set}" ] || export "$key=$value"
  done <"$file"
}

# The project's virtualenv when there is one (make run / make test create .venv), else python3
# (the Docker image installs the requirements into the system Python).
project_python() {
  if [ -x "$PROJECT_ROOT/.venv/bin/python" ]; then
    echo "$PROJECT_ROOT/.venv/bin/python"
  else
    echo python3
  fi
}

# exec, so manage.py's exit status is the script's exit status.
run_manage() {
  local python
  python="$(project_python)"
  exec "$python" "$PROJECT_ROOT/manage.py" "$@"
}

# "a,b" and "c" → "a,b,c" for --components.
join_components() {
  local IFS=,
  echo "$*"
}
