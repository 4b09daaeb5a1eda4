"""tandem_nlu.classifier.MiniLMIntentClassifier inside Rasa 3.6.21: trained by `rasa train nlu`,
stored in the model archive, loaded by Rasa's Agent and used through its parse, next to
Rasa's FallbackClassifier. Runs in the Rasa environment (Python 3.10) as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest
import yaml

from tests.stack import RASA, ROOT

PYTHON = RASA.parent / "python"

INTENTS = {
    "check_balance": [
        "what's my balance",
        "how much money do i have",
        "show my account balance",
        "balance please",
        "how much is left in my account",
        "tell me my current balance",
        "whats the balance on my card",
        "can you check how much money i have",
        "account balance",
        "do i have money left",
    ],
    "transfer_money": [
        "send 20 dollars to mike",
        "transfer money to my savings",
        "move 100 to checking",
        "i want to wire money to my mom",
        "make a transfer",
        "pay john 15 bucks",
        "send cash to anna",
        "transfer 50 from checking to savings",
        "wire funds abroad",
        "can you move money between accounts",
    ],
    "weather": [
        "what's the weather like",
        "will it rain today",
        "is it sunny outside",
        "weather forecast please",
        "how hot is it",
        "do i need an umbrella",
        "what's the temperature",
        "is it going to snow",
        "how cold will it be tomorrow",
        "forecast for the weekend",
    ],
}


def _env() -> dict[str, str]:
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("minilm")
    nlu = {
        "version": "3.1",
        "nlu": [
            {"intent": name, "examples": "".join(f"- {t}\n" for t in examples)} for name, examples in INTENTS.items()
        ],
    }
    (work / "nlu.yml").write_text(yaml.safe_dump(nlu, sort_keys=False))
    config = {
        "recipe": "default.v1",
        "assistant_id": "minilm-test",
        "language": "en",
        "pipeline": [
            {"name": "WhitespaceTokenizer"},
            {
                "name": "tandem_nlu.classifier.MiniLMIntentClassifier",
                "epochs": 8,
                "batch_size": 8,
                "learning_rate": 1e-4,
                "ranking_length": 2,
            },
            {"name": "FallbackClassifier", "threshold": 0.3, "ambiguity_threshold": 0.0},
        ],
    }
    (work / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(
        [
            str(RASA),
            "train",
            "nlu",
            "--config",
            str(work / "config.yml"),
            "--nlu",
            str(work / "nlu.yml"),
            "--out",
            str(work),
            "--fixed-model-name",
            "minilm",
        ],
        cwd=work,
        env=_env(),
        check=True,
        capture_output=True,
        timeout=600,
    )
    script = textwrap.dedent(f"""
        import asyncio, json
        from rasa.core.agent import Agent
        texts = ["how much cash is in my account?", "please send 30 euros to my brother",
                 "is it raining in bangkok", "", "ฉันอยากรู้ยอดเงิน", "x" * 5000]
        async def main():
            agent = Agent.load({str(work / "minilm.tar.gz")!r})
            return [await agent.parse_message(t) for t in texts]
        print("RESULT" + json.dumps(asyncio.run(main()), default=float))
    """)
    out = subprocess.run(
        [str(PYTHON), "-c", script], cwd=work, env=_env(), check=True, capture_output=True, text=True, timeout=300
    ).stdout
    return {"results": json.loads(out.split("RESULT", 1)[1]), "archive": work / "minilm.tar.gz"}


def test_unseen_paraphrases_get_their_intent(parsed):
    names = [r["intent"]["name"] for r in parsed["results"][:3]]
    assert names == ["check_balance", "transfer_money", "weather"]
    # Confident enough not to go to the fallback (the config's threshold, 0.3; the names above say
    # the right intent won): a tiny training set leaves the exact value to TensorFlow's thread
    # order (0.40 once in a CI run where it was above 0.5 in the others, with the same winner).
    for result in parsed["results"][:3]:
        assert result["intent"]["confidence"] > 0.3


def test_ranking_is_sorted_probabilities_cut_to_ranking_length(parsed):
    ranking = parsed["results"][0]["intent_ranking"]
    assert len(ranking) == 2
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert 0.0 < sum(confidences) <= 1.0 + 1e-6


def test_empty_foreign_and_huge_input_still_parse(parsed):
    for result in parsed["results"][3:]:
        name = result["intent"]["name"]
        assert name in {*INTENTS, "nlu_fallback"}
        assert 0.0 <= result["intent"]["confidence"] <= 1.0


def test_the_fine_tuned_weights_are_stored_in_the_model_archive(parsed):
    import tarfile

    with tarfile.open(parsed["archive"]) as archive:
        members = archive.getmembers()
    assert any(m.name.endswith("labels.json") for m in members)
    size = sum(m.size for m in members if "weights" in m.name)
    assert size > 50_000_000  # the whole encoder, fine-tuned (about 90 MB in float32)
