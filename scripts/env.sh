# Defaults for the embedded mode (SQLite, in-memory lock store, no LLM). Sourced by the run and
# test scripts; anything already set in the environment (or .env) wins.
if [ -f .env ]; then set -a; . ./.env; set +a; fi
mkdir -p var
: "${DATABASE_URL:=sqlite:///var/tandem.db}"
: "${ACTION_SERVER_URL:=http://127.0.0.1:5055/webhook}"
: "${TRACKER_DB_DIALECT:=sqlite}"
: "${TRACKER_DB_URL:=sqlite:///var/rasa_tracker.db}"
: "${LOCK_STORE_TYPE:=in_memory}"
: "${LOCK_STORE_HOST:=127.0.0.1}"
: "${LOCK_STORE_PORT:=6379}"
: "${LOCK_STORE_DB:=1}"
: "${RASA_PORT:=5005}"
: "${ACTION_PORT:=5055}"
: "${ACTION_METRICS_PORT:=9105}"
export DATABASE_URL ACTION_SERVER_URL TRACKER_DB_DIALECT TRACKER_DB_URL LOCK_STORE_TYPE \
  LOCK_STORE_HOST LOCK_STORE_PORT LOCK_STORE_DB RASA_PORT ACTION_PORT ACTION_METRICS_PORT
# No telemetry or error reports leave the machine; quieter TensorFlow and SQLAlchemy 1.4.
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 SQLALCHEMY_SILENCE_UBER_WARNING=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
