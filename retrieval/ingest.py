"""Ingest files into the store: load, chunk, embed only what is new, replace what changed.

Chunk ids are content-derived, so re-ingesting an unchanged file writes nothing, and a changed file
keeps its unchanged chunks, gains the new ones and loses the stale ones.

Crash safety (a kill -9 at any point, then the same ingest again, ends with exactly the files' chunks):
- new chunks are written with an empty document hash; only when all of a file's chunks are stored
  are they stamped with the file's hash and its stale chunks deleted. A file counts as unchanged
  only when every stored chunk carries its hash, so a half-written file is planned again: its
  stored chunks are kept (same ids, not re-embedded), the missing ones written, stale ones removed.
- until that stamp a file's previous version keeps serving: searches never return pending chunks
  (the store filters them out), so a replacement becomes visible at once, complete, when stamped.
- head importance is marked stale in the metadata before the first write and recomputed at the
  end; an ingest that finds it stale recomputes it even when no file changed.

Knowledge bases: an Ingestor writes into one (`kb`). Files are matched by source within it, so the
same file in two knowledge bases is two sets of chunks (their ids differ by the knowledge base's
key), and its statistics (head importance, BM25 average length) are its own.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from retrieval.chunking import Chunker, content_hash
from retrieval.importance import head_importance
from retrieval.loaders import DocumentError, discover, load_document
from retrieval.sparse import BM25Encoder, terms
from retrieval.store import PENDING, VectorStore
from retrieval.types import (
    DEFAULT_KB,
    Chunk,
    Document,
    FileOutcome,
    FileStatus,
    IngestReport,
    Scope,
    check_kb_name,
)

if TYPE_CHECKING:  # a type only: importing retrieval needs no torch
    from retrieval.embedder import Embedder

log = logging.getLogger(__name__)


@dataclass
class _FilePlan:
    doc_hash: str
    new: list[Chunk]
    keep: list[str]
    remove: list[str]


@dataclass
class Ingestor:
    embedder: Embedder
    chunker: Chunker
    store: VectorStore
    chunker_signature: str = ""
    importance_sample: int = 2000
    batch_size: int = 128
    progress: bool = True
    kb: str = DEFAULT_KB  # the knowledge base this ingestor writes into
    _bm25: BM25Encoder | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        check_kb_name(self.kb)
        self.store.ensure_collection(
            self.embedder.dim, self.embedder.n_heads, self.embedder.head_dim, self.embedder.model_name
        )

    def ingest_paths(self, paths: list[Path]) -> IngestReport:
        report = IngestReport()
        docs: list[Document] = []
        files = discover(paths)
        for path in tqdm(
            files, unit="file", desc="reading", disable=not self.progress or len(files) < 20, file=sys.stderr
        ):
            try:
                docs.append(load_document(path))
            except DocumentError as exc:
                report.errors.append(str(exc))
                report.files.append(
                    FileOutcome(path=str(path), status=FileStatus.REJECTED, reason=exc.reason)
                )
                log.warning("skipped %s", exc)
        if not docs and not report.errors:
            report.errors.append(f"no supported files found in {', '.join(map(str, paths))}")
        return self.ingest_documents(docs, report)

    def ingest_documents(self, docs: list[Document], report: IngestReport | None = None) -> IngestReport:
        report = report or IngestReport()
        plans: list[_FilePlan] = []
        if not docs and self.store.kb_info(self.kb) is None:
            return report
        key = self.store.ensure_kb(self.kb).key
        states = self.store.source_states((d.source for d in docs), self.kb)
        for doc in docs:
            doc_hash = self.doc_hash(doc)
            existing = states[doc.source]
            if existing and set(existing.values()) == {doc_hash}:
                report.files_unchanged += 1
                report.files.append(
                    FileOutcome(
                        path=doc.source, source=doc.source, status=FileStatus.UNCHANGED, chunks=len(existing)
                    )
                )
                continue
            chunks = self.chunker.split(doc, self.kb, key)
            new_ids = {c.id for c in chunks}
            plans.append(
                _FilePlan(
                    doc_hash=doc_hash,
                    new=[c for c in chunks if c.id not in existing],
                    keep=[i for i in existing if i in new_ids],
                    remove=[i for i in existing if i not in new_ids],
                )
            )
            report.files_ok += 1
            status = FileStatus.REPLACED if existing else FileStatus.ADDED
            report.files.append(
                FileOutcome(path=doc.source, source=doc.source, status=status, chunks=len(chunks))
            )
        if plans:
            self.store.update_kb(self.kb, importance_stale=True)
            self._write(plans)
            for plan in plans:
                report.chunks_added += len(plan.new)
                report.chunks_removed += len(plan.remove)
        info = self.store.kb_info(self.kb)
        if plans or (info is not None and info.importance_stale):
            self.refresh_importance()
        return report

    def doc_hash(self, doc: Document) -> str:
        """The hash a document's chunks are stamped with: its text and the chunking settings."""
        return content_hash(doc.text + "\x1f" + self.chunker_signature)

    def bm25(self, sample: list[Chunk]) -> BM25Encoder:
        """The knowledge base's BM25 encoder; its average length is fixed by its first ingest and stored."""
        if self._bm25 is None:
            info = self.store.kb_info(self.kb)
            avg = info.bm25_avg_len if info else None
            if avg is None:
                lengths = [len(terms(c.text)) for c in sample[:5000]] or [1]
                avg = max(1.0, sum(lengths) / len(lengths))
                if info is not None:
                    self.store.update_kb(self.kb, bm25_avg_len=avg)
            self._bm25 = BM25Encoder(avg_len=float(avg))
        return self._bm25

    def _write(self, plans: list[_FilePlan]) -> None:
        """Embed and store new chunks in batches; each file is finalised as soon as all its chunks are in."""
        pending = [(c, n) for n, p in enumerate(plans) for c in p.new]
        waiting = [len(p.new) for p in plans]
        for n, plan in enumerate(plans):
            if not waiting[n]:
                self._finalise(plan)
        if not pending:
            return
        bm25 = self.bm25([c for c, _ in pending])
        bar = tqdm(
            total=len(pending), unit="chunk", desc="embedding", disable=not self.progress, file=sys.stderr
        )
        for start in range(0, len(pending), self.batch_size):
            batch = pending[start : start + self.batch_size]
            chunks = [c for c, _ in batch]
            emb = self.embedder.embed([c.text for c in chunks])
            sparse = [bm25.encode_document(c.text) for c in chunks]
            self.store.upsert(chunks, emb, sparse, [PENDING] * len(chunks))
            for _, n in batch:
                waiting[n] -= 1
                if not waiting[n]:
                    self._finalise(plans[n])
            bar.update(len(batch))
        bar.close()

    def _finalise(self, plan: _FilePlan) -> None:
        """All of a file's chunks are stored: stamp them with the file's hash, then drop its stale chunks."""
        self.store.set_doc_hash([*plan.keep, *(c.id for c in plan.new)], plan.doc_hash)
        self.store.delete(plan.remove)

    def refresh_importance(self) -> list[float]:
        return refresh_importance(self.store, self.kb, self.importance_sample)


def refresh_importance(store: VectorStore, kb: str, sample: int = 2000) -> list[float]:
    """Recompute a knowledge base's head importance over (a sample of) its chunks, and its chunk count."""
    norms, heads = store.sample_heads(sample, kb)
    scores = head_importance(norms, heads).tolist() if len(norms) else [1.0] * store.n_heads
    chunks = store.count(Scope.of(kb))
    store.update_kb(
        kb, head_importance=scores, importance_sample=len(norms), importance_stale=False, chunks=chunks
    )
    return scores


def refresh_stale(store: VectorStore, sample: int = 2000) -> list[str]:
    """Recompute the statistics of every knowledge base marked stale (a write to it was cut off)."""
    stale = [n for n, info in store.kbs().items() if info.importance_stale and not info.deleting]
    for kb in stale:
        refresh_importance(store, kb, sample)
    return stale
