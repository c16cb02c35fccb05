"""Ingest survives kill -9: a real subprocess is killed mid-ingest, then the same ingest runs again.

Afterwards the store holds exactly the chunks of the files as they are now: none missing, none
duplicated, no stale chunk of an older version (orphan), every chunk stamped with its file's hash,
and head importance equal to a fresh computation over the final points.

The web library's re-upload is killed the same way: after a restart and `Library.reconcile()`, one
version of the file is left (the old one, or the new one when the kill came after its commit), on
disk, in the list and in search; pending chunks are never searched, on either embedded engine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.library import Library
from retrieval.chunking import Chunker, content_hash
from retrieval.embedder import MultiHeadEmbedder
from retrieval.importance import head_importance
from retrieval.ingest import Ingestor
from retrieval.loaders import load_document
from retrieval.store import FULL, PENDING, SPARSE, EngineName, Search, VectorStore, head_name
from retrieval.types import DEFAULT_KB, Document, FileStatus, Scope

CHUNK, OVERLAP = 24, 0
WORDS = [
    "river",
    "mountain",
    "copper",
    "violin",
    "harbour",
    "lantern",
    "orchard",
    "glacier",
    "falcon",
    "meadow",
]


def write_corpus(folder: Path, version: int, files: int) -> None:
    folder.mkdir(exist_ok=True)
    for i in range(files):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(8))
        # Version 2 rewrites the second paragraph of every other file: its old chunks become stale.
        second = (
            f"Revised notes {version} on item {i}." if version == 2 and i % 2 else f"Plain notes on item {i}."
        )
        (folder / f"doc{i:03d}.md").write_text(
            f"Document {i} is about {words}. It has a first paragraph that stays the same in every version.\n\n"
            f"{second} The {words} appear again here, with number {i * 7}.\n"
        )


def kb_meta(store: VectorStore) -> dict[str, Any]:
    """The default knowledge base's statistics as the metadata stores them."""
    return dict(store.metadata()["kb:" + DEFAULT_KB])


def ingestor(embedder: MultiHeadEmbedder, store: VectorStore) -> Ingestor:
    return Ingestor(
        embedder, Chunker(embedder.tokenizer, CHUNK, OVERLAP), store, batch_size=8, progress=False
    )


CHILD = """
import sys
from collections.abc import Sequence
from pathlib import Path
from retrieval.chunking import Chunker
from retrieval.embedder import MultiHeadEmbedder
from retrieval.ingest import Ingestor
from retrieval.store import VectorStore

class Announcing(VectorStore):
    def upsert(self, *args, **kwargs):
        super().upsert(*args, **kwargs)
        print("batch", flush=True)

embedder = MultiHeadEmbedder()
store = Announcing("crash", path=sys.argv[1])
Ingestor(embedder, Chunker(embedder.tokenizer, int(sys.argv[3]), int(sys.argv[4])), store, batch_size=8, progress=False).ingest_paths([Path(sys.argv[2])])
print("done", flush=True)
"""


def test_kill_9_mid_ingest_then_ingest_again(embedder: MultiHeadEmbedder, tmp_path: Path) -> None:
    docs, root = tmp_path / "docs", tmp_path / "store"
    write_corpus(docs, version=1, files=30)
    store = VectorStore("crash", path=root)
    ingestor(embedder, store).ingest_paths([docs])
    v1_ids = set(store.ids())
    store.close()

    write_corpus(docs, version=2, files=60)  # 15 files changed, 30 new
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(docs), str(CHUNK), str(OVERLAP)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert child.stdout is not None
    for _ in range(3):  # three batches of 8 new chunks are in the store: kill it mid-ingest
        assert child.stdout.readline().strip() == "batch"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    chunker = Chunker(embedder.tokenizer, CHUNK, OVERLAP)
    files = [load_document(p) for p in sorted(docs.iterdir())]
    expected = {c.id: f for f in files for c in chunker.split(f)}
    store = VectorStore("crash", path=root)
    states = store.source_states((f.source for f in files), DEFAULT_KB)
    stored = {cid for s in states.values() for cid in s}
    assert len(v1_ids) < len(stored) < len(expected) + len(v1_ids)  # it really stopped half-way
    assert kb_meta(store)["importance_stale"] is True

    report = ingestor(embedder, store).ingest_paths([docs])
    assert not report.errors
    ids = store.ids()
    assert len(ids) == len(set(ids)) == len(expected)  # no duplicates
    assert set(ids) == set(expected)  # nothing missing, no orphans of version 1
    for f in files:  # every chunk carries the hash of its file's current text
        hashes = set(store.source_states([f.source], DEFAULT_KB)[f.source].values())
        assert hashes == {content_hash(f.text + "\x1f")}
    meta = kb_meta(store)
    assert meta["importance_stale"] is False
    norms, heads = store.sample_heads(2000, DEFAULT_KB)
    assert meta["head_importance"] == pytest.approx(head_importance(norms, heads).tolist())

    again = ingestor(embedder, store).ingest_paths([docs])
    assert (again.files_unchanged, again.chunks_added, again.chunks_removed) == (len(files), 0, 0)
    store.close()


def test_stale_importance_is_recomputed_even_when_no_file_changed(
    embedder: MultiHeadEmbedder, tmp_path: Path
) -> None:
    """A crash after the last chunk but before importance was refreshed leaves the stale mark behind."""
    docs = tmp_path / "docs"
    write_corpus(docs, version=1, files=6)
    store = VectorStore("s", path=tmp_path / "store")
    ing = ingestor(embedder, store)
    ing.ingest_paths([docs])
    good = kb_meta(store)["head_importance"]
    store.update_kb(DEFAULT_KB, head_importance=[1.0] * 12, importance_stale=True)
    report = ing.ingest_paths([docs])
    assert report.files_unchanged == 6 and report.chunks_added == 0
    assert kb_meta(store)["head_importance"] == pytest.approx(good)
    assert kb_meta(store)["importance_stale"] is False
    store.close()


# ---- the web library: a re-upload is atomic, and reconcile() repairs what a kill cut off ----------
OLD_TOPICS = ["harbour cranes", "copper mines", "violin makers", "glacier walks", "falcon training"]
NEW_TOPICS = ["orchard pruning", "lantern festivals", "meadow birds", "river ferries", "mountain huts"]


def notes(version: int, paragraphs: int = 30) -> str:
    """A long upload; the new version rewrites three paragraphs in four (their old chunks go stale)."""
    parts = []
    for i in range(paragraphs):
        if version == 2 and i % 4:
            topic = NEW_TOPICS[i % len(NEW_TOPICS)]
            parts.append(f"Section {i} of the revised notes covers {topic}, measured at {i * 11} metres.")
        else:
            topic = OLD_TOPICS[i % len(OLD_TOPICS)]
            parts.append(f"Section {i} of the notes describes {topic}, recorded in the year {1800 + i}.")
    return "# Field notes\n\n" + "\n\n".join(parts) + "\n"


def version_ids(embedder: MultiHeadEmbedder, source: Path, text: str) -> set[str]:
    doc = Document(source=str(source), title="Field notes", text=text)
    return {c.id for c in Chunker(embedder.tokenizer, CHUNK, OVERLAP).split(doc)}


def searchable(embedder: MultiHeadEmbedder, store: VectorStore, ing: Ingestor, texts: list[str]) -> set[str]:
    """Every id any leg returns for these queries: dense legs deeper than the collection return every
    point a search may return at all, so this is exactly the searchable set."""
    emb = embedder.embed(texts)
    depth = store.count() + 10
    searches = []
    for i, text in enumerate(texts):
        searches.append(Search(FULL, emb.full[i], depth))
        searches += [Search(head_name(h), emb.heads[i, h], depth) for h in range(emb.heads.shape[1])]
        searches.append(Search(SPARSE, ing.bm25([]).encode_query(text), depth))
    return {hit.id for hits in store.search_batch(searches, Scope.of(DEFAULT_KB)) for hit in hits}


WEB_CHILD = """
import sys, time
from pathlib import Path
from bot.library import Library
from retrieval.chunking import Chunker
from retrieval.embedder import MultiHeadEmbedder
from retrieval.ingest import Ingestor
from retrieval.store import VectorStore

root, uploads, incoming, chunk, overlap, stop_at = sys.argv[1:7]

def halt(point):
    print(point, flush=True)
    time.sleep(600)  # killed here

class Halting(VectorStore):
    upserts = 0
    def upsert(self, *args, **kwargs):
        super().upsert(*args, **kwargs)
        Halting.upserts += 1
        if stop_at == f"upsert {Halting.upserts}":
            halt(stop_at)
    def set_doc_hash(self, ids, doc_hash):
        super().set_doc_hash(ids, doc_hash)
        if stop_at == "stamped":
            halt(stop_at)

embedder = MultiHeadEmbedder()
store = Halting("web", path=root)
ingestor = Ingestor(embedder, Chunker(embedder.tokenizer, int(chunk), int(overlap)), store, batch_size=8, progress=False)
Library(ingestor, Path(uploads)).upload([("notes.md", Path(incoming))])
print("done", flush=True)
"""


@pytest.mark.parametrize(
    ("stop_at", "survivor"),
    [
        ("upsert 2", 1),  # 16 of the new version's chunks stored, none stamped: the old version stays
        ("stamped", 2),  # the new version committed, its stale chunks and the file swap not done yet
    ],
)
def test_kill_9_mid_web_reupload_leaves_exactly_one_version(
    embedder: MultiHeadEmbedder, tmp_path: Path, stop_at: str, survivor: int
) -> None:
    root, uploads = tmp_path / "store", tmp_path / "data" / "uploads"
    store = VectorStore("web", path=root)
    ing = ingestor(embedder, store)
    first = tmp_path / "v1.md"
    first.write_text(notes(1))
    assert Library(ing, uploads).upload([("notes.md", first)])[0].status is FileStatus.ADDED
    store.close()
    final = (uploads / "notes.md").resolve()
    ids = {1: version_ids(embedder, final, notes(1)), 2: version_ids(embedder, final, notes(2))}
    assert len(ids[2] - ids[1]) > 16  # the kill at the second batch of 8 really is mid-ingest

    second = tmp_path / "v2.md"
    second.write_text(notes(2))
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WEB_CHILD,
            str(root),
            str(uploads),
            str(second),
            str(CHUNK),
            str(OVERLAP),
            stop_at,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == stop_at
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    store = VectorStore("web", path=root)
    ing = ingestor(embedder, store)
    library = Library(ing, uploads)
    queries = [notes(1).split("\n\n")[2], notes(2).split("\n\n")[2], "revised notes orchard pruning"]
    if stop_at == "upsert 2":  # before reconcile: pending chunks are stored but neither searched nor listed
        assert len(store.ids()) == len(ids[1]) + 16
        assert searchable(embedder, store, ing, queries) == ids[1]
        assert [d.chunks for d in library.documents()] == [len(ids[1])]

    report = library.reconcile()
    assert report.completed == (("notes.md",) if survivor == 2 else ())
    assert report.rolled_back == (("notes.md",) if survivor == 1 else ())
    assert report.repaired == ("notes.md",)  # pending chunks (1) or stale chunks (2) removed
    assert report.importance_refreshed

    text = notes(survivor)
    assert final.read_text() == text
    assert sorted(p.name for p in uploads.iterdir()) == ["notes.md"]  # no staged file left
    assert set(store.ids()) == ids[survivor]
    assert set(store.source_states([str(final)], DEFAULT_KB)[str(final)].values()) == {
        ing.doc_hash(load_document(final))
    }
    assert [(d.source, d.chunks) for d in library.documents()] == [(str(final), len(ids[survivor]))]
    assert searchable(embedder, store, ing, queries) == ids[survivor]
    meta = kb_meta(store)
    assert meta["importance_stale"] is False
    norms, heads = store.sample_heads(2000, DEFAULT_KB)
    assert meta["head_importance"] == pytest.approx(head_importance(norms, heads).tolist())

    assert not library.reconcile().changed  # nothing left to do, and it says so
    store.close()


class FailingStore(VectorStore):
    """Raises on the n-th upsert of new chunks, as a full disk or a lost server would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail_at, self.upserts = 0, 0
        self.stamped: list[str] = []  # document hashes committed, in order

    def upsert(self, *args: Any, **kwargs: Any) -> None:
        self.upserts += 1
        if self.upserts == self.fail_at:
            raise OSError("No space left on device")
        super().upsert(*args, **kwargs)

    def set_doc_hash(self, ids: Sequence[str], doc_hash: str) -> None:
        super().set_doc_hash(ids, doc_hash)
        self.stamped.append(doc_hash)


def test_an_exception_during_a_reupload_leaves_the_old_versions_serving(
    embedder: MultiHeadEmbedder, tmp_path: Path
) -> None:
    uploads = tmp_path / "uploads"
    store = FailingStore("web", path=tmp_path / "store")
    ing = ingestor(embedder, store)
    library = Library(ing, uploads)
    first, other = tmp_path / "v1.md", tmp_path / "other-v1.md"
    first.write_text(notes(1, 8))
    other.write_text("# Other\n\n" + notes(1, 6).replace("notes", "minutes"))
    library.upload([("notes.md", first), ("other.md", other)])
    before = {
        s: dict(chunks) for s, chunks in store.source_states(map(str, uploads.iterdir()), DEFAULT_KB).items()
    }
    old_files = {p.name: p.read_text() for p in uploads.iterdir()}

    # notes.md is committed (its new chunks fit the first batch of 8) when other.md's second batch fails
    final = uploads.resolve() / "notes.md"
    new = version_ids(embedder, final, notes(2, 8)) - version_ids(embedder, final, notes(1, 8))
    assert 0 < len(new) < 8
    second, other2 = tmp_path / "v2.md", tmp_path / "other-v2.md"
    second.write_text(notes(2, 8))
    other2.write_text("# Other\n\n" + notes(2, 6).replace("notes", "minutes"))
    store.upserts, store.fail_at, store.stamped = 0, 2, []
    with pytest.raises(OSError, match="No space left"):
        library.upload([("notes.md", second), ("other.md", other2)])
    assert store.stamped[0] == ing.doc_hash(load_document(second))  # committed, then undone

    assert {p.name: p.read_text() for p in uploads.iterdir()} == old_files  # no staged file either
    after = store.source_states(before, DEFAULT_KB)
    assert after == before  # the same chunks, stamped with the old versions' hashes, nothing pending
    new_text = notes(2, 8).split("\n\n")[3]
    assert searchable(embedder, store, ing, [new_text]) == {i for c in before.values() for i in c}
    assert kb_meta(store)["importance_stale"] is False
    assert {d.name: d.chunks for d in library.documents()} == {
        s.rsplit("/", 1)[-1]: len(c) for s, c in before.items()
    }
    assert not library.reconcile().changed
    store.close()


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_pending_chunks_are_never_searched(
    embedder: MultiHeadEmbedder, tmp_path: Path, engine: EngineName
) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs, version=1, files=3)
    store = VectorStore("p", path=tmp_path / "store", engine=engine)
    ing = ingestor(embedder, store)
    ing.ingest_paths([docs])
    committed = set(store.ids())
    extra = Document(source=str(docs / "new.md"), title="New", text="Lanterns float on the harbour at night.")
    chunks = Chunker(embedder.tokenizer, CHUNK, OVERLAP).split(extra)
    texts = [c.text for c in chunks]
    store.upsert(
        chunks,
        embedder.embed(texts),
        [ing.bm25([]).encode_document(t) for t in texts],
        [PENDING] * len(chunks),
    )
    assert searchable(embedder, store, ing, texts) == committed
    store.close()

    store = VectorStore("p", path=tmp_path / "store", engine=engine)  # reopened: found pending again
    assert searchable(embedder, store, ing, texts) == committed
    store.set_doc_hash([c.id for c in chunks], "stamped")
    assert searchable(embedder, store, ing, texts) == committed | {c.id for c in chunks}
    store.delete([c.id for c in chunks])
    assert searchable(embedder, store, ing, texts) == committed
    store.close()


# ---- knowledge bases: a delete or rename killed part-way is finished when the store is next opened --
KB_CHILD = """
import sys, time
from retrieval.store import VectorStore

root, engine, action, stop_at = sys.argv[1:5]
store = VectorStore("kbs", path=root, engine=engine)

def halting(name):
    real = getattr(store._engine, name)
    def call(*args, **kwargs):
        if stop_at == "before " + name:
            print(stop_at, flush=True); time.sleep(600)
        real(*args, **kwargs)
        if stop_at == "after " + name:
            print(stop_at, flush=True); time.sleep(600)
    setattr(store._engine, name, call)

halting("delete_where")
halting("set_payload_where")
if action == "delete":
    store.delete_kb("a")
else:
    store.rename_kb("a", "c")
print("done", flush=True)
"""


@pytest.mark.parametrize("engine", ["edge", "local"])
@pytest.mark.parametrize(
    ("action", "stop_at"),
    [
        ("delete", "before delete_where"),  # marked as being deleted, no chunk gone yet
        ("delete", "after delete_where"),  # chunks gone, the entry not yet
        ("rename", "before set_payload_where"),  # the new entry written, no chunk moved yet
        ("rename", "after set_payload_where"),  # chunks moved, the old entry not yet dropped
    ],
)
def test_kill_9_mid_kb_delete_or_rename_is_finished_at_the_next_open(
    embedder: MultiHeadEmbedder, tmp_path: Path, engine: EngineName, action: str, stop_at: str
) -> None:
    docs = tmp_path / "docs"
    write_corpus(docs, version=1, files=8)
    root = tmp_path / "store"
    store = VectorStore("kbs", path=root, engine=engine)
    files = sorted(docs.iterdir())
    for kb, part in (("a", files[:5]), ("b", files[3:])):  # two files are in both
        Ingestor(
            embedder, Chunker(embedder.tokenizer, CHUNK, OVERLAP), store, batch_size=8, progress=False, kb=kb
        ).ingest_paths(part)
    a_ids, b_ids = set(store.ids(Scope.of("a"))), set(store.ids(Scope.of("b")))
    b_meta = store.kb_info("b")
    store.close()

    child = subprocess.Popen(
        [sys.executable, "-c", KB_CHILD, str(root), engine, action, stop_at],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == stop_at
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    store = VectorStore("kbs", path=root, engine=engine)  # opening finishes what was cut off
    assert set(store.ids(Scope.of("b"))) == b_ids and store.kb_info("b") == b_meta
    assert store.ids(Scope.of("a")) == []
    if action == "delete":
        assert store.kb_names() == ["b"] and store.count() == len(b_ids)
    else:
        assert store.kb_names() == ["b", "c"] and set(store.ids(Scope.of("c"))) == a_ids
        info = store.kb_info("c")
        assert info is not None and info.renaming_from is None and info.key == "a"
        assert store.kb_info("a") is None
    assert store.delete_kb("a") == 0  # idempotent
    store.close()
