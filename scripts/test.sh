#!/usr/bin/env bash
# `make test`: the whole suite from a clean checkout. Integration tests need PostgreSQL and
# Redis (TEST_POSTGRES_URL, TEST_REDIS_URL; defaults: the local servers) and fail without them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
echo "==> lint (ruff check, ruff format --check)"
.venv/bin/ruff check actions tandem tandem_nlu tandem_rasa tests benchmarks scripts
.venv/bin/ruff format --check actions tandem tandem_nlu tandem_rasa tests benchmarks scripts
echo "==> types (mypy: strict for tandem/, checked for actions/ and tandem_rasa/)"
.venv/bin/mypy --strict tandem
.venv/bin/mypy actions tandem_rasa
bash scripts/ensure_chromium.sh
bash scripts/ensure_promtool.sh
bash scripts/train.sh
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
