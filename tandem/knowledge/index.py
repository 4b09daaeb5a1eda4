"""Loading, chunking and BM25 search over the Markdown knowledge base.

Each document is a Markdown file with one ``# Title`` and ``## Section`` headings; every section
becomes one :class:`Passage` whose id is ``<file stem>#<heading slug>`` (stable across restarts,
so ids can be cited by the model and cached). The index is built once, by
:meth:`KnowledgeBase.from_directory`, when the process starts; searching is pure CPU (well under
a millisecond for a few hundred passages), so callers may run it inline.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SLUG = re.compile(r"[^a-z0-9]+")
# Words that say nothing about the topic in customer questions ("can I bring my ...").
_EXTRA_STOPWORDS = frozenset(
    {
        "can",
        "could",
        "would",
        "may",
        "much",
        "many",
        "please",
        "want",
        "need",
        "tell",
        "know",
        "get",
        "bring",
        "take",
        "how",
        "what",
        "when",
        "where",
        "why",
        "who",
        "which",
        "do",
        "does",
        "did",
        "am",
        "im",
        "ok",
        "hi",
        "hello",
        "thanks",
        "is",
        "are",
        "allowed",
        "possible",
        "there",
        "any",
        "also",
        "still",
        "go",
        "going",
        "my",
        "me",
        "mine",
        "our",
        "we",
        "us",
        "you",
        "your",
        "has",
        "have",
        "had",
        "been",
        "will",
        "should",
        "it",
        "its",
        "ive",
        "he",
        "she",
        "they",
        "them",
        "their",
        "his",
        "her",
        "just",
        "like",
    }
)
# Customers' words for the documents' words; applied to queries only (documents use one term).
_SYNONYMS: dict[str, str] = {
    "luggage": "baggage",
    "suitcase": "baggage",
    "suitcases": "baggage",
    "bags": "baggage bag",
    "bag": "baggage bag",
    "kilos": "kg",
    "kilo": "kg",
    "kgs": "kg",
    "carry": "cabin",
    "hand": "cabin",
    "surf": "surfboard",
    "surfboards": "surfboard",
    "board": "surfboard",
    "bike": "bicycle",
    "bikes": "bicycle",
    "golf": "golf",
    "scuba": "diving",
    "dog": "dog pet",
    "cat": "cat pet",
    "puppy": "pet",
    "kitten": "pet",
    "baby": "infant",
    "babies": "infant",
    "toddler": "infant",
    "kid": "child",
    "kids": "children",
    "pregnant": "pregnancy",
    "wheelchair": "wheelchair assistance",
    "visa": "visa",
    "id": "id card",
    "miles": "miles",
    "points": "miles",
    "frequent": "loyalty",
    "flyer": "loyalty",
    "late": "delay",
    "delayed": "delay",
    "powerbank": "power bank",
    "battery": "batteries",
    "vape": "e-cigarettes",
    "food": "meal",
    "meals": "meal",
    "eat": "meal",
    "wifi": "wi-fi",
    "internet": "wi-fi",
    "money": "refund",
    "covid": "covid-19",
    "mask": "masks",
    "vaccine": "vaccination",
    "complain": "complaint",
    "agent": "agent",
    "alone": "unaccompanied",
    "unaccompanied": "unaccompanied minor",
}


@dataclass(frozen=True, slots=True)
class Passage:
    """One section of a policy document, as returned by :meth:`KnowledgeBase.search`."""

    id: str
    source_doc: str
    title: str
    heading: str
    text: str
    score: float = 0.0
    # Share of the query's words (weighted by rarity) that the passage contains, 0..1; words the
    # knowledge base has never seen ("Paris", "poem") count as missing, which is what separates
    # out-of-scope questions from a lucky match on one common word.
    coverage: float = 0.0


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed policy document: its file stem, its title and its sections (heading, text)."""

    doc_id: str
    title: str
    sections: tuple[tuple[str, str], ...]


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")


def parse_document(doc_id: str, markdown: str) -> Document:
    """Split one Markdown document into its title and ``##`` sections (text kept verbatim)."""
    title = doc_id.replace("-", " ").capitalize()
    sections: list[tuple[str, str]] = []
    heading: str | None = None
    lines: list[str] = []

    def flush() -> None:
        body = " ".join(line.strip() for line in lines if line.strip())
        if heading is not None and body:
            sections.append((heading, body))

    for raw in markdown.splitlines():
        if raw.startswith("# "):
            title = raw[2:].strip()
        elif raw.startswith("## "):
            flush()
            heading, lines = raw[3:].strip(), []
        else:
            lines.append(raw)
    flush()
    if not sections:
        raise ValueError(f"knowledge document {doc_id!r} has no '## ' section")
    return Document(doc_id=doc_id, title=title, sections=tuple(sections))


def load_documents(directory: Path) -> list[Document]:
    """Read every ``*.md`` file of ``directory`` (sorted by name, so the version is stable)."""
    paths = sorted(directory.glob("*.md"))
    if not paths:
        raise FileNotFoundError(f"no knowledge documents (*.md) in {directory}")
    return [parse_document(path.stem, path.read_text(encoding="utf-8")) for path in paths]


class KnowledgeBase:
    """A BM25 index over the passages of the knowledge base, built once and then read-only."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self._stemmer = Stemmer.Stemmer("english")
        self._stopwords = frozenset(STOPWORDS_EN) | _EXTRA_STOPWORDS
        passages: list[Passage] = []
        digest = hashlib.sha256()
        for doc in documents:
            for heading, text in doc.sections:
                passage_id = f"{doc.doc_id}#{_slug(heading)}"
                passages.append(Passage(passage_id, doc.doc_id, doc.title, heading, text))
                digest.update(f"{passage_id}\x00{doc.title}\x00{heading}\x00{text}\x00".encode())
        self._passages = tuple(passages)
        self._by_id = {p.id: p for p in passages}
        self._titles = {doc.doc_id: doc.title for doc in documents}
        self.version = digest.hexdigest()[:16]
        # The title and heading are indexed with the body: customers name the topic ("surfboard").
        corpus = [self.tokenize(f"{p.title} {p.heading} {p.text}") for p in passages]
        self._bm25 = bm25s.BM25()
        self._bm25.index(corpus, show_progress=False)
        self._token_sets = tuple(frozenset(tokens) for tokens in corpus)
        df: dict[str, int] = {}
        for tokens in self._token_sets:
            for token in tokens:
                df[token] = df.get(token, 0) + 1
        n = len(corpus)
        self._idf = {t: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self._unknown_idf = math.log(1.0 + (n + 0.5) / 0.5)
        self._vocab = frozenset(df)

    @classmethod
    def from_directory(cls, directory: Path) -> KnowledgeBase:
        """Load and index every Markdown document of ``directory``."""
        return cls(load_documents(directory))

    @property
    def passages(self) -> tuple[Passage, ...]:
        """Every passage, in document order."""
        return self._passages

    def title_of(self, doc_id: str) -> str:
        """The human title of a document (for naming sources)."""
        return self._titles[doc_id]

    def get(self, passage_id: str) -> Passage | None:
        """The passage with this id, or None."""
        return self._by_id.get(passage_id)

    def tokenize(self, text: str, *, query: bool = False) -> list[str]:
        """Lower-case words without stopwords, stemmed; queries also get the synonyms."""
        words = [w.replace("'", "") for w in _WORD.findall(text.lower())]
        if query:
            words = [x for w in words for x in _WORD.findall(_SYNONYMS.get(w, w))]
        stems: list[str] = self._stemmer.stemWords([w for w in words if w not in self._stopwords and len(w) > 1])
        return stems

    def search(self, query: str, k: int = 3) -> list[Passage]:
        """The ``k`` best passages for ``query`` with their BM25 score, best first; none scoring 0."""
        all_tokens = list(dict.fromkeys(self.tokenize(query, query=True)))
        tokens = [t for t in all_tokens if t in self._vocab]
        if not tokens or k <= 0:
            return []
        weights = {t: self._idf.get(t, self._unknown_idf) for t in all_tokens}
        total = sum(weights.values())
        scores = np.asarray(self._bm25.get_scores(tokens), dtype=float)
        order = np.argsort(-scores, kind="stable")[:k]
        found: list[Passage] = []
        for index in order:
            score = float(scores[index])
            if score <= 0.0:
                break
            p = self._passages[int(index)]
            have = self._token_sets[int(index)]
            coverage = sum(w for t, w in weights.items() if t in have) / total
            found.append(Passage(p.id, p.source_doc, p.title, p.heading, p.text, round(score, 4), round(coverage, 4)))
        return found
