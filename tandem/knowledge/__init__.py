"""The knowledge base: Markdown policy documents, chunked by heading, searched with BM25."""

from tandem.knowledge.index import KnowledgeBase, Passage, load_documents

__all__ = ["KnowledgeBase", "Passage", "load_documents"]
