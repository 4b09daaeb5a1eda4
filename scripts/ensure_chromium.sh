#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed for the browser tests (tests/browser). Playwright's own
# browser download cannot work on our machines, so the tests launch the system browser by path.
#   scripts/ensure_chromium.sh        installs it when missing (needs root), otherwise says what to do
# CHROMIUM_PATH overrides the path the tests use (default /usr/bin/chromium).
set -euo pipefail
chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  echo "==> chromium: $("$chromium" --version 2>/dev/null || echo "$chromium")"
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing Debian's chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-noto-color-emoji fonts-thai-tlwg >/dev/null
  if [ -x "$chromium" ]; then
    echo "==> chromium: $("$chromium" --version 2>/dev/null || echo "$chromium")"
    exit 0
  fi
  echo "ERROR: apt-get finished but $chromium is still missing" >&2
  exit 1
fi
cat >&2 <<MSG
ERROR: Chromium is not installed at $chromium, and this script can only install it as root on Debian.
  Install it yourself:   sudo apt-get update && sudo apt-get install -y chromium
  or point the tests at another Chromium:   export CHROMIUM_PATH=/path/to/chromium
MSG
exit 1
