"""Focusing retrieved chunks for the prompt: what survives the budget."""

from __future__ import annotations

from retrieval.embedder import MultiHeadEmbedder
from retrieval.passages import focus
from retrieval.types import Chunk, ScoredChunk

FILLER = "The museum shop sells postcards and umbrellas. " * 6


def scored(*texts: str) -> list[ScoredChunk]:
    return [
        ScoredChunk(
            chunk=Chunk(id=str(i), source=f"d{i}", title=f"d{i}", text=t, position=0), score=1.0 / (i + 1)
        )
        for i, t in enumerate(texts)
    ]


def test_chunks_are_cut_to_the_budget(embedder: MultiHeadEmbedder) -> None:
    chunks = scored("Short best chunk.", FILLER + "Bridges carry roads over rivers.", FILLER + "Rivers flow.")
    shown = focus("Which bridges carry roads?", chunks, embedder, 400)
    assert sum(len(c.chunk.text) for c in shown) <= 400 + 2 * len(shown)  # "…" marks what was cut


def test_every_chunk_keeps_its_place_and_at_least_one_sentence(embedder: MultiHeadEmbedder) -> None:
    chunks = scored(FILLER, FILLER + "Bridges carry roads.", FILLER + "Rivers flow.")
    shown = focus("Which bridges carry roads?", chunks, embedder, 300)
    assert [c.chunk.id for c in shown] == ["0", "1", "2"]
    assert all(c.chunk.text.strip("… ") for c in shown)


def test_chunks_within_the_budget_are_left_whole(embedder: MultiHeadEmbedder) -> None:
    chunks = scored("One.", "Two.")
    assert focus("What?", chunks, embedder, 1400) == chunks
