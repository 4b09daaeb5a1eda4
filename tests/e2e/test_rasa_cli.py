"""Rasa's own checks: `rasa data validate` and `rasa test` on tests/test_stories.yml with the
action server of the e2e stack running."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.stack import ARTIFACTS, MODEL, RASA, ROOT, Stack

pytestmark = pytest.mark.e2e

EXTERNAL_INTENT = re.compile(
    r"The intent '(\w+)' is listed in the domain file, but is not found in the NLU training data"
)
UNUSED_UTTERANCE = re.compile(r"The utterance '(utter_[\w/]+)' is not used in any story or rule")


def justified(warning: str) -> bool:
    """Rasa cannot see responses chosen by custom actions, nor a form's utter_ask_<slot>.

    Such a warning is justified only when the response really is used: named in an action's
    source, or asked by a form for one of its required slots.
    """
    if "overlap between the 'RegexEntityExtractor' and the statistical entity extractors" in warning:
        # Deliberate: the regexes are authoritative for booking_ref, flight_number and email, and
        # the RegexEntityExtractor only uses regexes whose entity is annotated, so the CRF sees the
        # same annotations; both extract the same span and the action server normalises it.
        return True
    if "The following duplicated intents have been found across multiple domain files: faq" in warning:
        # Rasa's importer adds every retrieval intent found in the NLU data to the domain, so a
        # retrieval intent listed in domain.yml (which the rules need) is always reported twice.
        return True
    if "The intent 'inform' is not used in any story or rule" in warning:
        # inform only answers a form's question: the forms' slot mappings consume it, and the
        # test stories cover it (tests/test_stories.yml).
        return True
    external = EXTERNAL_INTENT.search(warning)
    if external:
        # External intents: the gateway's desk triggers them (Rasa's trigger_intent), nobody types them.
        return f'"{external.group(1)}"' in (ROOT / "tandem" / "gateway" / "desk.py").read_text()
    match = UNUSED_UTTERANCE.search(warning)
    if not match:
        return False
    name = match.group(1)
    if name == "utter_faq":
        # action_answer_faq utters the response selector's choice (utter_faq/<topic>).
        return "response_selector" in (ROOT / "actions" / "fallback.py").read_text()
    # Responses chosen in code: by the actions, and by the fallback chain's decisions.
    sources = [*(ROOT / "actions").glob("*.py"), *(ROOT / "tandem" / "services" / "fallback").glob("*.py")]
    actions_source = "\n".join(p.read_text() for p in sources)
    if f'"{name}"' in actions_source or (
        "utter_flight_status_{" in actions_source and name.startswith("utter_flight_status_")
    ):
        return True
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    asked = {f"utter_ask_{slot}" for form in domain["forms"].values() for slot in form["required_slots"]}
    return name in asked


def test_rasa_data_validate(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(RASA), "data", "validate", "--config", "config.yml", "--domain", "domain.yml", "--data", "data"],
        cwd=ROOT,
        env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = run.stdout + run.stderr
    (ARTIFACTS / "rasa-data-validate.txt").write_text(output)
    assert run.returncode == 0, output[-4000:]
    warnings = [line for line in output.splitlines() if "UserWarning" in line or re.search(r"\bWARNING\b", line)]
    unexplained = [w for w in warnings if not justified(w)]
    assert not unexplained, "\n".join(unexplained)


def test_rasa_test_stories(stack: Stack, tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "{stack.action_url}/webhook"\n'
        f'  headers:\n    Authorization: "Bearer {stack.env["ACTION_SERVER_TOKEN"]}"\n'
    )
    out = ARTIFACTS / "rasa-test"
    run = subprocess.run(
        [
            str(RASA),
            "test",
            "core",
            "--model",
            str(MODEL),
            "--stories",
            "tests/test_stories.yml",
            "--endpoints",
            str(endpoints),
            "--out",
            str(out),
            "--fail-on-prediction-errors",
            "--no-plot",
        ],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = run.stdout + run.stderr
    (ARTIFACTS / "rasa-test-core.txt").write_text(output)
    failed = out / "failed_test_stories.yml"
    failed_text = failed.read_text() if failed.exists() else ""
    assert run.returncode == 0, (failed_text or output)[-6000:]
    assert "# None of the test stories failed" in failed_text or not failed_text.strip().startswith("- story"), (
        failed_text
    )
