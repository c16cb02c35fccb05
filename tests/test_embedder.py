import numpy as np

from retrieval.embedder import MultiHeadEmbedder
from retrieval.importance import unit

TEXTS = [
    "The cat sat on the warm windowsill and purred.",
    "Quarterly revenue grew by twelve percent in Europe.",
    "Mitochondria produce most of the cell's chemical energy.",
    "The orchestra played Beethoven's ninth symphony.",
]


def test_shapes_and_normalisation(embedder: MultiHeadEmbedder) -> None:
    emb = embedder.embed(TEXTS)
    assert emb.full.shape == (4, 384)
    assert emb.heads.shape == (4, 12, 32)
    assert np.allclose(np.linalg.norm(emb.full, axis=1), 1.0, atol=1e-5)
    assert (np.linalg.norm(emb.heads, axis=-1) > 0).all()


def test_order_is_kept_despite_length_sorting(embedder: MultiHeadEmbedder) -> None:
    together = embedder.embed(TEXTS)
    for i, text in enumerate(TEXTS):
        alone = embedder.embed_one(text)
        assert np.allclose(alone.full[0], together.full[i], atol=1e-4)
        assert np.allclose(alone.heads[0], together.heads[i], atol=1e-4)


def test_full_matches_sentence_transformers_recipe(embedder: MultiHeadEmbedder) -> None:
    """Mean pooling + L2 norm is all-MiniLM-L6-v2's published pooling; paraphrases must score high."""
    emb = embedder.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "A plane is taking off."]
    )
    sims = emb.full @ emb.full.T
    assert sims[0, 1] > 0.6 > sims[0, 2]


def test_head_vectors_differ_from_each_other_and_from_full(embedder: MultiHeadEmbedder) -> None:
    emb = embedder.embed(TEXTS)
    heads = unit(emb.heads)
    # Different heads of one text point in different directions.
    for t in range(len(TEXTS)):
        cos = heads[t] @ heads[t].T
        off_diag = cos[~np.eye(12, dtype=bool)]
        assert off_diag.max() < 0.95
    # A head is not a slice of the pooled output, and each head ranks the texts its own way.
    full_slices = unit(emb.full.reshape(4, 12, 32))
    assert np.abs((heads * full_slices).sum(-1)).mean() < 0.9
    similarity_orders = {tuple(np.argsort(-(heads[:, h] @ heads[0, h]))) for h in range(12)}
    assert len(similarity_orders) > 1


def test_empty_input(embedder: MultiHeadEmbedder) -> None:
    emb = embedder.embed([])
    assert emb.full.shape == (0, 384) and emb.heads.shape == (0, 12, 32)
