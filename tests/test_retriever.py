from pathlib import Path

import pytest

from generation.protocol import ChatMessage
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.rewrite import QueryRewriter
from retrieval.store import VectorStore
from retrieval.types import DEFAULT_KB, Method, Scope
from tests.generators import ScriptedGenerator

SCOPE = Scope.of(DEFAULT_KB)

CASES = [
    ("Which animal purrs and hunts mice?", "cats.md"),
    ("What buried Pompeii?", "volcano.md"),
    ("When was the Eiffel Tower completed?", "paris.txt"),
    ("How is espresso made?", "coffee.html"),
    ("What took astronauts to the Moon?", "rockets.md"),
]


@pytest.fixture
def retriever(ingestor: Ingestor, store: VectorStore, corpus: Path) -> Retriever:
    ingestor.ingest_paths([corpus])
    return Retriever(ingestor.embedder, store)


@pytest.mark.parametrize("method", list(Method))
def test_every_method_finds_the_right_document(retriever: Retriever, method: Method) -> None:
    hits = 0
    for question, expected in CASES:
        ranked = retriever.rank([question], RetrievalSettings(k=1, method=method), SCOPE)
        chunk = retriever.store.chunks([ranked[0][0]])[ranked[0][0]]
        hits += chunk.source.endswith(expected)
    assert hits >= 4, f"{method}: {hits}/5"


def test_mrag_uses_stored_importance(retriever: Retriever) -> None:
    weights = retriever.head_weights(SCOPE)
    assert weights == retriever.store.metadata()["kb:default"]["head_importance"]
    assert len(weights) == 12


def test_multi_query_fuses_rewrites(retriever: Retriever) -> None:
    # The original words are vague; each rewrite names one topic, and fusion keeps both documents.
    gen = ScriptedGenerator(["volcanic eruption that destroyed Pompeii\ncoffee beans roasting and espresso"])
    retriever.rewriter = QueryRewriter(gen)
    result = retriever.retrieve(
        "tell me things", settings=RetrievalSettings(k=3, method=Method.DENSE, n_queries=2), scope=SCOPE
    )
    assert result.queries[0] == "tell me things" and len(result.queries) == 3
    sources = {Path(sc.chunk.source).name for sc in result.chunks}
    assert {"volcano.md", "coffee.html"} <= sources
    alone = retriever.retrieve(
        "tell me things", settings=RetrievalSettings(k=3, method=Method.DENSE), scope=SCOPE
    )
    assert {Path(sc.chunk.source).name for sc in alone.chunks} != sources


def test_condensation_rewrites_a_follow_up(retriever: Retriever) -> None:
    gen = ScriptedGenerator(["When was the Eiffel Tower in Paris completed?"])
    retriever.rewriter = QueryRewriter(gen)
    history = [
        ChatMessage(role="user", content="Tell me about Paris."),
        ChatMessage(role="assistant", content="Paris is the capital of France."),
    ]
    result = retriever.retrieve(
        "and when was its tower finished?", history, RetrievalSettings(k=1), scope=SCOPE
    )
    assert result.standalone_question == "When was the Eiffel Tower in Paris completed?"
    assert result.chunks[0].chunk.source.endswith("paris.txt")


def test_mrag_ranking_is_the_vote_over_per_head_searches(retriever: Retriever) -> None:
    """The pipeline end to end equals the voting formula applied to each head's own search results."""
    from retrieval.fusion import mrag_vote
    from retrieval.importance import unit
    from retrieval.store import FULL, head_name

    question, k = "Which animal purrs and hunts mice?", 3
    emb = retriever.embedder.embed_one(question)
    heads = unit(emb.heads[0])
    lists = [[h.id for h in retriever.store.search(head_name(i), heads[i], 10, SCOPE)] for i in range(12)]
    weights = retriever.head_weights(SCOPE)
    heads_only = retriever.rank([question], RetrievalSettings(k=k, method=Method.MRAG, full_vote=0), SCOPE)
    expected = mrag_vote(lists, weights, k)
    assert [i for i, _ in heads_only] == [i for i, _ in expected]
    assert [s for _, s in heads_only] == pytest.approx([s for _, s in expected])

    full_list = [h.id for h in retriever.store.search(FULL, emb.full[0], 10, SCOPE)]
    with_full = retriever.rank([question], RetrievalSettings(k=k, method=Method.MRAG, full_vote=0.5), SCOPE)
    expected = mrag_vote([*lists, full_list], [*weights, 0.5 * sum(weights)], k)
    assert [i for i, _ in with_full] == [i for i, _ in expected]
    assert [s for _, s in with_full] == pytest.approx([s for _, s in expected])
