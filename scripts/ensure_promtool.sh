#!/usr/bin/env bash
# Makes sure promtool is installed for the alert-rule tests (tests/unit/test_alert_rules.py runs
# `promtool check rules` and `promtool test rules` on ops/prometheus). It comes with Debian's
# `prometheus` package (the server is not started: the package is only for its promtool).
#   scripts/ensure_promtool.sh        installs it when missing (needs root), otherwise says what to do
# PROMTOOL overrides the path the tests use (default: promtool on PATH, else /usr/bin/promtool).
set -euo pipefail
promtool="${PROMTOOL:-$(command -v promtool || echo /usr/bin/promtool)}"
if [ -x "$promtool" ]; then
  echo "==> promtool: $("$promtool" --version 2>&1 | head -n 1 || echo "$promtool")"
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing Debian's prometheus for promtool (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d 101: the package's postinst must not start a Prometheus server on this machine.
  policy="/usr/sbin/policy-rc.d"
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
  fi
  status=0
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null || status=$?
  if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
  if [ "$status" -ne 0 ]; then
    echo "ERROR: apt-get install prometheus failed (exit $status)" >&2
    exit 1
  fi
  promtool="${PROMTOOL:-/usr/bin/promtool}"
  if [ -x "$promtool" ]; then
    echo "==> promtool: $("$promtool" --version 2>&1 | head -n 1 || echo "$promtool")"
    exit 0
  fi
  echo "ERROR: apt-get finished but $promtool is still missing" >&2
  exit 1
fi
cat >&2 <<MSG
ERROR: promtool is not installed at $promtool, and this script can only install it as root on Debian.
  Install it yourself:   sudo apt-get update && sudo apt-get install -y prometheus
  or point the tests at another promtool:   export PROMTOOL=/path/to/promtool
MSG
exit 1
