"""Answer-time retrieval: condense the turn, expand into several queries, rank with a method, fuse.

Every method is one batched call into the store per query (all its legs: BM25, `full`, the heads,
for the whole query and for its pieces), then fusion in Python. Methods share one query embedding
pass, so comparing them (see bench/) costs one forward per query text.

Every entry point takes a `Scope` (no default): the knowledge bases the search may read. The store
applies it inside each leg's query; head importance is the scope's (retrieval/store.py). BM25's
average length shapes only the documents' vectors, fixed per knowledge base at ingest: a query sends
each term once with weight 1, and Qdrant's IDF is over the whole collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from generation.protocol import ChatMessage
from retrieval.chunking import QuerySplitter
from retrieval.fusion import Rule, contributions, mrag_vote, reciprocal_rank_fusion
from retrieval.importance import unit
from retrieval.rewrite import QueryRewriter
from retrieval.sparse import BM25Encoder
from retrieval.store import FULL, SPARSE, Hit, Search, VectorStore, head_name
from retrieval.types import Method, RetrievalResult, Scope, ScoredChunk

if TYPE_CHECKING:  # a type only: importing retrieval needs no torch
    from retrieval.embedder import Embedder


@dataclass(frozen=True)
class FusionPlan:
    """Weighted fusion of retrieval legs: one weight per leg, for the whole query and for its pieces.

    Each leg's ranked list becomes per-chunk contributions by a rule (retrieval/fusion.py); the
    heads' contributions are weighted by head importance and summed into one `heads` leg. A query
    longer than `window` tokens is also cut into pieces (paragraphs, sentences) of at most `window`
    tokens, each searched with the piece legs; a chunk's piece score is its best piece's (`agg="max"`,
    so every part of a many-topic question gets its own top hits) or the mean over pieces.
    """

    bm25: float = 0.0
    full: float = 0.0
    heads: float = 0.0
    bm25_pieces: float = 0.0
    full_pieces: float = 0.0
    heads_pieces: float = 0.0
    rule: Rule = "rrf"  # whole-query legs
    piece_rule: Rule | None = None  # piece legs (None: as `rule`)
    heads_rule: Rule | None = None  # the heads, in both (None: as their scope's rule)
    constant: float = 60.0
    window: int = 0
    agg: str = "max"
    depth: int = 100  # candidates per leg (at least k)

    def uses_pieces(self) -> bool:
        return self.window > 0 and bool(self.bm25_pieces or self.full_pieces or self.heads_pieces)


# Chosen on the dev sets only (MRAG Wikipedia v2, legal, chemistry, SciFact train) by
# `python -m bench.tune --search "minmax + vote pieces s48"`: min-max scaled BM25 for the whole
# query, plus, for each sentence-sized piece (≤ 48 tokens) of a long query, MRAG-style votes
# (2^-rank) of BM25, `full` and the importance-weighted heads, each chunk keeping its best piece.
# A short query is its own only piece. See the README's retrieval tables.
DEFAULT_PLAN = FusionPlan(
    bm25=0.5,
    bm25_pieces=0.5,
    full_pieces=0.5,
    heads_pieces=1.0,
    rule="minmax",
    piece_rule="vote",
    window=48,
    agg="max",
)

PRESETS: dict[Method, FusionPlan] = {
    Method.DENSE: FusionPlan(full=1.0),
    Method.BM25: FusionPlan(bm25=1.0),
    Method.HYBRID: FusionPlan(bm25=1.0, full=1.0),
    Method.FUSION: DEFAULT_PLAN,
}


@dataclass(frozen=True)
class RetrievalSettings:
    """How one retrieval runs; the bot builds it from Settings, the benchmarks vary it."""

    k: int = 5
    method: Method = Method.FUSION
    per_head: int = 0  # candidates each head contributes to MRAG voting; 0 means max(2k, 10)
    # The pooled `full` vector as one more MRAG voter, weighted as this share of the heads' total
    # importance; 0 is the paper's heads-only voting. 0.5 measured best with MiniLM's small heads (bench/mrag.py).
    full_vote: float = 0.5
    n_queries: int = 0  # LLM-written alternative queries, fused with RRF; 0 disables
    condense: bool = True
    rrf_constant: int = 60
    plan: FusionPlan | None = field(default=None)  # overrides the method's plan (benchmarks, tuning)


class Retriever:
    def __init__(self, embedder: Embedder, store: VectorStore, rewriter: QueryRewriter | None = None) -> None:
        self.embedder = embedder
        self.store = store
        self.rewriter = rewriter
        self._weights: dict[frozenset[str], list[float]] = {}
        self._bm25: BM25Encoder | None = None
        self._splitters: dict[int, QuerySplitter] = {}

    def head_weights(self, scope: Scope) -> list[float]:
        """Head importance of the scope's knowledge bases (computed at ingest); uniform if none stored yet."""
        weights = self._weights.get(scope.kbs)
        if weights is None:
            weights = self.store.head_importance(scope) or [1.0] * self.embedder.n_heads
            self._weights[scope.kbs] = weights
        return weights

    def reload(self) -> None:
        """Forget cached collection facts, e.g. after a new ingest."""
        self._weights = {}
        self._bm25 = None

    def bm25(self) -> BM25Encoder:
        """The query encoder (a query's terms weigh 1 each: the average length does not enter)."""
        if self._bm25 is None:
            self._bm25 = BM25Encoder()
        return self._bm25

    def pieces(self, text: str, window: int) -> list[str]:
        if window not in self._splitters:
            self._splitters[window] = QuerySplitter(self.embedder.tokenizer, window)
        return self._splitters[window].split(text)

    # ---- ranking -----------------------------------------------------------------------------
    def rank(
        self, queries: Sequence[str], settings: RetrievalSettings, scope: Scope
    ) -> list[tuple[str, float]]:
        """Top-k chunk ids of `scope` for one or more queries (settings.method, settings.k); several are
        fused with RRF. An empty scope returns nothing and searches nothing."""
        if not queries or scope.empty:
            return []
        k = settings.k
        depth = k if len(queries) == 1 else max(2 * k, 20)
        rankings = [self._rank_one(q, depth, settings, scope) for q in queries]
        if len(rankings) == 1:
            return rankings[0][:k]
        fused = reciprocal_rank_fusion([[i for i, _ in r] for r in rankings], k, settings.rrf_constant)
        return [(str(i), s) for i, s in fused]

    def _rank_one(
        self, text: str, k: int, settings: RetrievalSettings, scope: Scope
    ) -> list[tuple[str, float]]:
        method = settings.method
        if settings.plan is None and method is Method.MRAG:
            emb = self.embedder.embed([text], query=True)
            return self._mrag(emb.full[0], emb.heads[0], k, settings, scope)
        if settings.plan is None and method is Method.MRAG_HYBRID:
            emb = self.embedder.embed([text], query=True)
            depth = max(k, 20)
            dense = self._mrag(emb.full[0], emb.heads[0], depth, settings, scope)
            lexical = self.store.search_sparse(self.bm25().encode_query(text), depth, scope)
            legs = [[i for i, _ in dense], [h.id for h in lexical]]
            return [(str(i), s) for i, s in reciprocal_rank_fusion(legs, k, settings.rrf_constant)]
        return self.fuse(text, k, settings.plan or PRESETS[method], scope)

    def fuse(self, text: str, k: int, plan: FusionPlan, scope: Scope) -> list[tuple[str, float]]:
        """Weighted fusion of the plan's legs: one embedding pass, one batched store call.

        A plan of one plain leg (dense, bm25) is that leg's own ranking with its own scores (cosine,
        BM25): fusing one list changes no order, only turns scores into rank contributions.
        """
        whole_w = {"bm25": plan.bm25, "full": plan.full, "heads": plan.heads}
        active = [kind for kind, w in whole_w.items() if w]
        if not plan.uses_pieces() and active == ["bm25"]:
            return [
                (h.id, h.score) for h in self.store.search_sparse(self.bm25().encode_query(text), k, scope)
            ]
        if not plan.uses_pieces() and active == ["full"]:
            full = self.embedder.embed([text], query=True).full[0]
            return [(h.id, h.score) for h in self.store.search(FULL, full, k, scope)]
        pieces = self.pieces(text, plan.window) if plan.uses_pieces() else []
        texts = list(dict.fromkeys([text, *pieces]))  # a short query's only piece is the query itself
        piece_w = {"bm25": plan.bm25_pieces, "full": plan.full_pieces, "heads": plan.heads_pieces}
        wanted = [{kind for kind, w in whole_w.items() if w}] + [set() for _ in texts[1:]]
        piece_of = [texts.index(p) for p in pieces]
        for i in piece_of:
            wanted[i] |= {kind for kind, w in piece_w.items() if w}
        need_dense = any(kinds & {"full", "heads"} for kinds in wanted)
        emb = self.embedder.embed(texts, query=True) if need_dense else None
        depth = max(plan.depth, k)
        searches: list[Search] = []
        slots: list[tuple[int, str]] = []  # (text index, leg) of each search
        for i, kinds in enumerate(wanted):
            if "bm25" in kinds:
                searches.append(Search(SPARSE, self.bm25().encode_query(texts[i]), depth))
                slots.append((i, "bm25"))
            if "full" in kinds and emb is not None:
                searches.append(Search(FULL, emb.full[i], depth))
                slots.append((i, "full"))
            if "heads" in kinds and emb is not None:
                uh = unit(emb.heads[i])
                searches += [Search(head_name(h), uh[h], depth) for h in range(uh.shape[0])]
                slots += [(i, head_name(h)) for h in range(uh.shape[0])]
        results = self.store.search_batch(searches, scope)

        imp = np.asarray(self.head_weights(scope), dtype=np.float64)
        imp = imp / imp.sum() if imp.sum() > 0 else np.full(len(imp), 1.0 / max(len(imp), 1))
        results_of: list[dict[str, list[Hit]]] = [{} for _ in texts]
        for (i, leg), hits in zip(slots, results, strict=True):
            results_of[i][leg] = hits

        def features(i: int, rule: Rule) -> dict[str, dict[str, float]]:
            """One text's bm25, full and heads contributions per chunk id."""
            out: dict[str, dict[str, float]] = {"bm25": {}, "full": {}, "heads": {}}
            for leg, hits in results_of[i].items():
                kind = "heads" if leg.startswith("head_") else leg
                r = (plan.heads_rule or rule) if kind == "heads" else rule
                c = contributions(np.asarray([h.score for h in hits]), r, plan.constant)
                if kind == "heads":
                    c = c * imp[int(leg.removeprefix("head_"))]
                _accumulate(out[kind], hits, c, "sum")
            return out

        fused: dict[str, float] = {}
        for kind, scores in features(0, plan.rule).items():
            for cid, s in scores.items():
                fused[cid] = fused.get(cid, 0.0) + whole_w[kind] * s
        if piece_of:
            agg: dict[str, dict[str, float]] = {"bm25": {}, "full": {}, "heads": {}}
            for i in piece_of:
                for kind, scores in features(i, plan.piece_rule or plan.rule).items():
                    a = agg[kind]
                    for cid, s in scores.items():
                        a[cid] = (
                            max(a.get(cid, 0.0), s)
                            if plan.agg == "max"
                            else a.get(cid, 0.0) + s / len(piece_of)
                        )
            for kind, scores in agg.items():
                for cid, s in scores.items():
                    fused[cid] = fused.get(cid, 0.0) + piece_w[kind] * s
        ranked = sorted(((c, s) for c, s in fused.items() if s > 0), key=lambda kv: kv[1], reverse=True)
        return ranked[:k]

    def _mrag(
        self, full: np.ndarray, heads: np.ndarray, k: int, settings: RetrievalSettings, scope: Scope
    ) -> list[tuple[str, float]]:
        """Each head (and, if full_vote > 0, the pooled vector) searches; importance-weighted voting."""
        unit_heads = unit(heads)
        requests = [(head_name(h), unit_heads[h]) for h in range(unit_heads.shape[0])]
        weights = list(self.head_weights(scope))
        if settings.full_vote > 0:
            requests.append((FULL, full))
            weights.append(settings.full_vote * sum(weights))
        lists = self.store.search_many(requests, settings.per_head or max(2 * k, 10), scope)
        voted = mrag_vote([[hit.id for hit in hits] for hits in lists], weights, k)
        return [(str(i), s) for i, s in voted]

    # ---- the conversational entry point ------------------------------------------------------
    def retrieve(
        self,
        question: str,
        history: Sequence[ChatMessage] = (),
        settings: RetrievalSettings | None = None,
        *,
        scope: Scope,
    ) -> RetrievalResult:
        settings = settings or RetrievalSettings()
        return self.search(question, self.standalone(question, history, settings), settings, scope)

    def standalone(self, question: str, history: Sequence[ChatMessage], settings: RetrievalSettings) -> str:
        """The question made standalone with the conversation (condensation), or as it is."""
        if settings.condense and history and self.rewriter:
            return self.rewriter.condense(history, question)
        return question

    def search(
        self, question: str, standalone: str, settings: RetrievalSettings, scope: Scope
    ) -> RetrievalResult:
        """Retrieve for an already standalone question (expanded into several queries if asked), from
        the knowledge bases of `scope` only."""
        queries = [standalone]
        if scope.empty:
            return RetrievalResult(
                question=question, standalone_question=standalone, queries=queries, chunks=[]
            )
        if settings.n_queries and self.rewriter:
            queries = self.rewriter.expand(standalone, settings.n_queries)
        ranked = self.rank(queries, settings, scope)
        chunks = self.store.chunks([i for i, _ in ranked])
        scored = [ScoredChunk(chunk=chunks[i], score=s) for i, s in ranked if i in chunks]
        return RetrievalResult(
            question=question, standalone_question=standalone, queries=queries, chunks=scored
        )


def _accumulate(into: dict[str, float], hits: list[Hit], contrib: np.ndarray, mode: str) -> None:
    for hit, c in zip(hits, contrib.tolist(), strict=True):
        if mode == "max":
            into[hit.id] = max(into.get(hit.id, 0.0), c)
        else:
            into[hit.id] = into.get(hit.id, 0.0) + c
