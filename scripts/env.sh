# Defaults for the embedded mode (SQLite, in-memory lock store, no LLM) and the production mode.
# Sourced by the run and test scripts; anything already set in the environment (or .env) wins.
if [ -f .env ]; then set -a; . ./.env; set +a; fi
mkdir -p var
# Production mode, one switch away: DATABASE_URL on PostgreSQL and REDIS_URL set. Rasa's tracker
# store then lives in the same PostgreSQL database (its own `events` table) and Rasa's turns are
# serialised by the atomic Redis lock store, so several Rasa replicas can serve (RASA_REPLICAS).
TANDEM_MODE=embedded
case "${DATABASE_URL:-}" in
  postgresql*)
    if [ -n "${REDIS_URL:-}" ]; then
      TANDEM_MODE=production
      : "${TRACKER_DB_DIALECT:=postgresql}"
      # Rasa's SQLAlchemy 1.4 speaks psycopg2 (postgresql://); the app's driver suffix is dropped.
      : "${TRACKER_DB_URL:=$(printf '%s' "$DATABASE_URL" | sed -E 's#^postgresql\+[a-z0-9]+://#postgresql://#')}"
      : "${LOCK_STORE_TYPE:=tandem_rasa.lock_store.AtomicRedisLockStore}"
      : "${LOCK_STORE_HOST:=$REDIS_URL}"
    fi
    ;;
esac
export TANDEM_MODE
: "${DATABASE_URL:=sqlite:///var/tandem.db}"
: "${TRACKER_DB_DIALECT:=sqlite}"
: "${TRACKER_DB_URL:=sqlite:///var/rasa_tracker.db}"
: "${LOCK_STORE_TYPE:=in_memory}"
: "${LOCK_STORE_HOST:=127.0.0.1}"
: "${LOCK_STORE_PORT:=6379}"
: "${LOCK_STORE_DB:=1}"
: "${RASA_PORT:=5005}"
: "${ACTION_PORT:=5055}"
: "${ACTION_SERVER_URL:=http://127.0.0.1:$ACTION_PORT/webhook}"
: "${ACTION_METRICS_PORT:=9105}"
# Rasa's event stream to RabbitMQ for analytics (endpoints.yml: event_broker): off while the URL is
# empty (the default, in both modes); e.g. amqp://user:password@127.0.0.1:5672/%2F. Defined even
# when empty: Rasa refuses an endpoints.yml whose ${VAR} is not set.
: "${EVENT_BROKER_URL:=}"
: "${EVENT_BROKER_QUEUE:=tandem-analytics}"
export DATABASE_URL ACTION_SERVER_URL TRACKER_DB_DIALECT TRACKER_DB_URL LOCK_STORE_TYPE \
  LOCK_STORE_HOST LOCK_STORE_PORT LOCK_STORE_DB RASA_PORT ACTION_PORT ACTION_METRICS_PORT \
  EVENT_BROKER_URL EVENT_BROKER_QUEUE
# No telemetry or error reports leave the machine; quieter TensorFlow and SQLAlchemy 1.4.
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 SQLALCHEMY_SILENCE_UBER_WARNING=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
