"""The DIET pipeline (config-diet.yml, `make train PIPELINE=diet`): a supported alternative to the
default MiniLM pipeline. It trains on the bot's own domain and data (with 1-3 epochs instead of the
configured ones, so CI stays quick), and the trained model parses through Rasa's Agent: an intent
of the domain comes back, the RegexEntityExtractor still extracts booking references and flight
numbers. Runs in the Rasa environment (Python 3.10) as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.stack import RASA, ROOT

PYTHON = RASA.parent / "python"
# Few epochs for CI: the point is that the pipeline trains, is stored and parses, not its accuracy.
EPOCHS = {"DIETClassifier": 3, "ResponseSelector": 1, "tandem_rasa.policies.CachedTEDPolicy": 1}
TEXTS = [
    "what's the status of my booking K7XQ2P",
    "is flight AN 204 on time today",
    "i want to fly from bangkok to phuket next friday",
]


def _env(work: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "PYTHONPATH": str(ROOT),
        "RASA_CACHE_DIRECTORY": str(work / "rasa-cache"),  # never the project's cache
    }


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def test_diet_config_differs_from_the_default_only_in_the_intent_and_entity_models():
    default, diet = load("config.yml"), load("config-diet.yml")
    models = {"tandem_nlu.classifier.MiniLMIntentClassifier", "CRFEntityExtractor", "DIETClassifier"}
    shared = {"FallbackClassifier"}  # same component, thresholds tuned per classifier

    # the FAQ selector: Rasa's, or tandem_nlu's subclass that runs it only for faq turns (same training)
    selectors = {"tandem_nlu.selector.IntentGatedResponseSelector": "ResponseSelector"}

    def rest(config: dict) -> list[dict]:
        steps = [s for s in config["pipeline"] if s["name"] not in models | shared]
        return [{**s, "name": selectors.get(s["name"], s["name"])} for s in steps]

    assert rest(diet) == rest(default)
    assert diet["policies"] == default["policies"]
    names = [s["name"] for s in diet["pipeline"]]
    assert "DIETClassifier" in names and not (models - {"DIETClassifier"}) & set(names)
    step = next(s for s in diet["pipeline"] if s["name"] == "DIETClassifier")
    assert step.get("entity_recognition", True) and step.get("intent_classification", True)
    # DIET's thresholds: the ones tuned on CLINC150 validation for DIET (the "stock" pipeline)
    tuned = json.loads((ROOT / "benchmarks" / "clinc150" / "results" / "stock--val.json").read_text())
    fallback = next(s for s in diet["pipeline"] if s["name"] == "FallbackClassifier")
    assert (fallback["threshold"], fallback["ambiguity_threshold"]) == (
        tuned["threshold"],
        tuned["ambiguity_threshold"],
    )


@pytest.mark.parametrize(
    ("pipeline", "expected"),
    [
        ("", "config.yml models/tandem.tar.gz models/.fingerprint"),
        ("minilm", "config.yml models/tandem.tar.gz models/.fingerprint"),
        ("diet", "config-diet.yml models/tandem-diet.tar.gz models/.fingerprint-diet"),
    ],
)
def test_the_pipeline_chooses_config_model_and_fingerprint(pipeline, expected):
    script = '. scripts/pipeline.sh && echo "$PIPELINE_CONFIG $MODEL $MODEL_FINGERPRINT"'
    out = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env={**os.environ, "PIPELINE": pipeline}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


@pytest.mark.parametrize("pipeline", ["nope", "../config"])
def test_an_unknown_pipeline_is_refused(pipeline):
    script = ". scripts/pipeline.sh && echo chosen"
    out = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env={**os.environ, "PIPELINE": pipeline}, capture_output=True, text=True
    )
    assert out.returncode == 2 and "chosen" not in out.stdout
    assert "ERROR: PIPELINE=" in out.stderr


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("diet")
    config = load("config-diet.yml")
    for step in config["pipeline"] + config["policies"]:
        if step["name"] in EPOCHS:
            step["epochs"] = EPOCHS[step["name"]]
    (work / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(
        [
            str(RASA),
            "train",
            "--config",
            str(work / "config.yml"),
            "--domain",
            str(ROOT / "domain.yml"),
            "--data",
            str(ROOT / "data"),
            "--out",
            str(work),
            "--fixed-model-name",
            "diet",
            "--quiet",
        ],
        cwd=work,
        env=_env(work),
        check=True,
        capture_output=True,
        timeout=600,
    )
    script = textwrap.dedent(f"""
        import asyncio, json
        from rasa.core.agent import Agent
        async def main():
            agent = Agent.load({str(work / "diet.tar.gz")!r})
            return [await agent.parse_message(t) for t in {TEXTS!r}]
        print("RESULT" + json.dumps(asyncio.run(main()), default=float))
    """)
    out = subprocess.run(
        [str(PYTHON), "-c", script], cwd=work, env=_env(work), check=True, capture_output=True, text=True, timeout=300
    ).stdout
    return {"results": json.loads(out.split("RESULT", 1)[1]), "archive": work / "diet.tar.gz"}


def test_the_trained_model_answers_intents_of_the_domain(parsed):
    intents = set(load("domain.yml")["intents"])
    for result in parsed["results"]:
        ranking = [r["name"] for r in result["intent_ranking"] if r["name"] != "nlu_fallback"]
        assert ranking and set(ranking) <= intents
        assert result["intent"]["name"] in intents | {"nlu_fallback"}
        assert 0.0 <= result["intent"]["confidence"] <= 1.0
    # even after 3 epochs, the clearest turn gets its intent rather than the fallback
    assert any(r["intent"]["name"] in intents for r in parsed["results"])


def test_regexes_extract_booking_references_and_flight_numbers(parsed):
    def regex_entities(result: dict) -> dict[str, str]:
        return {e["entity"]: e["value"] for e in result["entities"] if e["extractor"] == "RegexEntityExtractor"}

    assert regex_entities(parsed["results"][0]).get("booking_ref") == "K7XQ2P"
    assert regex_entities(parsed["results"][1]).get("flight_number", "").replace(" ", "").upper() == "AN204"


def test_diet_is_the_intent_and_entity_model_in_the_archive(parsed):
    import tarfile

    with tarfile.open(parsed["archive"]) as archive:
        names = [m.name for m in archive.getmembers()]
    assert any("DIETClassifier" in n for n in names)
    assert not any("MiniLM" in n or "CRFEntityExtractor" in n for n in names)
