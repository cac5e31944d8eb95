#!/usr/bin/env bash
# Install the Debian packages a target needs, only when missing.
#   ensure-system.sh run    client tools the app calls (pg_dump, zstd, ...)
#   ensure-system.sh test   plus the servers the tests talk to
set -euo pipefail
target="${1:-run}"
packages=(python3-venv postgresql-client zstd redis-tools)
if [ "$target" = test ]; then
  packages+=(postgresql redis-server chromium age curl jq)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
