import numpy as np
import pytest

from retrieval.fusion import mrag_vote, reciprocal_rank_fusion
from retrieval.importance import head_importance, unit


def test_mrag_vote_hand_example() -> None:
    # head 0 (weight 1): a, b, c   head 1 (weight 3): b, a
    # a = 1*2^0 + 3*2^-1 = 2.5 ; b = 1*2^-1 + 3*2^0 = 3.5 ; c = 1*2^-2 = 0.25
    voted = mrag_vote([["a", "b", "c"], ["b", "a"]], [1.0, 3.0], k=3)
    assert voted == [("b", 3.5), ("a", 2.5), ("c", 0.25)]
    assert mrag_vote([["a", "b", "c"], ["b", "a"]], [1.0, 3.0], k=1) == [("b", 3.5)]


def test_mrag_vote_weight_can_flip_the_winner() -> None:
    assert mrag_vote([["x"], ["y"]], [2.0, 1.0], k=1)[0][0] == "x"
    assert mrag_vote([["x"], ["y"]], [1.0, 2.0], k=1)[0][0] == "y"
    with pytest.raises(ValueError):
        mrag_vote([["x"]], [1.0, 2.0], k=1)


def test_rrf_hand_example() -> None:
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=3, constant=60)
    assert [i for i, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61)


def test_importance_closed_form_matches_pairwise() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(30, 4, 8)) * np.array([1.0, 2.0, 0.5, 3.0])[None, :, None]
    norms = np.linalg.norm(raw, axis=-1)
    units = unit(raw)
    brute = []
    for h in range(4):
        u = units[:, h]
        cos = u @ u.T
        pairs = cos[~np.eye(30, dtype=bool)]
        brute.append(norms[:, h].mean() * (1 - pairs.mean()))
    assert head_importance(norms, units) == pytest.approx(brute, rel=1e-9)


def test_importance_zero_for_a_head_that_cannot_tell_texts_apart() -> None:
    units = unit(np.stack([np.tile([1.0, 0.0], (5, 1)), np.eye(5, 2)], axis=1))  # head 0: all identical
    scores = head_importance(np.ones((5, 2)), units)
    assert scores[0] == pytest.approx(0.0, abs=1e-12)
    assert scores[1] > 0.1
