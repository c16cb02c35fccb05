"""Ingest survives kill -9: a real subprocess is killed mid-ingest, then the same ingest runs again.

Afterwards the store holds exactly the chunks of the files as they are now: none missing, none
duplicated, no stale chunk of an older version (orphan), every chunk stamped with its file's hash,
and head importance equal to a fresh computation over the final points.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval.chunking import Chunker, content_hash
from retrieval.embedder import MultiHeadEmbedder
from retrieval.importance import head_importance
from retrieval.ingest import Ingestor
from retrieval.loaders import load_document
from retrieval.store import VectorStore

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


def ingestor(embedder: MultiHeadEmbedder, store: VectorStore) -> Ingestor:
    return Ingestor(
        embedder, Chunker(embedder.tokenizer, CHUNK, OVERLAP), store, batch_size=8, progress=False
    )


CHILD = """
import sys
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
    states = store.source_states(f.source for f in files)
    stored = {cid for s in states.values() for cid in s}
    assert len(v1_ids) < len(stored) < len(expected) + len(v1_ids)  # it really stopped half-way
    assert store.metadata()["importance_stale"] is True

    report = ingestor(embedder, store).ingest_paths([docs])
    assert not report.errors
    ids = store.ids()
    assert len(ids) == len(set(ids)) == len(expected)  # no duplicates
    assert set(ids) == set(expected)  # nothing missing, no orphans of version 1
    for f in files:  # every chunk carries the hash of its file's current text
        hashes = set(store.source_states([f.source])[f.source].values())
        assert hashes == {content_hash(f.text + "\x1f")}
    meta = store.metadata()
    assert meta["importance_stale"] is False
    norms, heads = store.sample_heads(2000)
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
    good = store.metadata()["head_importance"]
    store.update_metadata(head_importance=[1.0] * 12, importance_stale=True)
    report = ing.ingest_paths([docs])
    assert report.files_unchanged == 6 and report.chunks_added == 0
    assert store.metadata()["head_importance"] == pytest.approx(good)
    assert store.metadata()["importance_stale"] is False
    store.close()
