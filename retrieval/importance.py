"""Head importance scores of Multi-Head RAG: mean vector norm x mean pairwise cosine distance, per head.

A head whose vectors are large (it contributes strongly) and spread out (it tells texts apart) is
weighted up in voting. The mean pairwise cosine distance over n unit vectors has a closed form,
1 - (|sum u|^2 - n) / (n (n - 1)), so it costs O(n d) rather than O(n^2 d).
"""

from __future__ import annotations

import numpy as np


def head_importance(norms: np.ndarray, unit_heads: np.ndarray) -> np.ndarray:
    """norms: [N, H] raw head-vector norms; unit_heads: [N, H, d] L2-normalised head vectors -> [H]."""
    n = unit_heads.shape[0]
    if n < 2:
        return np.ones(unit_heads.shape[1], dtype=np.float64)
    mean_norm = norms.astype(np.float64).mean(axis=0)
    summed = unit_heads.astype(np.float64).sum(axis=0)  # [H, d]
    mean_cos = ((summed**2).sum(axis=-1) - n) / (n * (n - 1))
    return mean_norm * (1.0 - mean_cos)


def unit(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise along the last axis, leaving zero vectors at zero."""
    norm = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norm, out=np.zeros_like(vectors), where=norm > 0)
