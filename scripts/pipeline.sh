# The NLU pipeline chosen at training time, sourced by train.sh and run.sh:
#   PIPELINE unset or "minilm"  config.yml        → models/tandem.tar.gz        (the default)
#   PIPELINE=diet               config-diet.yml   → models/tandem-diet.tar.gz
# (any config-<name>.yml works the same way). Each model has its own fingerprint file, so
# switching pipelines never retrains or overwrites the other one.
PIPELINE=${PIPELINE:-minilm}
case "$PIPELINE" in
  minilm) PIPELINE_CONFIG=config.yml; MODEL_NAME=tandem; MODEL_FINGERPRINT=models/.fingerprint ;;
  *[!a-z0-9_-]*) echo "ERROR: PIPELINE=$PIPELINE: use a name like diet (config-diet.yml)" >&2; exit 2 ;;
  *) PIPELINE_CONFIG=config-$PIPELINE.yml; MODEL_NAME=tandem-$PIPELINE; MODEL_FINGERPRINT=models/.fingerprint-$PIPELINE ;;
esac
if [ ! -f "$PIPELINE_CONFIG" ]; then
  echo "ERROR: PIPELINE=$PIPELINE needs $PIPELINE_CONFIG (choices: minilm, diet)" >&2
  exit 2
fi
MODEL=models/$MODEL_NAME.tar.gz
