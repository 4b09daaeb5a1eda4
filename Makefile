# tandem: the Andaman Air support assistant. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

.PHONY: help install run shell train test lint validate bench-nlu-baseline bench-nlu bench-injection bench-pii bench-load clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install:  ## create the two pinned environments (.venv-rasa: Python 3.10 + Rasa; .venv: Python 3.11+)
	@bash scripts/setup.sh

run:  ## install, migrate, seed, train if needed, start the action server (5055) and Rasa (5005); PIPELINE=diet serves the DIET model
	@bash scripts/run.sh

shell:  ## chat in the terminal (rasa shell with the action server)
	@bash scripts/run.sh --shell

train: install  ## train the model if config, domain or data changed (FORCE=1 to retrain; PIPELINE=diet: config-diet.yml)
	@bash scripts/train.sh

test:  ## the whole suite: lint, unit, integration (PostgreSQL, Redis), Rasa validation, e2e
	@bash scripts/test.sh

lint: install  ## ruff (check and format) and mypy (strict for tandem/)
	@.venv/bin/ruff check actions tandem tandem_nlu tandem_rasa tests benchmarks scripts
	@.venv/bin/ruff format --check actions tandem tandem_nlu tandem_rasa tests benchmarks scripts
	@.venv/bin/mypy --strict tandem
	@.venv/bin/mypy actions tandem_rasa

validate: install  ## rasa data validate
	@.venv-rasa/bin/rasa data validate --config config.yml --domain domain.yml --data data

clean:  ## remove trained models and local databases (keeps the environments)
	rm -rf models var .pytest_cache

bench-nlu-baseline: install  ## NLU F1 on a held-out 20 % of the bot's data, training time, model size
	@.venv-rasa/bin/python -m benchmarks.nlu_baseline --full

# TEST=path/to/clinc_format.json scores another file (keys test/oos_test) with the thresholds tuned
# on val; PIPELINES="minilm sparse" limits the run (the stock pipeline alone trains for about an hour).
bench-nlu: install  ## CLINC150: train the candidate pipelines (if missing), tune on val, table + plots
	@.venv-rasa/bin/python -m benchmarks.clinc150.bench all $(if $(TEST),--test $(TEST),) $(if $(PIPELINES),--pipelines $(PIPELINES),)

bench-injection: install  ## prompt-injection corpus through the fallback chain, obedient model (results/injection.json)
	@.venv/bin/python -m benchmarks.security.injection

bench-pii: install  ## PII masking recall/precision per type on labelled presidio-research samples (results/pii.json)
	@.venv/bin/python -m benchmarks.security.pii

# SESSIONS="1 10 100" TURNS=5 DURATION=300 (cap per level, s) ONLY=stock|tandem PIPELINE=diet (tandem's model)
bench-load: train  ## stock `rasa init` bot vs tandem under load, one after the other (benchmarks/load/results/)
	@.venv/bin/python -m benchmarks.load.run $(if $(SESSIONS),--sessions "$(SESSIONS)",) $(if $(TURNS),--turns $(TURNS),) $(if $(DURATION),--duration $(DURATION),) $(if $(ONLY),--only $(ONLY),)
