"""PII masking scored on labelled samples: recall and precision per type.

Three labelled sets (``benchmarks/security/pii/``, see its README for provenance and licences):

- ``presidio_samples.jsonl``: sentences of presidio-research's generated data (MIT), verbatim,
  with their PERSON, EMAIL_ADDRESS, PHONE_NUMBER and CREDIT_CARD labels;
- ``presidio_templates.txt`` filled with the values of those samples, and our own
  ``airline_templates.txt`` (passports, which presidio's data has none of, and airline turns),
  generated with a fixed seed and split by template: even lines ``dev``, odd lines ``test``;
- ordinary airline turns (the NLU training examples of every intent but ``inform``, and the
  fallback benchmark's questions) for false positives, and the NLU's annotated booking
  references for the booking-reference rule.

Scored: the masker as deployed by default (spaCy's blank English plus the rules; no trained
pipeline). A gold span counts as masked when every letter and digit of it is inside masked
spans (any placeholder; ``typed``: the right placeholder). A predicted span is correct when it
overlaps a gold span of its type.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tandem.guard import PiiMasker
from tandem.guard.patterns import booking_ref_spans, resolve

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SEED = 20240610
FILLS_PER_TEMPLATE = 4
GOAL_PATTERN_RECALL = 0.95

# Gold types and the placeholder the masker should use for them.
LABELS = {
    "PERSON": "NAME",
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CARD",
    "PASSPORT": "PASSPORT",
}
PATTERN_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "PASSPORT")
_PLACEHOLDER_TYPES = {
    "person": "PERSON",
    "first_name": "PERSON",
    "last_name": "PERSON",
    "email_address": "EMAIL_ADDRESS",
    "phone_number": "PHONE_NUMBER",
    "credit_card_number": "CREDIT_CARD",
    "passport": "PASSPORT",
}
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
_NLU_ENTITY = re.compile(r"\[([^\]]*)\](?:\(([^)]*)\)|\{[^}]*\})")


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled sentence: gold spans ``(start, end, type)``."""

    text: str
    spans: tuple[tuple[int, int, str], ...]


@dataclass
class Tally:
    """Counts for one type."""

    support: int = 0
    masked: int = 0
    typed: int = 0
    predicted: int = 0
    correct: int = 0
    tokens: int = 0
    tokens_masked: int = 0
    misses: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "support": self.support,
            "recall": _ratio(self.masked, self.support),
            "recall_typed": _ratio(self.typed, self.support),
            "precision": _ratio(self.correct, self.predicted),
            "predicted": self.predicted,
        }
        if self.tokens:
            result["token_recall"] = _ratio(self.tokens_masked, self.tokens)
        result["missed_examples"] = self.misses[:5]
        return result


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def load_presidio_samples(path: Path = HERE / "presidio_samples.jsonl") -> list[Sample]:
    """The verbatim presidio-research sentences; spans found from the labelled values."""
    samples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text, spans, cursor = row["text"], [], {}
        for kind, value in row["entities"]:
            start = text.find(value, cursor.get(value, 0))
            if start < 0:
                raise ValueError(f"{value!r} not in {text!r}")
            cursor[value] = start + len(value)
            spans.append((start, start + len(value), kind))
        samples.append(Sample(text, tuple(spans)))
    return samples


def _pools(samples: Sequence[Sample], rng: random.Random) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {kind: [] for kind in LABELS}
    for sample in samples:
        for start, end, kind in sample.spans:
            values[kind].append(sample.text[start:end])
    people = [p for p in values["PERSON"] if " " in p]
    pools = {
        "person": people,
        "first_name": [p.split()[0] for p in people] + [p for p in values["PERSON"] if " " not in p],
        "last_name": [p.split()[-1] for p in people],
        "email_address": values["EMAIL_ADDRESS"],
        "phone_number": values["PHONE_NUMBER"] + ["+66 81 234 5678", "081-555-0199", "+44 20 7946 0958"],
        "credit_card_number": values["CREDIT_CARD"],
        "title": ["Mr.", "Mrs.", "Ms.", "Dr.", "Mr", "Ms"],
        "country": ["Canada", "Estonia", "Thailand", "Uruguay"],
        "birthday": ["2/8/1935", "1998-06-28"],
    }
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    pools["passport"] = []
    for index in range(40):  # our own, generated: Thai/UK style, one-letter + 7 digits, 9 digits (US)
        digits = "".join(rng.choice("0123456789") for _ in range(9))
        shape = index % 3
        if shape == 0:
            pools["passport"].append(rng.choice(letters) + rng.choice(letters) + digits[:7])
        elif shape == 1:
            pools["passport"].append(rng.choice(letters) + digits[:7])
        else:
            pools["passport"].append(digits)
    return {k: sorted(set(v)) for k, v in pools.items()}


def _fill(template: str, pools: dict[str, list[str]], rng: random.Random) -> Sample:
    parts: list[str] = []
    spans: list[tuple[int, int, str]] = []
    cursor = 0
    length = 0
    for match in _PLACEHOLDER.finditer(template):
        literal = template[cursor : match.start()]
        parts.append(literal)
        length += len(literal)
        value = rng.choice(pools[match.group(1)])
        kind = _PLACEHOLDER_TYPES.get(match.group(1))
        if kind:
            spans.append((length, length + len(value), kind))
        parts.append(value)
        length += len(value)
        cursor = match.end()
    parts.append(template[cursor:])
    return Sample("".join(parts), tuple(spans))


def generated_samples(pool_source: Sequence[Sample]) -> dict[str, list[Sample]]:
    """The templates filled with the pools; ``dev`` from even template lines, ``test`` from odd ones."""
    rng = random.Random(SEED)
    pools = _pools(pool_source, rng)
    splits: dict[str, list[Sample]] = {"dev": [], "test": []}
    for name in ("presidio_templates.txt", "airline_templates.txt"):
        lines = [t for t in (HERE / name).read_text(encoding="utf-8").splitlines() if t.strip()]
        for index, template in enumerate(lines):
            split = "dev" if index % 2 == 0 else "test"
            splits[split].extend(_fill(template, pools, rng) for _ in range(FILLS_PER_TEMPLATE))
    return splits


def _covered(text: str, start: int, end: int, spans: Iterable[tuple[int, int, str]], label: str | None) -> bool:
    inside = [(s, e) for s, e, lab in spans if label is None or lab == label]
    return all(any(s <= i < e for s, e in inside) for i in range(start, end) if text[i].isalnum())


def score(samples: Sequence[Sample], masker: PiiMasker) -> dict[str, dict[str, Any]]:
    """Recall and precision per gold type over ``samples``."""
    tallies = {kind: Tally() for kind in LABELS}
    for sample in samples:
        predicted = resolve(masker.spans(sample.text))
        for start, end, kind in sample.spans:
            tally = tallies[kind]
            tally.support += 1
            if _covered(sample.text, start, end, predicted, None):
                tally.masked += 1
            elif len(tally.misses) < 5:
                tally.misses.append(sample.text[start:end])
            if _covered(sample.text, start, end, predicted, LABELS[kind]):
                tally.typed += 1
            if kind == "PERSON":
                for token in re.finditer(r"\w+", sample.text[start:end]):
                    tally.tokens += 1
                    s, e = start + token.start(), start + token.end()
                    tally.tokens_masked += _covered(sample.text, s, e, predicted, None)
        for kind, label in LABELS.items():
            mine = [(s, e) for s, e, lab in predicted if lab == label]
            gold = [(s, e) for s, e, k in sample.spans if k == kind]
            tallies[kind].predicted += len(mine)
            tallies[kind].correct += sum(any(s < ge and gs < e for gs, ge in gold) for s, e in mine)
    return {kind: tally.as_dict() for kind, tally in tallies.items()}


def ordinary_turns() -> tuple[list[str], list[Sample]]:
    """Airline turns without names (NLU examples but ``inform``; fallback questions), and the
    NLU examples with their annotated booking references."""
    texts: list[str] = []
    refs: list[Sample] = []
    for path in sorted((ROOT / "data" / "nlu").glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in data.get("nlu") or []:
            if "intent" not in item:
                continue
            for line in str(item.get("examples", "")).splitlines():
                line = line.strip()
                if not line.startswith("- "):
                    continue
                text, spans = _strip_annotations(line[2:])
                refs.append(Sample(text, tuple(spans)))
                if item["intent"] != "inform":
                    texts.append(text)
    for line in (ROOT / "benchmarks" / "fallback" / "labelled.jsonl").read_text(encoding="utf-8").splitlines():
        texts.append(json.loads(line)["question"])
    return texts, refs


def _strip_annotations(annotated: str) -> tuple[str, list[tuple[int, int, str]]]:
    parts: list[str] = []
    spans: list[tuple[int, int, str]] = []
    cursor = length = 0
    for match in _NLU_ENTITY.finditer(annotated):
        literal = annotated[cursor : match.start()]
        parts.append(literal)
        length += len(literal)
        value = match.group(1)
        if match.group(2) == "booking_ref":
            spans.append((length, length + len(value), "BOOKING_REF"))
        parts.append(value)
        length += len(value)
        cursor = match.end()
    parts.append(annotated[cursor:])
    return "".join(parts), spans


def false_positives(texts: Sequence[str], masker: PiiMasker) -> dict[str, Any]:
    """How many ordinary turns get a placeholder, per placeholder, with the examples."""
    flagged: dict[str, list[str]] = {}
    for text in texts:
        for label in {lab for _, _, lab in resolve(masker.spans(text))}:
            flagged.setdefault(label, []).append(text)
    return {
        "turns": len(texts),
        "masked_turns": {label: len(v) for label, v in sorted(flagged.items())},
        "name_rate": _ratio(len(flagged.get("NAME", [])), len(texts)),
        "examples": {label: v[:10] for label, v in sorted(flagged.items())},
    }


def booking_refs(samples: Sequence[Sample]) -> dict[str, Any]:
    """The booking-reference rule on the NLU's annotated references (recall) and every other word."""
    support = found = predicted = correct = 0
    wrong: list[str] = []
    for sample in samples:
        spans = booking_ref_spans(sample.text)
        gold = [(s, e) for s, e, _ in sample.spans]
        support += len(gold)
        found += sum(any(s <= gs and ge <= e for s, e, _ in spans) for gs, ge in gold)
        predicted += len(spans)
        for s, e, _ in spans:
            if any(s < ge and gs < e for gs, ge in gold):
                correct += 1
            elif len(wrong) < 10:
                wrong.append(sample.text[s:e])
    return {
        "support": support,
        "recall": _ratio(found, support),
        "precision": _ratio(correct, predicted),
        "unlabelled_matches": wrong,
    }


def run(masker: PiiMasker | None = None) -> dict[str, Any]:
    """Every score of the benchmark (what ``python -m benchmarks.security.pii`` writes)."""
    masker = masker or PiiMasker.create(prefer_trained=False)
    presidio = load_presidio_samples()
    generated = generated_samples(presidio)
    texts, refs = ordinary_turns()
    sets = {
        "presidio_verbatim": presidio,
        "generated_dev": generated["dev"],
        "generated_test": generated["test"],
    }
    results: dict[str, Any] = {
        "masker": "trained spaCy NER + rules" if masker.trained else "spaCy blank English + rules (no trained NER)",
        "goal": {"pattern_recall": GOAL_PATTERN_RECALL, "names": "measured"},
        "sizes": {name: len(samples) for name, samples in sets.items()},
        "scores": {name: score(samples, masker) for name, samples in sets.items()},
        "false_positives_on_airline_turns": false_positives(texts, masker),
        "booking_references_in_nlu_data": booking_refs(refs),
    }
    return results
