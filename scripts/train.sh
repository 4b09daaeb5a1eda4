#!/usr/bin/env bash
# Trains the Rasa model only when config, domain or training data changed since the last one.
# The fingerprint covers every file that goes into the model; `make train FORCE=1` retrains.
# `make train PIPELINE=diet` trains config-diet.yml into models/tandem-diet.tar.gz (scripts/pipeline.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pipeline.sh
fingerprint=$(cat "$PIPELINE_CONFIG" domain.yml $(find data -name '*.yml' | LC_ALL=C sort) $(find tandem_nlu -name '*.py' | LC_ALL=C sort) tandem_rasa/policies.py requirements/rasa.lock.txt requirements/rasa-weights.txt | sha256sum | cut -c1-32)
if [ "${FORCE:-0}" != "1" ] && [ -f "$MODEL" ] && [ "$(cat "$MODEL_FINGERPRINT" 2>/dev/null)" = "$fingerprint" ]; then
  echo "==> model is up to date ($MODEL)"
  exit 0
fi
echo "==> training the model ($PIPELINE_CONFIG, domain or data changed); this takes a few minutes"
mkdir -p models
start=$(date +%s)
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 SQLALCHEMY_SILENCE_UBER_WARNING=1 \
  .venv-rasa/bin/rasa train \
  --config "$PIPELINE_CONFIG" --domain domain.yml --data data --out models \
  --fixed-model-name "$MODEL_NAME" --quiet
echo "$fingerprint" > "$MODEL_FINGERPRINT"
echo "==> trained $MODEL in $(( $(date +%s) - start )) s"
