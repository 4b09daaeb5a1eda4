#!/usr/bin/env bash
# `make run`: set up, migrate and seed, train if needed, start the action server and the Rasa
# server, and say how to chat. Ctrl-C stops everything this script started.
#   scripts/run.sh           servers in the background of this terminal, REST channel on :5005
#   scripts/run.sh --shell   action server + `rasa shell` in this terminal
#   PIPELINE=diet scripts/run.sh   serve the DIET pipeline's model (models/tandem-diet.tar.gz)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
. scripts/pipeline.sh  # PIPELINE → MODEL (config.yml → models/tandem.tar.gz unless PIPELINE=diet)
export PIPELINE

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
# The embedded demo: the schedule plus the public demo customers and bookings of the README.
.venv/bin/python -m tandem.cli seed --demo
bash scripts/train.sh

mkdir -p var/log
# Secrets of the internal ports, generated once per checkout and kept in var/secrets.env (mode 600,
# ignored by git; never printed). Anything already set in the environment (or .env) wins.
if [ -f var/secrets.env ]; then set -a; . var/secrets.env; set +a; fi
for name in RASA_API_TOKEN ACTION_SERVER_TOKEN ACTION_METRICS_TOKEN; do
  if [ -z "${!name:-}" ]; then
    value=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(32))')
    (umask 077; echo "$name=$value" >>var/secrets.env)
    printf -v "$name" '%s' "$value"
    echo "==> $name was not set; generated one in var/secrets.env"
  fi
done
export RASA_API_TOKEN ACTION_SERVER_TOKEN ACTION_METRICS_TOKEN
if [ -n "${LLM_MODEL:-}" ]; then
  echo "==> fallback mode: LLM ($LLM_MODEL at ${LLM_BASE_URL:-https://api.openai.com/v1}), grounded in knowledge/"
else
  echo "==> fallback mode: no LLM configured (LLM_MODEL unset): knowledge-base retrieval, clarification, human handoff"
fi
echo "==> starting the action server on 127.0.0.1:$ACTION_PORT (log: var/log/actions.log)"
.venv/bin/python -m actions.server --host 127.0.0.1 --port "$ACTION_PORT" >var/log/actions.log 2>&1 &
pids+=($!)
wait_for "action server" "http://127.0.0.1:$ACTION_PORT/health" 60 "${pids[-1]}"

if [ "${1:-}" = "--shell" ]; then
  # rasa shell serves its own REST channel for the terminal: on loopback, for this session only.
  .venv-rasa/bin/rasa shell --model "$MODEL" --endpoints endpoints.yml \
    --interface 127.0.0.1 --port "$RASA_PORT"
  exit 0
fi

echo "==> starting the Rasa server on 127.0.0.1:$RASA_PORT with $MODEL (log: var/log/rasa.log)"
.venv-rasa/bin/rasa run --model "$MODEL" --endpoints endpoints.yml \
  --credentials credentials.yml --enable-api --auth-token="$RASA_API_TOKEN" \
  --interface 127.0.0.1 --port "$RASA_PORT" >var/log/rasa.log 2>&1 &
pids+=($!)
wait_for "Rasa server" "http://127.0.0.1:$RASA_PORT/" 180 "${pids[-1]}"

: "${GATEWAY_PORT:=8000}"
echo "==> starting the website gateway on 127.0.0.1:$GATEWAY_PORT (log: var/log/gateway.log)"
RASA_URL="http://127.0.0.1:$RASA_PORT" RASA_API_TOKEN="$RASA_API_TOKEN" \
  .venv/bin/python -m tandem.gateway --host 127.0.0.1 --port "$GATEWAY_PORT" >var/log/gateway.log 2>&1 &
pids+=($!)
wait_for "gateway" "http://127.0.0.1:$GATEWAY_PORT/healthz" 30 "${pids[-1]}"

: "${EXPIRE_HOLDS_EVERY_SECONDS:=60}"
echo "==> releasing expired seat holds every ${EXPIRE_HOLDS_EVERY_SECONDS} s (log: var/log/expire-holds.log)"
.venv/bin/python -m tandem.cli expire-holds --every "$EXPIRE_HOLDS_EVERY_SECONDS" >var/log/expire-holds.log 2>&1 &
pids+=($!)

cat <<MSG

  Andaman Air assistant is running.
    Website chat (demo page): http://127.0.0.1:$GATEWAY_PORT/
    Chat from a terminal through the gateway (a bearer session, then one message):
      T=\$(curl -s -X POST http://127.0.0.1:$GATEWAY_PORT/api/v1/session -H 'Content-Type: application/json' \\
          -d '{"mode": "bearer"}' | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])')
      curl -s -X POST http://127.0.0.1:$GATEWAY_PORT/api/v1/messages -H "Authorization: Bearer \$T" \\
        -H 'Content-Type: application/json' -d '{"text": "hello"}'
    Or in a terminal (with the servers stopped): make shell
    Rasa's HTTP API (localhost only; tokens in var/secrets.env): http://127.0.0.1:$RASA_PORT/status?token=\$RASA_API_TOKEN
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
