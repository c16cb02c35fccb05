"""Data that crosses module boundaries in the retrieval layer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, Field

DEFAULT_KB = "default"  # the knowledge base of a store built before knowledge bases, and of `ragbot ingest`
MAX_KB_CHARS = 64


def check_kb_name(name: str) -> str:
    """A knowledge base name: 1 to 64 printable characters, no surrounding spaces. Returns it or raises ValueError."""
    if not name or len(name) > MAX_KB_CHARS or name != name.strip() or not name.isprintable():
        raise ValueError(f"invalid knowledge base name {name!r}: 1 to {MAX_KB_CHARS} printable characters")
    return name


@dataclass(frozen=True)
class Scope:
    """The knowledge bases a search may read. Every search takes one, with no default, so no caller can
    forget it; an empty scope finds nothing (and queries nothing). Who may read what is decided
    outside retrieval: a scope is what that decision hands in."""

    kbs: frozenset[str]

    @classmethod
    def of(cls, *kbs: str) -> Scope:
        return cls(frozenset(kbs))

    @property
    def empty(self) -> bool:
        return not self.kbs


class Document(BaseModel):
    """A loaded source file, reduced to plain text."""

    source: str = Field(description="Absolute path or URL the text came from; the key re-ingest replaces by.")
    title: str
    text: str


class Chunk(BaseModel):
    """One retrievable piece of a document, identified by a content-derived id."""

    id: str
    source: str
    title: str
    text: str
    position: int = Field(description="Index of the chunk within its document.")
    kb: str = Field(default=DEFAULT_KB, description="The knowledge base the chunk belongs to.")


class ScoredChunk(BaseModel):
    chunk: Chunk
    score: float


class Method(StrEnum):
    """Retrieval strategies; all are offered so they can be compared on the same index."""

    DENSE = "dense"  # standard RAG: the pooled sentence embedding (`full`)
    MRAG = "mrag"  # Multi-Head RAG: importance-weighted voting over per-head searches
    BM25 = "bm25"  # sparse lexical leg
    HYBRID = "hybrid"  # reciprocal rank fusion of dense and BM25 (the usual hybrid baseline)
    MRAG_HYBRID = "mrag-hybrid"  # reciprocal rank fusion of MRAG voting and BM25
    FUSION = "fusion"  # weighted fusion of BM25, full and head votes (weights chosen on dev sets)


class RetrievalResult(BaseModel):
    """What a retrieval returns: the chunks and the queries actually searched, for display and audit."""

    question: str
    standalone_question: str
    queries: list[str]
    chunks: list[ScoredChunk]


class FileStatus(StrEnum):
    ADDED = "added"  # new source
    UNCHANGED = "unchanged"  # same text and chunking as stored: nothing written
    REPLACED = "replaced"  # the source was stored with other text: its chunks were updated
    REJECTED = "rejected"  # could not be read; `reason` says why


class FileOutcome(BaseModel):
    """What one ingest did with one file, so a front door can report per file."""

    path: str = Field(description="The file as given, or the document's source.")
    source: str = Field(default="", description="The key its chunks are stored under; empty when rejected.")
    status: FileStatus
    chunks: int = Field(default=0, description="Chunks the source has in the store afterwards.")
    reason: str = ""


class IngestReport(BaseModel):
    files_ok: int = 0
    files_unchanged: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    errors: list[str] = Field(default_factory=list)
    files: list[FileOutcome] = Field(default_factory=list)
