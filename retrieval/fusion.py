"""Rank fusion: MRAG's importance-weighted head voting and reciprocal rank fusion (RRF)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence


def mrag_vote(
    rankings: Sequence[Sequence[Hashable]], weights: Sequence[float], k: int
) -> list[tuple[Hashable, float]]:
    """Multi-Head RAG voting: a chunk at rank r (0-based) in head i's list earns weights[i] * 2**-r.

    Scores are summed over heads and the k best returned, best first; ties keep first-seen order.
    """
    if len(rankings) != len(weights):
        raise ValueError("one weight per ranking is required")
    scores: dict[Hashable, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking):
            scores[item] = scores.get(item, 0.0) + float(weight) * 2.0**-rank
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:k]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Hashable]], k: int, constant: int = 60
) -> list[tuple[Hashable, float]]:
    """RRF (Cormack et al. 2009): sum of 1 / (constant + rank), rank 1-based; the k best, best first."""
    scores: dict[Hashable, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (constant + rank)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)[:k]
