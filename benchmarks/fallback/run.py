"""Benchmark of the fallback chain with no LLM: answer quality, escalation, prompt size, overhead.

Run from the project root::

    .venv/bin/python -m benchmarks.fallback.run

It tunes the retrieval thresholds (minimum BM25 score and query coverage of the best passage) on
the DEV half of ``labelled.jsonl``, then reports on the TEST half (the numbers that count) and,
for reference, on all questions. Results go to ``results.json`` and ``results.md`` next to this file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from tandem.llm import Completion, InMemoryAnswerCache, LlmClient, Turn, build_messages, estimate_message_tokens
from tandem.services.fallback import FallbackChain, FallbackRequest
from tandem.settings import load_action_settings

HERE = Path(__file__).resolve().parent
COMMAND = ".venv/bin/python -m benchmarks.fallback.run"
# A realistic window of earlier turns, so that the prompt size includes the history.
HISTORY = (
    Turn("user", "hi, I'm flying to Phuket next month with my family"),
    Turn("assistant", "Hello! I can book flights, check or cancel bookings, give flight status and answer questions."),
    Turn("user", "what is the baggage allowance in economy?"),
    Turn(
        "assistant",
        "Economy fares include 20 kg of checked baggage and 7 kg of cabin baggage per passenger. "
        "Business fares include 30 kg checked and two cabin bags of up to 7 kg each.",
    ),
    Turn("user", "ok thanks, and when does online check-in open?"),
    Turn("assistant", "Online check-in opens 24 hours and closes 2 hours before departure."),
)
_CANNED = '{"intent": null, "answer": null, "confidence": 0.2, "handoff": false, "sources": []}'


class _InstantModel(LlmClient):
    """A model that answers at once, to time the chain's own work around a model call."""

    def __init__(self) -> None:
        self.model = "instant"
        self.max_tokens = 350

    async def complete(self, messages: Any) -> Completion:  # type: ignore[override]
        return Completion(_CANNED, estimate_message_tokens(messages), 30, 0.0, 1)

    async def aclose(self) -> None:
        return None


def load_labelled() -> list[dict[str, Any]]:
    """The labelled questions."""
    return [json.loads(line) for line in (HERE / "labelled.jsonl").read_text(encoding="utf-8").splitlines() if line]


def _outcome(chain: FallbackChain, row: dict[str, Any], min_score: float, min_cov: float) -> str:
    passages = chain.kb.search(row["question"], chain.config.top_k)
    top = passages[0] if passages else None
    if top is not None and top.score >= min_score and top.coverage >= min_cov:
        return f"answer:{top.source_doc}"
    return "escalate"


def score(chain: FallbackChain, rows: list[dict[str, Any]], min_score: float, min_cov: float) -> dict[str, Any]:
    """Shares of right answers, correct escalations/refusals and wrong answers."""
    right = wrong = escalated_ok = 0
    answerable = [r for r in rows if r["expect"] == "answer"]
    not_answerable = [r for r in rows if r["expect"] != "answer"]
    misses: list[dict[str, str]] = []
    for row in rows:
        outcome = _outcome(chain, row, min_score, min_cov)
        if row["expect"] == "answer":
            if outcome == f"answer:{row['doc']}":
                right += 1
            elif outcome.startswith("answer:"):
                wrong += 1
                misses.append({"id": row["id"], "got": outcome})
            else:
                misses.append({"id": row["id"], "got": outcome})
        elif outcome == "escalate":
            escalated_ok += 1
        else:
            wrong += 1
            misses.append({"id": row["id"], "got": outcome})
    return {
        "questions": len(rows),
        "answered_from_right_doc": round(right / max(1, len(answerable)), 3),
        "correctly_escalated": round(escalated_ok / max(1, len(not_answerable)), 3),
        "wrongly_answered": round(wrong / max(1, len(rows)), 3),
        "counts": {
            "answerable": len(answerable),
            "right": right,
            "not_answerable": len(not_answerable),
            "escalated": escalated_ok,
            "wrong": wrong,
        },
        "misses": misses,
    }


def tune(chain: FallbackChain, dev: list[dict[str, Any]]) -> tuple[float, float]:
    """Thresholds maximising right answers minus twice the wrong ones (a wrong answer costs more
    than an escalation); ties go to the stricter pair."""
    best: tuple[float, float, float] = (float("-inf"), 0.0, 0.0)
    for s10 in range(0, 61):
        for c20 in range(0, 21):
            min_score, min_cov = s10 / 10, c20 / 20
            result = score(chain, dev, min_score, min_cov)["counts"]
            objective = result["right"] + result["escalated"] - 2 * result["wrong"]
            if objective > best[0] or (objective == best[0] and (min_score, min_cov) > best[1:]):
                best = (objective, min_score, min_cov)
    return best[1], best[2]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def overhead(chain: FallbackChain, rows: list[dict[str, Any]], repeats: int) -> dict[str, float]:
    """Milliseconds per decide() excluding model time; ``chain`` decides with its own model (or none)."""
    samples: list[float] = []
    for rep in range(repeats):
        for index, row in enumerate(rows):
            request = FallbackRequest(
                conversation_id=f"bench-{rep}-{index}",
                text=row["question"],
                history=HISTORY,
                intent_ranking=(("nlu_fallback", 0.3), ("faq", 0.25), ("book_flight", 0.2)),
            )
            started = time.perf_counter()
            decision = await chain.decide(request)
            samples.append((time.perf_counter() - started - decision.model_seconds) * 1000)
    return {
        "p50_ms": round(_percentile(samples, 0.5), 3),
        "p95_ms": round(_percentile(samples, 0.95), 3),
        "max_ms": round(max(samples), 3),
        "samples": len(samples),
    }


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    settings = load_action_settings(_env_file=None, REDIS_URL=None, LLM_MODEL=None)
    chain = FallbackChain.from_settings(settings, registry=CollectorRegistry())
    rows = load_labelled()
    dev = [r for r in rows if r["split"] == "dev"]
    test = [r for r in rows if r["split"] == "test"]
    min_score, min_cov = tune(chain, dev)
    chain.config = replace(chain.config, retrieval_min_score=min_score, retrieval_min_coverage=min_cov)

    prompt_tokens = []
    for row in rows:
        passages = chain.kb.search(row["question"], chain.config.top_k)
        messages = build_messages(question=row["question"], passages=passages, history=HISTORY, intents=chain.choices)
        prompt_tokens.append(estimate_message_tokens(messages))

    # No answer cache here: every turn goes through prompt building, budget and parsing.
    llm_chain = FallbackChain(
        kb=chain.kb,
        guard=chain.guard,
        sanitizer=chain.sanitizer,
        metrics=chain.metrics,
        config=chain.config,
        llm=_InstantModel(),
        cache=InMemoryAnswerCache(max_entries=0),
    )
    results = {
        "command": COMMAND,
        "mode": "no LLM (retrieval only)",
        "knowledge_base_version": chain.kb.version,
        "passages": len(chain.kb.passages),
        "labelled": {"total": len(rows), "dev": len(dev), "test": len(test)},
        "tuned_on": "dev",
        "thresholds": {"FALLBACK_RETRIEVAL_MIN_SCORE": min_score, "FALLBACK_RETRIEVAL_MIN_COVERAGE": min_cov},
        "test": score(chain, test, min_score, min_cov),
        "dev": score(chain, dev, min_score, min_cov),
        "all": score(chain, rows, min_score, min_cov),
        "prompt_tokens_per_fallback_turn": {
            "tokenizer": "words + punctuation, long words split every 6 characters (tandem.llm.tokens)",
            "mean": round(statistics.mean(prompt_tokens), 1),
            "p95": _percentile([float(t) for t in prompt_tokens], 0.95),
            "max": max(prompt_tokens),
            "goal": 1500,
        },
        "overhead_without_llm": await overhead(chain, rows, args.repeats),
        "overhead_with_instant_model": await overhead(llm_chain, rows, args.repeats),
        "overhead_goal_p95_ms": 20,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
    }
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (HERE / "results.md").write_text(_markdown(results), encoding="utf-8")
    return results


def _markdown(r: dict[str, Any]) -> str:
    t, th = r["test"], r["thresholds"]
    pt, o1, o2 = r["prompt_tokens_per_fallback_turn"], r["overhead_without_llm"], r["overhead_with_instant_model"]
    c = t["counts"]
    rows = [
        ("measure (TEST)", "value"),
        ("---", "---"),
        (
            "answered from the right document (of answerable)",
            f"{t['answered_from_right_doc']:.1%} ({c['right']}/{c['answerable']})",
        ),
        (
            "correctly escalated or refused (of human-only + out of scope)",
            f"{t['correctly_escalated']:.1%} ({c['escalated']}/{c['not_answerable']})",
        ),
        ("wrongly answered (of all)", f"{t['wrongly_answered']:.1%} ({c['wrong']}/{t['questions']})"),
        (
            f"prompt tokens per fallback turn, mean / p95 / max (goal ≤ {pt['goal']})",
            f"{pt['mean']} / {pt['p95']} / {pt['max']}",
        ),
        (
            f"overhead without a model, p50 / p95 (goal p95 ≤ {r['overhead_goal_p95_ms']} ms)",
            f"{o1['p50_ms']} ms / {o1['p95_ms']} ms",
        ),
        (
            "overhead around an instant model (guard, retrieval, prompt, budget, parse), p50 / p95",
            f"{o2['p50_ms']} ms / {o2['p95_ms']} ms",
        ),
    ]
    table = "\n".join(f"| {a} | {b} |" for a, b in rows)
    return f"""# Fallback chain benchmark (no LLM)

Produced by `{r["command"]}` (results in `results.json`).

Labelled set: `labelled.jsonl`, {r["labelled"]["total"]} long-tail questions (answerable from the knowledge base,
answerable only by a human, out of scope), split half DEV / half TEST. The retrieval thresholds were
**tuned on DEV** (`FALLBACK_RETRIEVAL_MIN_SCORE={th["FALLBACK_RETRIEVAL_MIN_SCORE"]}`,
`FALLBACK_RETRIEVAL_MIN_COVERAGE={th["FALLBACK_RETRIEVAL_MIN_COVERAGE"]}`); the table reports the **TEST** half
({t["questions"]} questions).

{table}

For reference, DEV: right {r["dev"]["answered_from_right_doc"]:.1%}, escalated {r["dev"]["correctly_escalated"]:.1%},
wrong {r["dev"]["wrongly_answered"]:.1%}. Without a model an unanswered question is escalated (the two likely
intents as buttons, else a human); an escalation is counted correct for human-only and out-of-scope questions.
Prompt tokens are estimated with the simple tokenizer of `tandem.llm.tokens` on the exact prompt
the chain sends (system prompt, 6 history turns, top-3 passages, the question).
"""


if __name__ == "__main__":
    asyncio.run(main())
