from pathlib import Path

from retrieval.embedder import MultiHeadEmbedder
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import FULL, VectorStore, head_name
from retrieval.types import DEFAULT_KB, Scope
from tests.conftest import TOPICS, make_ingestor
from tests.pdf_maker import write_pdf

SCOPE = Scope.of(DEFAULT_KB)


def test_ingest_then_reingest_adds_nothing(ingestor: Ingestor, store: VectorStore, corpus: Path) -> None:
    first = ingestor.ingest_paths([corpus])
    assert first.files_ok == len(TOPICS) and not first.errors
    count = store.count()
    assert count == first.chunks_added >= len(TOPICS)
    ids = set(store.ids())
    second = ingestor.ingest_paths([corpus])
    assert (second.files_ok, second.files_unchanged, second.chunks_added, second.chunks_removed) == (
        0,
        len(TOPICS),
        0,
        0,
    )
    assert store.count() == count and set(store.ids()) == ids


def test_changed_file_replaces_its_old_chunks(
    embedder: MultiHeadEmbedder, store: VectorStore, tmp_path: Path
) -> None:
    ingestor = make_ingestor(embedder, store, chunk_size=24, overlap=0)
    doc = tmp_path / "notes.md"
    keep = "The first paragraph stays exactly the same in both versions of the file."
    doc.write_text(f"{keep}\n\nThe old second paragraph mentions zeppelins and airships.")
    ingestor.ingest_paths([doc])
    before = {c.text: i for i, c in store.chunks(store.ids()).items()}
    doc.write_text(f"{keep}\n\nThe new second paragraph is instead about deep diving submarines and sonar.")
    report = ingestor.ingest_paths([doc])
    after = {c.text: i for i, c in store.chunks(store.ids()).items()}
    assert report.chunks_removed >= 1 and report.chunks_added >= 1
    assert not any("zeppelins" in t for t in after)
    assert any("submarines" in t for t in after)
    kept = [t for t in before if t.startswith("The first paragraph")]
    assert kept and all(after[t] == before[t] for t in kept)  # unchanged chunk kept its id, not re-embedded
    assert ingestor.ingest_paths([doc]).files_unchanged == 1


def test_bad_file_reported_and_others_ingested(ingestor: Ingestor, store: VectorStore, corpus: Path) -> None:
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7\n%\xe2\xe3 truncated nonsense")
    write_pdf(corpus / "good.pdf", ["Glaciers are slow rivers of ice that carve valleys."])
    report = ingestor.ingest_paths([corpus])
    assert len(report.errors) == 1
    assert "broken.pdf" in report.errors[0] and "malformed PDF" in report.errors[0]
    assert report.files_ok == len(TOPICS) + 1
    assert any("Glaciers" in c.text for c in store.chunks(store.ids()).values())


def test_persistence_across_restart(embedder: MultiHeadEmbedder, corpus: Path, tmp_path: Path) -> None:
    path = tmp_path / "persist"
    store = VectorStore("p", path=path)
    make_ingestor(embedder, store).ingest_paths([corpus])
    count, meta = store.count(), store.metadata()
    before = Retriever(embedder, store).rank(["What buried Pompeii?"], RetrievalSettings(k=3), SCOPE)
    store.close()

    reopened = VectorStore("p", path=path)
    assert reopened.count() == count
    assert reopened.metadata() == meta
    assert (
        Retriever(embedder, reopened).rank(["What buried Pompeii?"], RetrievalSettings(k=3), SCOPE) == before
    )
    assert make_ingestor(embedder, reopened).ingest_paths([corpus]).chunks_added == 0
    reopened.close()


def test_collection_has_named_vectors_and_importance(
    ingestor: Ingestor, store: VectorStore, corpus: Path
) -> None:
    ingestor.ingest_paths([corpus])
    vectors = store.vector_sizes()
    assert set(vectors) == {FULL} | {head_name(i) for i in range(12)}
    assert vectors[FULL] == 384 and vectors[head_name(0)] == 32
    weights = store.metadata()["kb:default"]["head_importance"]
    assert len(weights) == 12 and all(w > 0 for w in weights)
    assert max(weights) / min(weights) > 1.05  # heads are not all alike


def test_many_files_at_once_use_one_scan_and_stay_idempotent(ingestor: Ingestor, store: VectorStore) -> None:
    from retrieval.types import Document

    docs = [
        Document(source=f"/many/{i}.md", title=f"T{i}", text=f"Fact number {i} about item {i}.")
        for i in range(20)
    ]
    assert ingestor.ingest_documents(docs).chunks_added == 20
    states = store.source_states((d.source for d in docs), DEFAULT_KB)  # > 16 sources: the single-scan path
    assert all(len(state) == 1 for state in states.values())
    changed = [*docs[:19], docs[19].model_copy(update={"text": "Fact number 19 was corrected."})]
    report = ingestor.ingest_documents(changed)
    assert (report.files_unchanged, report.chunks_added, report.chunks_removed) == (19, 1, 1)
    assert store.count() == 20
