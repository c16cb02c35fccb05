"""The store engines are congruent: the same documents and queries give the same answers on each.

Like qdrant-client's own congruence tests, one suite runs the same calls against the embedded edge
engine (the default), qdrant-client's local mode and, when QDRANT_URL is set, a real Qdrant server,
and compares every answer with the edge engine's. Then the edge engine's own guarantees: one open
shard shared by a process's stores and threads, a clear error when another process holds it, data
and metadata across restarts, and copying a collection to another engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.embedder import MultiHeadEmbedder
from retrieval.ingest import refresh_importance
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.sparse import BM25Encoder
from retrieval.store import FULL, Search, StoreUnavailable, VectorStore, copy_collection, head_name
from retrieval.types import DEFAULT_KB, Document, Method, Scope
from tests.conftest import make_ingestor

SCOPE = Scope.of(DEFAULT_KB)
QUESTIONS = [
    "Which animal purrs and hunts mice?",
    "What buried Pompeii?",
    "When was the Eiffel Tower completed?",
    "How is espresso made?",
    "rocket thrust propellant Saturn",
    "glaciers carve valleys",
]


def documents() -> list[Document]:
    """About forty short documents on distinct topics, so rankings have depth and ties are rare."""
    topics = [
        ("cats", "Cats are small carnivorous mammals kept as pets. They purr when content and hunt mice."),
        (
            "rockets",
            "Rockets burn propellant to produce thrust. The Saturn V carried astronauts to the Moon.",
        ),
        ("paris", "Paris is the capital of France. The Eiffel Tower was completed in 1889."),
        ("volcano", "A volcano erupts lava and ash. Mount Vesuvius buried Pompeii in the year 79."),
        ("coffee", "Coffee beans are roasted seeds. Espresso forces hot water through ground coffee."),
        ("glaciers", "Glaciers are slow rivers of ice that carve valleys and leave moraines behind."),
        ("bees", "Honey bees dance to tell their hive where flowers are; they make honey from nectar."),
        ("chess", "Chess is a board game of two players; checkmate ends the game when the king is trapped."),
    ]
    docs = []
    for i in range(5):
        for name, text in topics:
            docs.append(
                Document(  # lengths differ within a topic, so BM25 scores do not tie
                    source=f"/corpus/{name}-{i}.md",
                    title=f"{name} {i}",
                    text=f"Note {i} on {name}. {text}" + " Noted." * i,
                )
            )
    return docs


def engines() -> list[str]:
    return ["edge", "local", *(["server"] if os.environ.get("QDRANT_URL") else [])]


def open_store(kind: str, root: Path, collection: str) -> VectorStore:
    if kind == "server":
        return VectorStore(collection, url=os.environ["QDRANT_URL"], api_key=os.environ.get("QDRANT_API_KEY"))
    return VectorStore(collection, path=root / kind, engine=kind)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def built(embedder: MultiHeadEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("engines")
    collection = f"congruence_{uuid.uuid4().hex[:8]}"
    stores = {}
    docs = documents()
    for kind in engines():
        store = open_store(kind, root, collection)
        make_ingestor(embedder, store).ingest_documents(docs)
        stores[kind] = store
    yield stores
    for store in stores.values():
        if store.is_server:
            store.drop()
        store.close()


@pytest.mark.parametrize("kind", engines()[1:])
def test_same_points_payloads_and_metadata(built: dict[str, VectorStore], kind: str) -> None:
    edge, other = built["edge"], built[kind]
    assert edge.count() == other.count() == 40
    assert set(edge.ids()) == set(other.ids())
    assert edge.vector_sizes() == other.vector_sizes()
    ids = sorted(edge.ids())[:5]
    assert edge.chunks(ids) == other.chunks(ids)
    a, b = edge.metadata(), other.metadata()
    assert set(a) == set(b) == {"embedder", "n_heads", "layout", "kb:default"}
    ka, kb = edge.kb_info(DEFAULT_KB), other.kb_info(DEFAULT_KB)
    assert ka is not None and kb is not None
    assert ka.bm25_avg_len == kb.bm25_avg_len and ka.importance_stale is kb.importance_stale is False
    assert ka.chunks == kb.chunks == 40
    assert ka.head_importance == pytest.approx(kb.head_importance, rel=1e-5)
    sources = ["/corpus/cats-0.md", "/corpus/chess-4.md", "/corpus/missing.md"]
    assert edge.source_states(sources, DEFAULT_KB) == other.source_states(sources, DEFAULT_KB)
    many = [d.source for d in documents()]  # > 16 sources: local mode's single-scan path
    assert edge.source_states(many, DEFAULT_KB) == other.source_states(many, DEFAULT_KB)


@pytest.mark.parametrize("kind", engines()[1:])
def test_same_dense_head_and_sparse_results(
    built: dict[str, VectorStore], kind: str, embedder: MultiHeadEmbedder
) -> None:
    edge, other = built["edge"], built[kind]
    emb = embedder.embed(QUESTIONS)
    bm25 = BM25Encoder()  # a query does not depend on the average length
    heads = emb.heads / np.linalg.norm(emb.heads, axis=-1, keepdims=True)
    for i, q in enumerate(QUESTIONS):
        searches = [Search(FULL, emb.full[i], 10), Search("bm25", bm25.encode_query(q), 10)]
        searches += [Search(head_name(h), heads[i, h], 10) for h in range(12)]
        for mine, theirs in zip(
            edge.search_batch(searches, SCOPE), other.search_batch(searches, SCOPE), strict=True
        ):
            assert len(mine) == len(theirs) > 0
            assert [h.score for h in mine] == pytest.approx([h.score for h in theirs], abs=1e-4)
            assert _tie_groups(mine) == _tie_groups(theirs)  # same ids, up to the order of equal scores


@pytest.mark.parametrize("kind", engines()[1:])
@pytest.mark.parametrize("method", list(Method))
def test_every_method_ranks_alike(
    built: dict[str, VectorStore], kind: str, method: Method, embedder: MultiHeadEmbedder
) -> None:
    a, b = Retriever(embedder, built["edge"]), Retriever(embedder, built[kind])
    for q in QUESTIONS:
        settings = RetrievalSettings(k=5, method=method)
        mine, theirs = a.rank([q], settings, SCOPE), b.rank([q], settings, SCOPE)
        assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], rel=1e-3, abs=1e-6)
        assert mine[0][0] == theirs[0][0] or mine[0][1] == pytest.approx(mine[1][1], rel=1e-3)


def _tie_groups(hits: list) -> list[set[str]]:
    """Ids grouped by equal score, best first; the last group is dropped (the limit may cut it)."""
    groups: list[tuple[float, set[str]]] = []
    for h in hits:
        if groups and abs(groups[-1][0] - h.score) < 1e-4:
            groups[-1][1].add(h.id)
        else:
            groups.append((h.score, {h.id}))
    return [ids for _, ids in groups[:-1]]


def test_empty_sparse_query_returns_nothing(built: dict[str, VectorStore]) -> None:
    from retrieval.sparse import SparseVec

    for store in built.values():
        assert store.search_sparse(SparseVec([], []), 5, SCOPE) == []


def test_stores_on_one_directory_share_one_shard(embedder: MultiHeadEmbedder, tmp_path: Path) -> None:
    """The edge engine refuses a second open of a directory; a process's stores share one instead."""
    first = VectorStore("c", path=tmp_path)
    make_ingestor(embedder, first).ingest_documents(documents()[:8])
    second = VectorStore("c", path=tmp_path)  # the app and a CLI command in one process, say
    assert second.count() == 8
    first.close()
    assert second.count() == 8  # closing one store leaves the shard open for the other
    second.close()
    assert VectorStore("c", path=tmp_path).count() == 8  # and reopens once all are closed


def test_edge_store_held_by_another_process_is_a_clear_error(
    embedder: MultiHeadEmbedder, tmp_path: Path
) -> None:
    store = VectorStore("x", path=tmp_path)
    make_ingestor(embedder, store).ingest_documents(documents()[:2])
    store.close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from retrieval.store import VectorStore; s = VectorStore('x', path={str(tmp_path)!r}); s.count(); "
            "print('ready', flush=True); import time; time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreUnavailable, match="open in another ragbot process"):
            VectorStore("x", path=tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_threads_query_while_another_ingests(embedder: MultiHeadEmbedder, tmp_path: Path) -> None:
    """The web server's threads share one store: queries during an ingest neither fail nor see garbage."""
    store = VectorStore("t", path=tmp_path)
    docs = documents()
    ingestor = make_ingestor(embedder, store)
    ingestor.ingest_documents(docs[:8])
    retriever = Retriever(embedder, store)
    errors: list[BaseException] = []
    answers: list[str] = []

    def ask() -> None:
        try:
            for _ in range(4):
                for q in QUESTIONS[:3]:
                    ranked = retriever.rank([q], RetrievalSettings(k=3), SCOPE)
                    answers.append(store.chunks([ranked[0][0]])[ranked[0][0]].source)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    ingestor.ingest_documents(docs)
    for t in threads:
        t.join()
    assert not errors and len(answers) == 4 * 4 * 3
    assert store.count() == len(docs)


def test_data_and_metadata_survive_a_restart(embedder: MultiHeadEmbedder, tmp_path: Path) -> None:
    store = VectorStore("p", path=tmp_path)
    make_ingestor(embedder, store).ingest_documents(documents())
    meta, ids = store.metadata(), set(store.ids())
    before = Retriever(embedder, store).rank(QUESTIONS[:2], RetrievalSettings(k=5), SCOPE)
    store.close()
    again = VectorStore("p", path=tmp_path)
    assert again.metadata() == meta and set(again.ids()) == ids
    assert Retriever(embedder, again).rank(QUESTIONS[:2], RetrievalSettings(k=5), SCOPE) == before
    again.drop()
    assert not again.exists() and not (tmp_path / "edge" / "p").exists()
    again.close()


def test_copy_collection_to_another_engine(
    built: dict[str, VectorStore], tmp_path: Path, embedder: MultiHeadEmbedder
) -> None:
    """How data leaves the embedded store for a server (here: local mode) without re-embedding."""
    target = VectorStore("copy", path=tmp_path, engine="local")
    assert copy_collection(built["edge"], target) == 40
    assert target.metadata() == built["edge"].metadata()
    a, b = Retriever(embedder, built["edge"]), Retriever(embedder, target)
    for q in QUESTIONS:
        assert [i for i, _ in a.rank([q], RetrievalSettings(k=3), SCOPE)] == [
            i for i, _ in b.rank([q], RetrievalSettings(k=3), SCOPE)
        ]
    expected = built["edge"].kb_info(DEFAULT_KB).head_importance  # type: ignore[union-attr]
    assert refresh_importance(target, DEFAULT_KB) == pytest.approx(expected, rel=1e-5)
    target.close()
