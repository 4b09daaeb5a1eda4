#!/usr/bin/env bash
# `make run`: set up, migrate and seed, train if needed, start the action server and the Rasa
# server, and say how to chat. Ctrl-C stops everything this script started.
#   scripts/run.sh           servers in the background of this terminal, REST channel on :5005
#   scripts/run.sh --shell   action server + `rasa shell` in this terminal
#   PIPELINE=diet scripts/run.sh   serve the DIET pipeline's model (models/tandem-diet.tar.gz)
# Production mode (scripts/env.sh): DATABASE_URL=postgresql+psycopg://... and REDIS_URL=redis://...
# put the business data and Rasa's tracker in PostgreSQL and the locks in Redis; then
#   RASA_REPLICAS=N     N Rasa servers on RASA_PORT, RASA_PORT+1, ... (the gateway routes each
#                       conversation to one of them: docs/production.md)
#   ACTION_REPLICAS=M   M action servers on ACTION_PORT, ACTION_PORT+1, ... (metrics on
#                       ACTION_METRICS_PORT+i); Rasa replica i calls action server i mod M
# In either mode EVENT_BROKER_URL=amqp://user:password@host:5672/vhost streams Rasa's events to
# RabbitMQ (queue EVENT_BROKER_QUEUE) and starts the analytics consumer that reads them.
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
# Ctrl-C or a TERM ends the script too (the supervisor below would otherwise start them again).
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

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

: "${RASA_REPLICAS:=1}" "${ACTION_REPLICAS:=1}"
for name in RASA_REPLICAS ACTION_REPLICAS; do
  if ! [[ "${!name}" =~ ^[1-9][0-9]*$ ]]; then
    echo "ERROR: $name must be a whole number ≥ 1, not '${!name}'" >&2; exit 2
  fi
done
if [ "$RASA_REPLICAS" -gt 1 ] && [ "$LOCK_STORE_TYPE" = in_memory ]; then
  echo "ERROR: RASA_REPLICAS=$RASA_REPLICAS needs a shared lock store: set DATABASE_URL (PostgreSQL) and" \
    "REDIS_URL (production mode), or LOCK_STORE_TYPE=tandem_rasa.lock_store.AtomicRedisLockStore" >&2
  exit 2
fi
redact() { printf '%s' "$1" | sed -E 's#//[^@/]*@#//***@#'; }
echo "==> mode: $TANDEM_MODE; database: ${DATABASE_URL%%://*} ($(redact "$DATABASE_URL"))"
echo "==> Rasa tracker store: $TRACKER_DB_DIALECT ($(redact "$TRACKER_DB_URL")); lock store: $LOCK_STORE_TYPE"
if [ -n "$EVENT_BROKER_URL" ]; then
  event_stream="RabbitMQ ($(redact "$EVENT_BROKER_URL")), queue $EVENT_BROKER_QUEUE, read by the analytics consumer"
else
  event_stream="off (EVENT_BROKER_URL empty)"
fi
echo "==> event stream: $event_stream"
.venv/bin/python -m tandem.cli migrate
# The embedded demo: the schedule plus the public demo customers and bookings of the README.
.venv/bin/python -m tandem.cli seed --demo
bash scripts/train.sh

mkdir -p var/log
# Secrets of the internal ports, generated once per checkout and kept in var/secrets.env (mode 600,
# ignored by git; never printed). Anything already set in the environment (or .env) wins.
if [ -f var/secrets.env ]; then set -a; . var/secrets.env; set +a; fi
for name in RASA_API_TOKEN ACTION_SERVER_TOKEN ACTION_METRICS_TOKEN PROCESS_METRICS_TOKEN; do
  if [ -z "${!name:-}" ]; then
    value=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(32))')
    (umask 077; echo "$name=$value" >>var/secrets.env)
    printf -v "$name" '%s' "$value"
    echo "==> $name was not set; generated one in var/secrets.env"
  fi
done
export RASA_API_TOKEN ACTION_SERVER_TOKEN ACTION_METRICS_TOKEN PROCESS_METRICS_TOKEN
if [ -n "${LLM_MODEL:-}" ]; then
  echo "==> fallback mode: LLM ($LLM_MODEL at ${LLM_BASE_URL:-https://api.openai.com/v1}), grounded in knowledge/"
else
  echo "==> fallback mode: no LLM configured (LLM_MODEL unset): knowledge-base retrieval, clarification, human handoff"
fi
# Every server is supervised (scripts/supervise.sh): one that exits after it came up is started
# again (the others keep serving; with replicas the gateway routes around a dead one meanwhile).
. scripts/supervise.sh
rm -f var/log/rasa*.log var/log/actions*.log var/log/gateway.log var/log/expire-holds.log \
  var/log/analytics.log var/log/process-exporter.log  # this run's logs only
action_log() { if [ "$ACTION_REPLICAS" -gt 1 ]; then echo "var/log/actions-$1.log"; else echo var/log/actions.log; fi; }
rasa_log() { if [ "$RASA_REPLICAS" -gt 1 ]; then echo "var/log/rasa-$1.log"; else echo var/log/rasa.log; fi; }
start_actions() {  # start_actions I: action server I on ACTION_PORT+I (metrics on ACTION_METRICS_PORT+I)
  start "actions:$1" "$(action_log "$1")" env ACTION_METRICS_PORT=$((ACTION_METRICS_PORT + $1)) \
    .venv/bin/python -m actions.server --host 127.0.0.1 --port "$((ACTION_PORT + $1))"
}
start_rasa() {  # start_rasa I: Rasa replica I on RASA_PORT+I, calling action server I mod M
  local action_url=$ACTION_SERVER_URL fallbacks=${ACTION_SERVER_FALLBACK_URLS:-} j
  if [ "$ACTION_REPLICAS" -gt 1 ]; then
    # Its own action server first; a call that never reached it goes to the next ones
    # (tandem_rasa/action_calls.py), so one action server restarting fails no turn.
    action_url="http://127.0.0.1:$((ACTION_PORT + $1 % ACTION_REPLICAS))/webhook" fallbacks=
    for ((j = 1; j < ACTION_REPLICAS; j++)); do
      fallbacks+="${fallbacks:+,}http://127.0.0.1:$((ACTION_PORT + ($1 + j) % ACTION_REPLICAS))/webhook"
    done
  fi
  # TensorFlow's oneDNN kernels off for serving: 155 MiB less RSS per Rasa process at the same
  # turns/s (benchmarks/load/PROFILE.md); training keeps TensorFlow's default.
  start "rasa:$1" "$(rasa_log "$1")" env TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-0}" \
    ACTION_SERVER_URL="$action_url" ACTION_SERVER_FALLBACK_URLS="$fallbacks" \
    .venv-rasa/bin/rasa run --model "$MODEL" --endpoints endpoints.yml \
    --credentials credentials.yml --enable-api --auth-token="$RASA_API_TOKEN" \
    --interface 127.0.0.1 --port "$((RASA_PORT + $1))"
}
rasa_urls=()
for ((i = 0; i < RASA_REPLICAS; i++)); do rasa_urls+=("http://127.0.0.1:$((RASA_PORT + i))"); done
: "${GATEWAY_PORT:=8000}"
start_gateway() {
  # Every replica, comma-separated: the gateway routes each conversation to one (rendezvous hashing).
  start gateway var/log/gateway.log env RASA_URL="$(IFS=,; echo "${rasa_urls[*]}")" RASA_API_TOKEN="$RASA_API_TOKEN" \
    .venv/bin/python -m tandem.gateway --host 127.0.0.1 --port "$GATEWAY_PORT"
}
: "${EXPIRE_HOLDS_EVERY_SECONDS:=60}"
start_expire_holds() {
  start expire-holds var/log/expire-holds.log \
    .venv/bin/python -m tandem.cli expire-holds --every "$EXPIRE_HOLDS_EVERY_SECONDS"
}
start_analytics() {
  # Reads Rasa's events from RabbitMQ (EVENT_BROKER_URL, EVENT_BROKER_QUEUE; scripts/env.sh).
  start analytics var/log/analytics.log .venv/bin/python -m tandem.cli analytics consume
}
start_process_exporter() {
  # Rasa OSS has no /metrics: its CPU and memory (and the action servers') read from /proc, on
  # 127.0.0.1:PROCESS_METRICS_PORT for bearers of PROCESS_METRICS_TOKEN. Each server is found by the
  # end of its command line, so a supervised restart (a new PID) is found again.
  local args=() i
  for ((i = 0; i < RASA_REPLICAS; i++)); do
    args+=(--process "rasa-$i=cmdline:--interface 127.0.0.1 --port $((RASA_PORT + i))")
  done
  for ((i = 0; i < ACTION_REPLICAS; i++)); do
    args+=(--process "actions-$i=cmdline:actions.server --host 127.0.0.1 --port $((ACTION_PORT + i))")
  done
  start process-exporter var/log/process-exporter.log .venv/bin/python -m tandem.process_exporter "${args[@]}"
}
restart() {  # restart ROLE
  case $1 in
    actions:*) start_actions "${1#actions:}" ;;
    rasa:*) start_rasa "${1#rasa:}" ;;
    gateway) start_gateway ;;
    expire-holds) start_expire_holds ;;
    analytics) start_analytics ;;
    process-exporter) start_process_exporter ;;
  esac
}

for ((i = 0; i < ACTION_REPLICAS; i++)); do
  echo "==> starting action server $i on 127.0.0.1:$((ACTION_PORT + i)) (log: $(action_log "$i"))"
  start_actions "$i"
done
for ((i = 0; i < ACTION_REPLICAS; i++)); do
  wait_for "action server $i" "http://127.0.0.1:$((ACTION_PORT + i))/health" 60 "${pids[$i]}"
done


if [ "${1:-}" = "--shell" ]; then
  # rasa shell serves its own REST channel for the terminal: on loopback, for this session only.
  .venv-rasa/bin/rasa shell --model "$MODEL" --endpoints endpoints.yml \
    --interface 127.0.0.1 --port "$RASA_PORT"
  exit 0
fi

for ((i = 0; i < RASA_REPLICAS; i++)); do
  echo "==> starting Rasa server $i on ${rasa_urls[$i]#http://} with $MODEL (log: $(rasa_log "$i"))"
  start_rasa "$i"
done
for ((i = 0; i < RASA_REPLICAS; i++)); do  # they load their models side by side
  wait_for "Rasa server $i" "${rasa_urls[$i]}/" $((180 * RASA_REPLICAS)) "${pids[$((ACTION_REPLICAS + i))]}"
done

echo "==> starting the website gateway on 127.0.0.1:$GATEWAY_PORT (log: var/log/gateway.log)"
start_gateway
wait_for "gateway" "http://127.0.0.1:$GATEWAY_PORT/healthz" 30 "${pids[-1]}"

echo "==> releasing expired seat holds every ${EXPIRE_HOLDS_EVERY_SECONDS} s (log: var/log/expire-holds.log)"
start_expire_holds
if [ -n "$EVENT_BROKER_URL" ]; then
  # After the Rasa servers: they declare the durable queue when RabbitMQ is reachable (and keep the
  # events in a bounded buffer while it is not). The queue keeps them while the consumer restarts.
  echo "==> reading Rasa's events from RabbitMQ queue $EVENT_BROKER_QUEUE (log: var/log/analytics.log)"
  start_analytics
fi
if [ -n "${PROCESS_METRICS_PORT:-}" ]; then
  echo "==> exporting the servers' CPU and memory on 127.0.0.1:$PROCESS_METRICS_PORT (log: var/log/process-exporter.log)"
  start_process_exporter
  for ((i = 0; i < 40; i++)); do  # answering (401 without the token, which is never put on a command line)
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PROCESS_METRICS_PORT/metrics")" = 401 ] && break
    sleep 0.5
  done
fi

cat <<MSG

  Andaman Air assistant is running.
    Mode: $TANDEM_MODE; Rasa replicas: $RASA_REPLICAS (${rasa_urls[*]}); action servers: $ACTION_REPLICAS
    Event stream: $event_stream
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
supervise
