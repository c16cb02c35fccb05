"""Rank fusion: MRAG's importance-weighted head voting, reciprocal rank fusion (RRF), and weighted fusion.

Weighted fusion turns each leg's ranked list into per-item contributions by a rule, then sums them
with one weight per leg:
- `rrf`: 1 / (constant + rank), rank 1-based (Cormack et al. 2009); ignores score scales.
- `minmax`: the score rescaled to [0, 1] over the leg's own list (its best is 1, its last 0).
- `dbsf`: distribution-based score fusion (Qdrant's DBSF): (s - (μ - 3σ)) / 6σ over the list, clipped.
- `vote`: 2^-rank (rank 0-based), MRAG's vote.
An item missing from a leg's list contributes 0 there.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import numpy as np

Rule = Literal["rrf", "minmax", "dbsf", "vote"]


def contributions(scores: np.ndarray, rule: Rule, constant: float = 60.0) -> np.ndarray:
    """What each position of one ranked list (best first, with its scores) adds to the fused score."""
    n = len(scores)
    if rule == "rrf":
        return 1.0 / (constant + np.arange(1, n + 1, dtype=np.float64))
    if rule == "vote":
        return 2.0 ** -np.arange(n, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if n == 0:
        return s
    if rule == "minmax":
        lo, hi = s.min(), s.max()
    elif rule == "dbsf":
        mu, sigma = s.mean(), s.std()
        lo, hi = mu - 3 * sigma, mu + 3 * sigma
    else:
        raise ValueError(f"unknown fusion rule {rule!r}")
    if hi <= lo:
        return np.ones(n)
    return np.clip((s - lo) / (hi - lo), 0.0, 1.0)


def weighted_fusion(
    legs: Sequence[tuple[Sequence[Hashable], Sequence[float], float]],
    k: int,
    rule: Rule = "rrf",
    constant: float = 60.0,
) -> list[tuple[Hashable, float]]:
    """legs: (ids best first, their scores, the leg's weight). The k best fused items, best first."""
    fused: dict[Hashable, float] = {}
    for ids, scores, weight in legs:
        if not weight or not len(ids):
            continue
        for item, c in zip(ids, contributions(np.asarray(scores), rule, constant), strict=True):
            fused[item] = fused.get(item, 0.0) + weight * float(c)
    return sorted(fused.items(), key=lambda kv: kv[1], reverse=True)[:k]


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
