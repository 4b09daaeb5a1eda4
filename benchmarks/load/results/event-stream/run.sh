#!/usr/bin/env bash
# Tandem under load with and without the event stream (Rasa → RabbitMQ → consumer on the same machine).
set -euo pipefail
cd /work/main
. scripts/env.sh
OUT=benchmarks/load/results/event-stream
for round in 1 2; do
  env -u EVENT_BROKER_URL EVENT_BROKER_URL= .venv/bin/python -m benchmarks.load.run --only tandem --sessions "10 100" \
    --no-gateway-levels --single-turns 10 --no-progress --out $OUT/off-$round/results.json
  Q=tandem-bench-stream-$round-$RANDOM
  DB=/tmp/bench-stream-$round.db; rm -f $DB
  DATABASE_URL=sqlite:///$DB .venv/bin/python -m tandem.cli migrate
  DATABASE_URL=sqlite:///$DB EVENT_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/%2F EVENT_BROKER_QUEUE=$Q \
    .venv/bin/python -m tandem.cli analytics consume > /tmp/work/bench-consumer-$round.log 2>&1 &
  CONSUMER=$!
  EVENT_BROKER_URL=amqp://guest:guest@127.0.0.1:5672/%2F EVENT_BROKER_QUEUE=$Q .venv/bin/python -m benchmarks.load.run \
    --only tandem --sessions "10 100" --no-gateway-levels --single-turns 10 --no-progress --out $OUT/on-$round/results.json
  sleep 5
  kill $CONSUMER; wait $CONSUMER || true
  .venv/bin/python - "$DB" "$Q" <<'PY' > $OUT/on-$round/consumer.json
import json, sqlite3, sys, pika
db = sqlite3.connect(sys.argv[1])
events = db.execute("select count(*) from analytics_events").fetchone()[0]
sessions = db.execute("select count(*) from analytics_sessions").fetchone()[0]
ch = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F")).channel()
left = ch.queue_declare(sys.argv[2], durable=True, passive=True).method.message_count
ch.queue_delete(sys.argv[2])
print(json.dumps({"events_stored": events, "sessions_stored": sessions, "messages_left_in_queue": left}))
PY
done
echo done
