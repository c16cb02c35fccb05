"""Shared helpers for the benchmarks: where data and caches live, build an index of in-memory documents,
cache embeddings, print tables. The measures themselves are in bench/metrics.py."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import numpy as np

from retrieval.chunking import Chunker
from retrieval.embedder import MultiHeadEmbedder, MultiHeadEmbeddings
from retrieval.ingest import Ingestor
from retrieval.store import VectorStore
from retrieval.types import DEFAULT_KB, Document, Scope

EVALDATA = Path(
    os.environ.get("RAGBOT_EVALDATA", Path(__file__).resolve().parents[2] / "shared" / "evaldata")
)
# Embeddings, indexes and model scores cached between runs, outside the repository:
# $RAGBOT_BENCH_CACHE, else ragbot/bench in the user's cache folder ($XDG_CACHE_HOME or ~/.cache).
CACHE = Path(
    os.environ.get(
        "RAGBOT_BENCH_CACHE",
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ragbot" / "bench",
    )
)

SCOPE = Scope.of(DEFAULT_KB)  # benchmarks ingest into the default knowledge base and search it


def build_index(
    docs: list[Document], store_path: Path, collection: str, chunk_size: int, embedder: MultiHeadEmbedder
) -> tuple[VectorStore, float]:
    """Ingest documents (skipped when the store already holds them); returns the store and chunks/s."""
    store = VectorStore(collection, path=store_path)
    chunker = Chunker(embedder.tokenizer, chunk_size=chunk_size, chunk_overlap=min(30, chunk_size // 5))
    ingestor = Ingestor(embedder, chunker, store, chunker_signature=f"{chunk_size}")
    start = time.perf_counter()
    report = ingestor.ingest_documents(docs)
    elapsed = time.perf_counter() - start
    rate = report.chunks_added / elapsed if report.chunks_added else float("nan")
    print(
        f"index: {store.count()} chunks ({report.chunks_added} new in {elapsed:.0f} s, {rate:.1f} chunks/s)"
    )
    return store, rate


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[f"{c:.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, sep, *body])


class DiskCachedEmbedder:
    """Embeds each distinct text once per embedder, ever: vectors persist under CACHE/emb/<embedder>.

    Re-running a benchmark, or building the same corpus into another store engine, costs no forward
    passes. Keyed by the text's SHA-1 and the embedder's name and window, so a changed embedder or
    max_length gets a fresh cache. New vectors are appended as numbered .npz shards.
    """

    def __init__(self, inner: MultiHeadEmbedder, root: Path = CACHE / "emb") -> None:
        self.inner = inner
        self.dir = root / f"{inner.model_name}-L{inner.max_length}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for shard in sorted(self.dir.glob("*.npz")):
            with np.load(shard) as z:
                for key, full, heads in zip(z["keys"], z["full"], z["heads"], strict=True):
                    self.rows[str(key)] = (full, heads)
        self.embedded = 0  # texts embedded (not found in the cache) by this instance

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha1(text.encode()).hexdigest()

    def embed(self, texts: list[str], *, query: bool = False) -> MultiHeadEmbeddings:
        if query and getattr(self.inner, "query_prefix", ""):  # e5 reads questions with their own prefix
            return self.inner.embed(texts, query=True)
        keys = [self.key(t) for t in texts]
        missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in self.rows}.items())
        missing.sort(key=lambda kt: len(kt[1]))  # batches of similar length pad little
        for start in range(0, len(missing), 512):  # save as we go: a long run that is stopped keeps its work
            part = missing[start : start + 512]
            emb = self.inner.embed([t for _, t in part])
            for i, (k, _) in enumerate(part):
                self.rows[k] = (emb.full[i], emb.heads[i])
            shard = self.dir / f"{time.time_ns()}-{uuid.uuid4().hex[:6]}.npz"
            np.savez(shard, keys=np.array([k for k, _ in part]), full=emb.full, heads=emb.heads)
            self.embedded += len(part)
        if not texts:
            return self.inner.embed([])
        return MultiHeadEmbeddings(
            full=np.stack([self.rows[k][0] for k in keys]), heads=np.stack([self.rows[k][1] for k in keys])
        )


class CachedEmbedder:
    """Wraps an embedder so a benchmark comparing methods embeds each query text once."""

    def __init__(self, inner: MultiHeadEmbedder) -> None:
        self.inner = inner
        self.cache: dict[tuple[bool, str], tuple[np.ndarray, np.ndarray]] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def embed(self, texts: list[str], *, query: bool = False) -> MultiHeadEmbeddings:
        missing = [t for t in dict.fromkeys(texts) if (query, t) not in self.cache]
        if missing:
            emb = self.inner.embed(missing, query=query)
            for i, t in enumerate(missing):
                self.cache[query, t] = (emb.full[i], emb.heads[i])
        return MultiHeadEmbeddings(
            full=np.stack([self.cache[query, t][0] for t in texts]),
            heads=np.stack([self.cache[query, t][1] for t in texts]),
        )
