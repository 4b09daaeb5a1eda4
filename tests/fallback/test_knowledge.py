"""The knowledge base: documents, passages, search, version, consistency with the FAQ answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tandem.knowledge import KnowledgeBase
from tandem.knowledge.index import parse_document

from .conftest import ROOT

FAQ_TO_DOC = {
    "baggage_allowance": "baggage-allowance",
    "checkin": "check-in",
    "refund_policy": "refunds",
    "pets": "pets",
    "special_assistance": "special-assistance",
    "payment_methods": "payment-methods",
    "seat_selection": "seat-selection",
    "infant_travel": "infants",
    "change_fees": "change-fees",
    "lost_baggage": "lost-baggage",
}
_FACT = re.compile(r"\d[\d,.]*\s*(?:%|kg|THB|hours|minutes|days|working days|years)?")


def test_at_least_15_documents_each_with_a_title_and_sections(kb: KnowledgeBase) -> None:
    docs = {p.source_doc for p in kb.passages}
    assert len(docs) >= 15
    for path in (ROOT / "knowledge").glob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# ") and "\n## " in text, path.name
    assert len({p.id for p in kb.passages}) == len(kb.passages)
    assert {
        "sports-equipment",
        "travel-documents",
        "loyalty-programme",
        "unaccompanied-minors",
        "medical-conditions",
        "delays-and-compensation",
        "covid-rules-retired",
    } <= docs


@pytest.mark.parametrize(("topic", "doc"), sorted(FAQ_TO_DOC.items()))
def test_faq_answers_agree_with_the_knowledge_base(kb: KnowledgeBase, topic: str, doc: str) -> None:
    faq = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    answer = faq["responses"][f"utter_faq/{topic}"][0]["text"]
    doc_text = " ".join(p.text for p in kb.passages if p.source_doc == doc)
    for fact in _FACT.findall(answer):
        assert fact.strip().rstrip(".,") in doc_text, (topic, fact)


@pytest.mark.parametrize(
    ("question", "doc"),
    [
        ("Can I bring my surfboard?", "sports-equipment"),
        ("how much luggage can I bring", "baggage-allowance"),
        ("can my 9 year old fly alone", "unaccompanied-minors"),
        ("do I need a covid test", "covid-rules-retired"),
        ("can I take a power bank", "dangerous-goods"),
    ],
)
def test_search_finds_the_right_document(kb: KnowledgeBase, question: str, doc: str) -> None:
    passages = kb.search(question, k=3)
    assert passages and passages[0].source_doc == doc
    assert passages[0].score > 0 and 0 < passages[0].coverage <= 1
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


def test_search_of_nothing_known_is_empty(kb: KnowledgeBase) -> None:
    assert kb.search("zzzz qqqq", k=3) == []
    assert kb.search("", k=3) == []


def test_out_of_vocabulary_words_lower_the_coverage(kb: KnowledgeBase) -> None:
    (weather, *_) = kb.search("what's the weather in Paris", k=1)
    (surf, *_) = kb.search("Can I bring my surfboard?", k=1)
    assert weather.coverage < 0.6 <= surf.coverage


def test_version_changes_with_the_content(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# A\n\n## One\nFirst text.\n", encoding="utf-8")
    v1 = KnowledgeBase.from_directory(tmp_path).version
    assert KnowledgeBase.from_directory(tmp_path).version == v1
    (tmp_path / "a.md").write_text("# A\n\n## One\nChanged text.\n", encoding="utf-8")
    assert KnowledgeBase.from_directory(tmp_path).version != v1


def test_a_document_without_sections_is_refused() -> None:
    with pytest.raises(ValueError, match="no '## ' section"):
        parse_document("x", "# Title only\n\nSome text.")


def test_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        KnowledgeBase.from_directory(tmp_path)
