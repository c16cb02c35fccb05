"""Answer-time retrieval: condense the turn, expand into several queries, rank with a method, fuse.

Methods share one query embedding pass, so comparing them (see bench/) costs one forward per query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from generation.protocol import ChatMessage
from retrieval.embedder import MultiHeadEmbedder
from retrieval.fusion import mrag_vote, reciprocal_rank_fusion
from retrieval.importance import unit
from retrieval.rewrite import QueryRewriter
from retrieval.sparse import BM25Encoder
from retrieval.store import FULL, VectorStore, head_name
from retrieval.types import Method, RetrievalResult, ScoredChunk


@dataclass(frozen=True)
class RetrievalSettings:
    """How one retrieval runs; the bot builds it from Settings, the benchmarks vary it."""

    k: int = 5
    method: Method = Method.MRAG_HYBRID
    per_head: int = 0  # candidates each head contributes to MRAG voting; 0 means max(2k, 10)
    # The pooled `full` vector as one more MRAG voter, weighted as this share of the heads' total
    # importance; 0 is the paper's heads-only voting. 0.5 measured best with MiniLM's small heads (bench/mrag.py).
    full_vote: float = 0.5
    n_queries: int = 0  # LLM-written alternative queries, fused with RRF; 0 disables
    condense: bool = True
    rrf_constant: int = 60


class Retriever:
    def __init__(
        self, embedder: MultiHeadEmbedder, store: VectorStore, rewriter: QueryRewriter | None = None
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.rewriter = rewriter
        self._weights: list[float] | None = None
        self._bm25: BM25Encoder | None = None

    def head_weights(self) -> list[float]:
        """Head importance from the collection (computed at ingest); uniform if none stored yet."""
        if self._weights is None:
            meta = self.store.metadata()
            self._weights = list(meta.get("head_importance") or [1.0] * self.embedder.n_heads)
        return self._weights

    def reload(self) -> None:
        """Forget cached collection facts, e.g. after a new ingest."""
        self._weights = None
        self._bm25 = None

    def bm25(self) -> BM25Encoder:
        if self._bm25 is None:
            self._bm25 = BM25Encoder(avg_len=float(self.store.metadata().get("bm25_avg_len", 120.0)))
        return self._bm25

    # ---- ranking -----------------------------------------------------------------------------
    def rank(self, queries: Sequence[str], settings: RetrievalSettings) -> list[tuple[str, float]]:
        """Top-k chunk ids for one or more queries (settings.method, settings.k); several are fused with RRF."""
        if not queries:
            return []
        emb = self.embedder.embed(list(queries))
        k = settings.k
        depth = k if len(queries) == 1 else max(2 * k, 20)
        rankings = [
            self._rank_one(q, emb.full[i], emb.heads[i], settings.method, depth, settings)
            for i, q in enumerate(queries)
        ]
        if len(rankings) == 1:
            return rankings[0][:k]
        fused = reciprocal_rank_fusion([[i for i, _ in r] for r in rankings], k, settings.rrf_constant)
        return [(str(i), s) for i, s in fused]

    def _rank_one(
        self,
        text: str,
        full: np.ndarray,
        heads: np.ndarray,
        method: Method,
        k: int,
        settings: RetrievalSettings,
    ) -> list[tuple[str, float]]:
        if method is Method.DENSE:
            return [(h.id, h.score) for h in self.store.search(FULL, full, k)]
        if method is Method.BM25:
            return [(h.id, h.score) for h in self.store.search_sparse(self.bm25().encode_query(text), k)]
        if method is Method.MRAG:
            return self._mrag(full, heads, k, settings)
        # Hybrids: fuse a dense leg with the BM25 leg, each taken deeper than k.
        depth = max(k, 20)
        dense_method = Method.DENSE if method is Method.HYBRID else Method.MRAG
        dense = self._rank_one(text, full, heads, dense_method, depth, settings)
        lexical = self.store.search_sparse(self.bm25().encode_query(text), depth)
        legs = [[i for i, _ in dense], [h.id for h in lexical]]
        return [(str(i), s) for i, s in reciprocal_rank_fusion(legs, k, settings.rrf_constant)]

    def _mrag(
        self, full: np.ndarray, heads: np.ndarray, k: int, settings: RetrievalSettings
    ) -> list[tuple[str, float]]:
        """Each head (and, if full_vote > 0, the pooled vector) searches; importance-weighted voting."""
        unit_heads = unit(heads)
        requests = [(head_name(h), unit_heads[h]) for h in range(unit_heads.shape[0])]
        weights = list(self.head_weights())
        if settings.full_vote > 0:
            requests.append((FULL, full))
            weights.append(settings.full_vote * sum(weights))
        lists = self.store.search_many(requests, settings.per_head or max(2 * k, 10))
        voted = mrag_vote([[hit.id for hit in hits] for hits in lists], weights, k)
        return [(str(i), s) for i, s in voted]

    # ---- the conversational entry point ------------------------------------------------------
    def retrieve(
        self, question: str, history: Sequence[ChatMessage] = (), settings: RetrievalSettings | None = None
    ) -> RetrievalResult:
        settings = settings or RetrievalSettings()
        return self.search(question, self.standalone(question, history, settings), settings)

    def standalone(self, question: str, history: Sequence[ChatMessage], settings: RetrievalSettings) -> str:
        """The question made standalone with the conversation (condensation), or as it is."""
        if settings.condense and history and self.rewriter:
            return self.rewriter.condense(history, question)
        return question

    def search(self, question: str, standalone: str, settings: RetrievalSettings) -> RetrievalResult:
        """Retrieve for an already standalone question (expanded into several queries if asked)."""
        queries = [standalone]
        if settings.n_queries and self.rewriter:
            queries = self.rewriter.expand(standalone, settings.n_queries)
        ranked = self.rank(queries, settings)
        chunks = self.store.chunks([i for i, _ in ranked])
        scored = [ScoredChunk(chunk=chunks[i], score=s) for i, s in ranked if i in chunks]
        return RetrievalResult(
            question=question, standalone_question=standalone, queries=queries, chunks=scored
        )
