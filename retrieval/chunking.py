"""Split documents into token-bounded chunks with stable, content-derived ids."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from langchain_text_splitters import RecursiveCharacterTextSplitter

from retrieval.types import DEFAULT_KB, Chunk, Document

if TYPE_CHECKING:  # a type only: importing retrieval needs no transformers
    from transformers import PreTrainedTokenizerBase

_NAMESPACE = uuid.UUID("5b1c6f0e-6d1e-4d1a-9a57-2f3f0c1b7a11")


def chunk_id(source: str, text: str, occurrence: int, key: str = "") -> str:
    """UUID from the source and the chunk's own text: the same file yields the same ids on every ingest.

    `occurrence` separates identical passages repeated inside one document. `key` is the knowledge
    base's id key (the store assigns it, and keeps it across renames): the same file in two knowledge
    bases gets two sets of ids. The key of `default` is empty, so stores built before knowledge
    bases keep their ids.
    """
    scoped = f"{key}\x1e" if key else ""
    digest = hashlib.sha256(f"{scoped}{source}\x1f{occurrence}\x1f{text}".encode()).hexdigest()
    return str(uuid.uuid5(_NAMESPACE, digest))


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def token_counter(tokenizer: PreTrainedTokenizerBase) -> Callable[[str], int]:
    """Length in the embedder's tokens. Quiet: a whole document is longer than the model's window,
    which is why it is being split, and transformers would otherwise warn of "indexing errors"."""
    return lambda text: len(tokenizer.tokenize(text, verbose=False))


class Chunker:
    """Recursive splitter measured in the embedder's own tokens, so chunks fit its window."""

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, chunk_size: int = 200, chunk_overlap: int = 30
    ) -> None:
        if chunk_overlap >= chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size, chunk_overlap=chunk_overlap, length_function=token_counter(tokenizer)
        )

    def split(self, doc: Document, kb: str = DEFAULT_KB, key: str = "") -> list[Chunk]:
        """The document's chunks, as stored in knowledge base `kb` whose id key is `key`."""
        chunks: list[Chunk] = []
        seen: dict[str, int] = {}
        for position, text in enumerate(self._splitter.split_text(doc.text)):
            text = text.strip()
            if not text:
                continue
            occurrence = seen.get(text, 0)
            seen[text] = occurrence + 1
            chunks.append(
                Chunk(
                    id=chunk_id(doc.source, text, occurrence, key),
                    source=doc.source,
                    title=doc.title,
                    text=text,
                    position=position,
                    kb=kb,
                )
            )
        return chunks


class QuerySplitter:
    """Cuts a long query into pieces of at most `max_tokens`, on paragraph, line, sentence and word boundaries.

    An embedder reads only its window (256 tokens for MiniLM), and one vector (or one BM25 query)
    for a long question about many things mixes them all; each piece gets its own searches instead.
    Queries that fit in `max_tokens` stay whole.
    """

    SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", " ", "")

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, max_tokens: int = 64, sentences: bool = True
    ) -> None:
        self.max_tokens = max_tokens
        self._count = token_counter(tokenizer)
        self._splitter = RecursiveCharacterTextSplitter(
            length_function=self._count,
            chunk_size=max_tokens,
            chunk_overlap=0,
            separators=list(self.SEPARATORS if sentences else ("\n\n", "\n", " ", "")),
            keep_separator="end",
        )

    def split(self, text: str) -> list[str]:
        if self._count(text) <= self.max_tokens:
            return [text]
        return [p for p in (s.strip() for s in self._splitter.split_text(text)) if p] or [text]
