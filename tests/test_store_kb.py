"""Knowledge bases in the store: a search reads only the knowledge bases of its scope, on every engine.

The same two knowledge bases are built on the edge engine, local mode and (with QDRANT_URL) a
server. A scoped search must return, on each, exactly what the same search returns on a store that
holds only that knowledge base's documents, at full depth (the filter is inside the query, not
applied afterwards). Then: a scope is required everywhere and an empty one searches nothing; a store
built before knowledge bases opens as `default` without re-embedding; delete and rename touch
exactly one knowledge base; statistics are kept per knowledge base.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.chunking import Chunker
from retrieval.embedder import MultiHeadEmbedder
from retrieval.importance import head_importance, unit
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.sparse import BM25Encoder
from retrieval.store import DOC_HASH, FULL, KB, SPARSE, Search, VectorStore, head_name
from retrieval.types import DEFAULT_KB, Document, Method, Scope
from tests.test_store import QUESTIONS, documents

A, B = Scope.of("a"), Scope.of("b")


def engines() -> list[str]:
    return ["edge", "local", *(["server"] if os.environ.get("QDRANT_URL") else [])]


def open_store(kind: str, root: Path, collection: str) -> VectorStore:
    if kind == "server":
        return VectorStore(collection, url=os.environ["QDRANT_URL"], api_key=os.environ.get("QDRANT_API_KEY"))
    return VectorStore(collection, path=root / kind, engine=kind)  # type: ignore[arg-type]


def ingestor(embedder: MultiHeadEmbedder, store: VectorStore, kb: str) -> Ingestor:
    return Ingestor(embedder, Chunker(embedder.tokenizer, 64, 8), store, progress=False, kb=kb)


def split() -> tuple[list[Document], list[Document]]:
    """Knowledge base a: the first half of the documents; b: the second half, made longer (so its
    BM25 average length differs), plus one file that a holds too (the same source in both)."""
    docs = documents()
    a = docs[:20]
    b = [d.model_copy(update={"text": d.text + " Filed under b, in the second archive."}) for d in docs[20:]]
    return a, [*b, a[0]]


@pytest.fixture(scope="module")
def built(embedder: MultiHeadEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Per engine: the shared store (a and b), and stores holding only a or only b."""
    root = tmp_path_factory.mktemp("kbs")
    a_docs, b_docs = split()
    out: dict[str, dict[str, VectorStore]] = {}
    for kind in engines():
        tag = uuid.uuid4().hex[:8]
        shared = open_store(kind, root, f"shared_{tag}")
        ingestor(embedder, shared, "a").ingest_documents(a_docs)
        ingestor(embedder, shared, "b").ingest_documents(b_docs)
        alone_a = open_store(kind, root / "alone-a", f"a_{tag}")
        ingestor(embedder, alone_a, "a").ingest_documents(a_docs)
        alone_b = open_store(kind, root / "alone-b", f"b_{tag}")
        ingestor(embedder, alone_b, "b").ingest_documents(b_docs)
        out[kind] = {"shared": shared, "a": alone_a, "b": alone_b}
    yield out
    for stores in out.values():
        for store in stores.values():
            if store.is_server:
                store.drop()
            store.close()


def legs(embedder: MultiHeadEmbedder, depth: int) -> list[Search]:
    emb = embedder.embed(QUESTIONS)
    heads = unit(emb.heads)
    bm25 = BM25Encoder()
    out = []
    for i, q in enumerate(QUESTIONS):
        out += [Search(FULL, emb.full[i], depth), Search(SPARSE, bm25.encode_query(q), depth)]
        out += [Search(head_name(h), heads[i, h], depth) for h in range(heads.shape[1])]
    return out


@pytest.mark.parametrize("kind", engines())
def test_a_scoped_search_finds_what_a_store_of_that_kb_alone_finds(
    built: dict, kind: str, embedder: MultiHeadEmbedder
) -> None:
    """Dense and head legs: the same ids and scores as the store of that knowledge base alone, at full
    depth. The sparse leg: only that knowledge base's chunks, as deep (IDF is the collection's, so
    its scores differ from a store of one knowledge base)."""
    stores = built[kind]
    shared = stores["shared"]
    searches = legs(embedder, 10)
    for name, scope in (("a", A), ("b", B)):
        members = set(stores[name].ids())
        assert set(shared.ids(scope)) == members  # the same ids: the same key, in a shared or own store
        mine, alone = shared.search_batch(searches, scope), stores[name].search_batch(searches, scope)
        for search, got, want in zip(searches, mine, alone, strict=True):
            assert {h.id for h in got} <= members
            assert len(got) == len(want)
            if search.using != SPARSE:
                assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-4)
                assert {h.id for h in got} == {h.id for h in want} or got[-1].score == pytest.approx(
                    got[-2].score, abs=1e-4
                )
    both = shared.search_batch(searches, Scope.of("a", "b"))
    assert all(len(hits) == 10 for hits, s in zip(both, searches, strict=True) if s.using != SPARSE)


@pytest.mark.parametrize("kind", engines()[1:])
def test_engines_agree_on_scoped_results(built: dict, kind: str, embedder: MultiHeadEmbedder) -> None:
    edge, other = built["edge"]["shared"], built[kind]["shared"]
    searches = legs(embedder, 8)
    for scope in (A, B, Scope.of("a", "b"), Scope.of("b", "nowhere")):
        for mine, theirs in zip(
            edge.search_batch(searches, scope), other.search_batch(searches, scope), strict=True
        ):
            assert [h.score for h in mine] == pytest.approx([h.score for h in theirs], abs=1e-4)
    for method in Method:
        settings = RetrievalSettings(k=4, method=method)
        for q in QUESTIONS[:3]:
            mine = Retriever(embedder, edge).rank([q], settings, A)
            theirs = Retriever(embedder, other).rank([q], settings, A)
            assert [s for _, s in mine] == pytest.approx([s for _, s in theirs], rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("kind", engines())
def test_the_same_file_in_two_kbs_is_two_sets_of_chunks(built: dict, kind: str) -> None:
    shared = built[kind]["shared"]
    source = split()[0][0].source
    in_a = shared.source_states([source], "a")[source]
    in_b = shared.source_states([source], "b")[source]
    assert in_a and in_b and not set(in_a) & set(in_b)
    assert {s.kb for s in shared.sources(Scope.of("a", "b")) if s.source == source} == {"a", "b"}
    assert all(c.kb == "b" for c in shared.chunks(in_b).values())


def test_a_scope_is_required_and_an_empty_one_searches_nothing(
    built: dict, embedder: MultiHeadEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    for fn in (Retriever.search, Retriever.retrieve, Retriever.rank, Retriever.fuse):
        assert inspect.signature(fn).parameters["scope"].default is inspect.Parameter.empty
    for fn in (
        VectorStore.search_batch,
        VectorStore.search,
        VectorStore.search_many,
        VectorStore.search_sparse,
    ):
        assert inspect.signature(fn).parameters["scope"].default is inspect.Parameter.empty
    store = built["edge"]["shared"]
    retriever = Retriever(embedder, store)
    with pytest.raises(TypeError):
        retriever.retrieve("What buried Pompeii?")  # type: ignore[call-arg]

    def refuse(*args: object) -> None:
        raise AssertionError("an empty scope reached the engine")

    monkeypatch.setattr(store._engine, "search", refuse)
    empty = Scope(frozenset())
    assert store.search_batch(legs(embedder, 5), empty) == [[] for _ in legs(embedder, 5)]
    for method in Method:
        assert retriever.rank(["What buried Pompeii?"], RetrievalSettings(k=3, method=method), empty) == []
    result = retriever.search("What buried Pompeii?", "What buried Pompeii?", RetrievalSettings(), empty)
    assert result.chunks == []
    assert store.sources(empty) == [] and store.count(empty) == 0


@pytest.mark.parametrize("kind", engines())
def test_statistics_are_per_knowledge_base(built: dict, kind: str, embedder: MultiHeadEmbedder) -> None:
    shared = built[kind]["shared"]
    a, b = shared.kb_info("a"), shared.kb_info("b")
    assert a is not None and b is not None
    assert (a.chunks, b.chunks) == (shared.count(A), shared.count(B)) == (20, 21)
    assert a.bm25_avg_len is not None and b.bm25_avg_len is not None and b.bm25_avg_len > a.bm25_avg_len
    for info in (a, b):
        norms, heads = shared.sample_heads(2000, info.name)
        assert len(norms) == info.chunks
        assert info.head_importance == pytest.approx(head_importance(norms, heads).tolist(), rel=1e-5)
        alone = built[kind][info.name].kb_info(info.name)
        assert info.head_importance == pytest.approx(alone.head_importance, rel=1e-5)  # as if alone
    assert a.head_importance != pytest.approx(b.head_importance, rel=1e-6)
    retriever = Retriever(embedder, shared)
    assert retriever.head_weights(A) == pytest.approx(a.head_importance)
    both = (20 * np.asarray(a.head_importance) + 21 * np.asarray(b.head_importance)) / 41
    assert retriever.head_weights(Scope.of("a", "b")) == pytest.approx(both.tolist())
    assert retriever.head_weights(Scope.of("nowhere")) == [1.0] * 12


def old_store(embedder: MultiHeadEmbedder, root: Path, engine: str, docs: list[Document]) -> dict:
    """A store as the code before knowledge bases wrote it: no `kb` in the payloads, no layout, and the
    statistics at the top of the metadata. Returns its ids and statistics."""
    store = VectorStore("old", path=root, engine=engine)  # type: ignore[arg-type]
    store.ensure_collection(embedder.dim, embedder.n_heads, embedder.head_dim, embedder.model_name)
    chunker = Chunker(embedder.tokenizer, 64, 8)
    chunks = [c for d in docs for c in chunker.split(d)]
    emb = embedder.embed([c.text for c in chunks])
    bm25 = BM25Encoder(avg_len=30.0)
    doc_hash = {d.source: Ingestor(embedder, chunker, store, progress=False).doc_hash(d) for d in docs}
    payloads = [
        {k: v for k, v in c.model_dump().items() if k != KB}
        | {DOC_HASH: doc_hash[c.source], "head_norms": np.linalg.norm(emb.heads[i], axis=-1).tolist()}
        for i, c in enumerate(chunks)
    ]
    names = [FULL] + [head_name(h) for h in range(embedder.n_heads)]
    dense = {FULL: emb.full} | {head_name(h): unit(emb.heads[:, h]) for h in range(embedder.n_heads)}
    store._engine.upsert(
        [c.id for c in chunks], dense, [bm25.encode_document(c.text) for c in chunks], payloads
    )
    imp = [float(i + 1) for i in range(embedder.n_heads)]
    store.update_metadata(layout=None, head_importance=imp, bm25_avg_len=30.0, importance_stale=False)
    if engine == "edge":  # nor had it the `kb` index
        import qdrant_edge as qe

        shard = store._engine._shard()  # type: ignore[attr-defined]
        shard.update(qe.UpdateOperation.delete_field_index(KB))
        assert KB not in shard.info().payload_schema
    assert names and store._engine.count() == len(chunks)
    store.close()
    return {"ids": {c.id for c in chunks}, "importance": imp}


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_a_store_from_before_knowledge_bases_opens_as_default(
    embedder: MultiHeadEmbedder, tmp_path: Path, engine: str
) -> None:
    docs = documents()[:6]
    old = old_store(embedder, tmp_path, engine, docs)
    store = VectorStore("old", path=tmp_path, engine=engine)  # type: ignore[arg-type]
    assert store.metadata()["layout"] == 2 and store.kb_names() == [DEFAULT_KB]
    assert set(store.ids(Scope.of(DEFAULT_KB))) == old["ids"]  # every chunk, its id unchanged
    assert {r.payload[KB] for r in store.scroll(fields=[KB])} == {DEFAULT_KB}
    if engine == "edge":
        assert KB in store._engine._shard().info().payload_schema  # type: ignore[attr-defined]
    info = store.kb_info(DEFAULT_KB)
    assert info is not None and info.key == "" and info.bm25_avg_len == 30.0
    assert list(info.head_importance or ()) == old["importance"] and info.chunks == len(old["ids"])
    hits = Retriever(embedder, store).rank(QUESTIONS[:2], RetrievalSettings(k=3), Scope.of(DEFAULT_KB))
    assert hits and {i for i, _ in hits} <= old["ids"]
    report = ingestor(embedder, store, DEFAULT_KB).ingest_documents(docs)
    assert (report.files_unchanged, report.chunks_added) == (len(docs), 0)  # nothing re-embedded
    meta = store.metadata()
    store.close()
    again = VectorStore("old", path=tmp_path, engine=engine)  # type: ignore[arg-type]
    assert again.metadata() == meta  # opening again changes nothing
    again.close()


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_delete_and_rename_touch_exactly_one_knowledge_base(
    embedder: MultiHeadEmbedder, tmp_path: Path, engine: str
) -> None:
    store = VectorStore("kbs", path=tmp_path, engine=engine)  # type: ignore[arg-type]
    a_docs, b_docs = split()
    ingestor(embedder, store, "a").ingest_documents(a_docs)
    ingestor(embedder, store, "b").ingest_documents(b_docs)
    a_ids, b_ids = set(store.ids(A)), set(store.ids(B))
    before = Retriever(embedder, store).rank(QUESTIONS, RetrievalSettings(k=3), A)

    store.rename_kb("a", "c")
    assert store.kb_names() == ["b", "c"] and store.ids(A) == []
    assert set(store.ids(Scope.of("c"))) == a_ids and set(store.ids(B)) == b_ids
    assert Retriever(embedder, store).rank(QUESTIONS, RetrievalSettings(k=3), Scope.of("c")) == before
    again = ingestor(embedder, store, "c").ingest_documents(a_docs)
    assert (again.files_unchanged, again.chunks_added) == (len(a_docs), 0)  # the key moved with the name
    with pytest.raises(ValueError, match="already exists"):
        store.rename_kb("b", "c")
    with pytest.raises(KeyError):
        store.rename_kb("a", "d")

    fresh = ingestor(embedder, store, "a").ingest_documents(a_docs[:2])  # a new 'a': new ids
    assert fresh.chunks_added == 2 and not set(store.ids(A)) & a_ids
    assert set(store.ids(Scope.of("c"))) == a_ids

    assert store.delete_kb("c") == len(a_ids)
    assert store.kb_names() == ["a", "b"] and store.ids(Scope.of("c")) == []
    assert set(store.ids(B)) == b_ids and len(store.ids(A)) == 2
    assert store.delete_kb("c") == 0  # again: nothing left to do
    assert store.count() == len(b_ids) + 2
    store.close()


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_a_small_kb_far_from_the_query_still_fills_the_depth(tmp_path: Path, engine: str) -> None:
    """Local mode over-fetches in proportion to the scope's share and asks again when that falls
    short: here every point of the other knowledge base is nearer the query than any of this one's."""
    from retrieval.embedder import MultiHeadEmbeddings
    from retrieval.sparse import SparseVec
    from retrieval.types import Chunk

    rng = np.random.default_rng(3)
    query = unit(rng.standard_normal(384)).astype(np.float32)
    store = VectorStore("far", path=tmp_path, engine=engine)  # type: ignore[arg-type]
    store.ensure_collection(384, 1, 32, "random")
    for kb, n, sign in (("near", 60, 1.0), ("far", 12, -1.0)):
        store.ensure_kb(kb)
        full = unit(sign * query + 0.3 * rng.standard_normal((n, 384))).astype(np.float32)
        chunks = [
            Chunk(id=str(uuid.uuid4()), source=f"/{kb}/{i}", title="", text="x", position=0, kb=kb)
            for i in range(n)
        ]
        heads = rng.standard_normal((n, 1, 32)).astype(np.float32)
        store.upsert(chunks, MultiHeadEmbeddings(full, heads), [SparseVec([], [])] * n, ["stamped"] * n)
    far = set(store.ids(Scope.of("far")))
    hits = store.search(FULL, query, 3, Scope.of("far"))
    assert len(hits) == 3 and {h.id for h in hits} <= far
    every = sorted(
        far, key=lambda i: -float(np.dot(query, store._engine.retrieve([i], False, [FULL])[0].vectors[FULL]))
    )
    assert [h.id for h in hits] == every[:3]
    store.close()
