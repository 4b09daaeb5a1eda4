"""tandem_rasa/speedups.py inside Rasa's own environment: the action server's answers are validated
exactly as Rasa does (valid passes, invalid raises the same error with the same message), but the
schema is checked once, not on every call."""

from __future__ import annotations

import json
import subprocess
import textwrap

from tests.stack import RASA, ROOT

PYTHON = RASA.parent / "python"

SCRIPT = textwrap.dedent(
    """
    import json
    from unittest import mock

    import jsonschema
    from jsonschema import ValidationError
    from rasa.core.actions.action import RemoteAction

    action = RemoteAction("action_x", None)
    good = {"events": [{"event": "slot", "name": "a", "value": 1}], "responses": [{"text": "hi"}]}
    bad = {"events": [{"event": "slot"}], "responses": "not a list"}

    def outcome(result):
        try:
            return action._validate_action_result(result)
        except ValidationError as error:
            return "error: " + error.message

    before = [outcome(good), outcome(bad)]
    from tandem_rasa import speedups

    speedups.install()
    speedups.install()  # twice: nothing changes
    again = AssertionError("the schema was checked again")
    with mock.patch.object(jsonschema.Draft202012Validator, "check_schema", side_effect=again):
        with mock.patch.object(jsonschema.Draft7Validator, "check_schema", side_effect=again):
            after = [outcome(good), outcome(bad)]
    print(json.dumps({"before": before, "after": after}))
    """
)


def test_the_cached_validator_validates_like_rasa_and_checks_the_schema_once() -> None:
    run = subprocess.run([str(PYTHON), "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["before"] == result["after"]
    assert result["after"][0] is True
    assert (
        result["after"][1].startswith("error: ") and "Failed to validate Action server response" in result["after"][1]
    )
