#!/usr/bin/env bash
# `make run`: set up, migrate and seed, train if needed, start the action server and the Rasa
# server, and say how to chat. Ctrl-C stops everything this script started.
#   scripts/run.sh           servers in the background of this terminal, REST channel on :5005
#   scripts/run.sh --shell   action server + `rasa shell` in this terminal
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh

pids=()
cleanup() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    echo; echo "==> stopping (${pids[*]})"
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap cleanup INT TERM EXIT

wait_for() {  # wait_for NAME URL SECONDS PID
  local i
  for ((i = 0; i < $3 * 2; i++)); do
    if curl -fs -o /dev/null --max-time 2 "$2"; then return 0; fi
    kill -0 "$4" 2>/dev/null || { echo "ERROR: $1 exited; see var/log/" >&2; exit 1; }
    sleep 0.5
  done
  echo "ERROR: $1 did not answer at $2 within $3 s; see var/log/" >&2
  exit 1
}

echo "==> database: ${DATABASE_URL%%://*} ($(echo "$DATABASE_URL" | sed -E 's#//[^@/]*@#//***@#'))"
.venv/bin/python -m tandem.cli migrate
.venv/bin/python -m tandem.cli seed
bash scripts/train.sh

mkdir -p var/log
if [ -n "${LLM_MODEL:-}" ]; then
  echo "==> fallback mode: LLM ($LLM_MODEL at ${LLM_BASE_URL:-https://api.openai.com/v1}), grounded in knowledge/"
else
  echo "==> fallback mode: no LLM configured (LLM_MODEL unset): knowledge-base retrieval, clarification, human handoff"
fi
echo "==> starting the action server on 127.0.0.1:$ACTION_PORT (log: var/log/actions.log)"
.venv/bin/python -m rasa_sdk --actions actions --port "$ACTION_PORT" >var/log/actions.log 2>&1 &
pids+=($!)
wait_for "action server" "http://127.0.0.1:$ACTION_PORT/health" 60 "${pids[-1]}"

if [ "${1:-}" = "--shell" ]; then
  .venv-rasa/bin/rasa shell --model models/tandem.tar.gz --endpoints endpoints.yml
  exit 0
fi

if [ -z "${RASA_API_TOKEN:-}" ]; then
  RASA_API_TOKEN=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))')
  echo "==> RASA_API_TOKEN was not set; generated one for this run: $RASA_API_TOKEN"
fi
echo "==> starting the Rasa server on 127.0.0.1:$RASA_PORT (log: var/log/rasa.log)"
.venv-rasa/bin/rasa run --model models/tandem.tar.gz --endpoints endpoints.yml \
  --credentials credentials.yml --enable-api --auth-token "$RASA_API_TOKEN" \
  --interface 127.0.0.1 --port "$RASA_PORT" >var/log/rasa.log 2>&1 &
pids+=($!)
wait_for "Rasa server" "http://127.0.0.1:$RASA_PORT/" 180 "${pids[-1]}"

: "${GATEWAY_PORT:=8000}"
echo "==> starting the website gateway on 127.0.0.1:$GATEWAY_PORT (log: var/log/gateway.log)"
RASA_URL="http://127.0.0.1:$RASA_PORT" RASA_API_TOKEN="$RASA_API_TOKEN" \
  .venv/bin/python -m tandem.gateway --host 127.0.0.1 --port "$GATEWAY_PORT" >var/log/gateway.log 2>&1 &
pids+=($!)
wait_for "gateway" "http://127.0.0.1:$GATEWAY_PORT/healthz" 30 "${pids[-1]}"

cat <<MSG

  Andaman Air assistant is running.
    Website chat (demo page): http://127.0.0.1:$GATEWAY_PORT/
    Chat over REST:
      curl -s -X POST http://127.0.0.1:$RASA_PORT/webhooks/rest/webhook \\
        -H 'Content-Type: application/json' -d '{"sender": "me", "message": "hello"}'
    Or in a terminal (with the servers stopped): make shell
    HTTP API (localhost only): http://127.0.0.1:$RASA_PORT/status?token=\$RASA_API_TOKEN
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
