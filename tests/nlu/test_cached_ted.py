"""tandem_rasa/policies.py inside Rasa's environment, on the trained model: the cached TED policy
answers exactly what TED answers for the same tracker, a second tracker with the same states is
served from the cache, a tracker with another intent is not; whatever the cache holds, every
answer equals TED's own."""

from __future__ import annotations

import json
import subprocess
import textwrap

from tests.stack import RASA, ROOT

PYTHON = RASA.parent / "python"
MODEL = ROOT / "models" / "tandem.tar.gz"

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from rasa.core.agent import Agent
    from rasa.core.policies.ted_policy import TEDPolicy
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from tandem_rasa.policies import CachedTEDPolicy

    agent = Agent.load(sys.argv[1])
    domain = agent.domain
    nodes = agent.processor.graph_runner._instantiated_nodes
    [policy] = [n._component for n in nodes.values() if isinstance(n._component, CachedTEDPolicy)]

    def tracker(sender, intent, extra=()):
        events = [ActionExecuted("action_listen"), UserUttered("hello", {"name": "greet", "confidence": 1.0}),
                  ActionExecuted("utter_greet"), BotUttered("hi"), ActionExecuted("action_listen"),
                  *extra, UserUttered(f"text of {sender}", {"name": intent, "confidence": 1.0})]
        return DialogueStateTracker.from_events(sender, events, domain.slots)

    cases = [tracker("a", "goodbye"), tracker("b", "goodbye"), tracker("c", "thank"),
             tracker("d", "goodbye", [SlotSet("requested_slot", "email")])]
    out = {"probs": [], "reference": [], "hits": []}
    for t in cases:
        reference = TEDPolicy.predict_action_probabilities(policy, t, domain)
        cached = policy.predict_action_probabilities(t, domain)
        out["probs"].append(cached.probabilities)
        out["reference"].append(reference.probabilities)
        out["hits"].append(policy.cache_hits)
        out["policy_name"] = cached.policy_name
    print("RESULT " + json.dumps(out))
    """
)


def test_cached_ted_matches_ted_and_hits_for_equal_states() -> None:
    assert MODEL.exists(), "scripts/train.sh trains the model before the tests"
    proc = subprocess.run(
        [str(PYTHON), "-c", SCRIPT, str(MODEL)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "RASA_TELEMETRY_ENABLED": "false",
        },
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    for cached, reference in zip(out["probs"], out["reference"], strict=True):
        assert cached == reference  # the same floats as TED itself
    # a: miss; b (same states as a, other sender and text): hit; c (another intent): miss;
    # d (a slot set before the message) only checks that the answer is TED's
    assert out["hits"][0] == 0
    assert out["hits"][1] == 1
    assert out["hits"][2] == 1
    assert out["probs"][0] == out["probs"][1]
    assert out["probs"][0] != out["probs"][2]
    assert out["policy_name"] == "CachedTEDPolicy"
