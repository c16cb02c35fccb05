"""The vector store: one collection of chunks with named vectors `full` + `head_NN` (cosine) and a `bm25` sparse vector.

`VectorStore` holds the logic every engine shares (payload layout, idempotent-ingest bookkeeping,
head sampling, batched searches); an `Engine` does the storage. Three engines, one behaviour:

- `edge` (the embedded default): Qdrant's own in-process engine, `qdrant-edge-py` — the Rust
  segment code of the server, reading memory-mapped files; milliseconds at 100k chunks.
- `local`: qdrant-client's local mode (pure Python/numpy), kept for comparison and old stores.
- a Qdrant server, whenever a URL is given (`QDRANT_URL`): no other change.

Knowledge bases: every chunk's payload names its knowledge base (`kb`, a keyword index marked as the
tenant key on a server and on edge), and every search takes a `Scope`, the knowledge bases it may
read, applied as a filter inside the engine's query for every leg. One collection holds them all
(docs/decisions/knowledge-base-storage.md says why). Statistics are kept per knowledge base.

Metadata: a JSON object, the collection's metadata on a server and in local mode, a sidecar file
next to the edge shard (which keeps none). Top-level keys are merged on update, so each knowledge
base is one key and writes to two knowledge bases do not overwrite each other:

    embedder, n_heads     the embedder the vectors come from
    layout                2: chunks carry `kb`. Absent: a store from before knowledge bases; opening it
                          sets kb="default" on every chunk without one and registers `default` with
                          the old collection-wide statistics (idempotent, so a crash part-way is
                          finished at the next open), then writes layout=2
    kb:<name>             one knowledge base (null once deleted):
        key               its chunk-id key (retrieval.chunking.chunk_id): "" for `default`, so an old
                          store's ids stay valid; kept by a rename, so a renamed kb re-embeds nothing
        chunks            its chunk count when its statistics were last computed
        head_importance   MRAG head importance over a sample of its chunks (null until computed)
        importance_sample the sample's size
        importance_stale  set before any write to it, cleared when its importance is recomputed
        bm25_avg_len      BM25's average chunk length, fixed by its first ingest
        deleting          true while a delete is under way (finished at the next open)
        renaming_from     the old name while a rename is under way (finished at the next open)
    head_importance, bm25_avg_len, importance_stale, importance_sample: a layout-1 store's
                          collection-wide statistics, read once by the migration

Modules: this facade imports its engines (`store_edge`, `store_client`) and the names they share
(`store_types`, all re-exported here); the engines import only `store_types`, never this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from retrieval.importance import unit
from retrieval.sparse import SparseVec
from retrieval.store_edge import EdgeEngine
from retrieval.store_types import (
    DOC_HASH,
    FULL,
    KB,
    KB_META_PREFIX,
    LAYOUT,
    PENDING,
    SPARSE,
    Engine,
    Hit,
    Record,
    Schema,
    SchemaMismatch,
    Search,
    StoredSource,
    StoreUnavailable,
    Where,
    atomic_write_json,
    fsync_dir,
    head_name,
    remove_tree,
)
from retrieval.types import DEFAULT_KB, Chunk, Scope, check_kb_name

if TYPE_CHECKING:  # the store needs no torch: `ragbot info` and `reset` start in a second
    from retrieval.embedder import MultiHeadEmbeddings

EngineName = Literal["edge", "local"]
DEFAULT_ENGINE: EngineName = "edge"

__all__ = [  # the store's public names, the shared ones re-exported from retrieval.store_types
    "DEFAULT_ENGINE",
    "DOC_HASH",
    "FULL",
    "KB",
    "LAYOUT",
    "PENDING",
    "SPARSE",
    "Engine",
    "EngineName",
    "Hit",
    "KbInfo",
    "Record",
    "Schema",
    "SchemaMismatch",
    "Search",
    "StoreUnavailable",
    "StoredSource",
    "VectorStore",
    "Where",
    "atomic_write_json",
    "copy_collection",
    "fsync_dir",
    "head_name",
    "remove_tree",
]


@dataclass(frozen=True)
class KbInfo:
    """One knowledge base's entry in the metadata (see the module docstring)."""

    name: str
    key: str
    chunks: int = 0
    head_importance: tuple[float, ...] | None = None
    importance_sample: int = 0
    importance_stale: bool = False
    bm25_avg_len: float | None = None
    deleting: bool = False
    renaming_from: str | None = None

    @classmethod
    def from_meta(cls, name: str, entry: dict[str, Any]) -> KbInfo:
        imp = entry.get("head_importance")
        avg = entry.get("bm25_avg_len")
        return cls(
            name=name,
            key=str(entry.get("key", "")),
            chunks=int(entry.get("chunks", 0)),
            head_importance=tuple(float(x) for x in imp) if imp else None,
            importance_sample=int(entry.get("importance_sample", 0)),
            importance_stale=bool(entry.get("importance_stale", False)),
            bm25_avg_len=float(avg) if avg is not None else None,
            deleting=bool(entry.get("deleting", False)),
            renaming_from=entry.get("renaming_from"),
        )

    def entry(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "chunks": self.chunks,
            "head_importance": list(self.head_importance) if self.head_importance else None,
            "importance_sample": self.importance_sample,
            "importance_stale": self.importance_stale,
            "bm25_avg_len": self.bm25_avg_len,
        }
        if self.deleting:
            out["deleting"] = True
        if self.renaming_from is not None:
            out["renaming_from"] = self.renaming_from
        return out


class VectorStore:
    """A collection of chunks, on the engine chosen by where it lives: `url` (a server) or `path` + `engine`.

    One instance is safe to share between threads (the web server's): the edge engine serialises
    calls on its shard, local mode on its client, and a server client is thread-safe.
    """

    def __init__(
        self,
        collection: str,
        path: str | Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        engine: EngineName = DEFAULT_ENGINE,
    ) -> None:
        self.collection = collection
        self._engine: Engine
        if url:
            from retrieval.store_client import ClientEngine  # here, not at the top: qdrant-client takes 1.3 s

            self._engine = ClientEngine.server(collection, url, api_key, timeout)
        elif engine == "edge":
            self._engine = EdgeEngine(collection, Path(path or "data/qdrant"))
        elif engine == "local":
            from retrieval.store_client import ClientEngine

            self._engine = ClientEngine.local(collection, path or "data/qdrant")
        else:
            raise ValueError(f"unknown store engine {engine!r}: edge or local")
        self.engine = self._engine.name
        self.location = self._engine.location
        self.is_server = self.engine == "server"
        try:
            if self._engine.exists():
                self._migrate()
        except BaseException:
            self._engine.close()
            raise

    def __repr__(self) -> str:
        return f"VectorStore({self.collection!r}, {self.engine} at {self.location})"

    # ---- schema -------------------------------------------------------------------------------
    def ensure_collection(self, dim: int, n_heads: int, head_dim: int, embedder: str) -> None:
        schema = Schema(dim, n_heads, head_dim)
        if self._engine.exists():
            have, want = self._engine.vector_sizes(), schema.vector_sizes()
            if have != want:
                raise SchemaMismatch(
                    f"Collection '{self.collection}' was built with other vectors ({len(have)} named vectors, "
                    f"full={have.get(FULL)}); it does not fit embedder '{embedder}'. Use another collection name "
                    "or delete it (ragbot reset)."
                )
            recorded = self._engine.metadata().get("embedder")
            if recorded and recorded != embedder:  # same shape, other model: its vectors mean nothing here
                raise SchemaMismatch(
                    f"Collection '{self.collection}' was embedded with '{recorded}', not '{embedder}'. Set "
                    "RAGBOT_EMBEDDER_MODEL to match it, or use another collection name (RAGBOT_COLLECTION)."
                )
            self._engine.ensure_indexes()
            return
        self._engine.create(schema, {"embedder": embedder, "n_heads": n_heads, "layout": LAYOUT})

    def exists(self) -> bool:
        return self._engine.exists()

    def drop(self) -> None:
        if self.exists():
            self._engine.drop()

    def vector_sizes(self) -> dict[str, int]:
        """Named dense vectors and their sizes, as the engine reports them."""
        return self._engine.vector_sizes()

    @property
    def n_heads(self) -> int:
        return int(self.metadata().get("n_heads", 0))

    def metadata(self) -> dict[str, Any]:
        return self._engine.metadata()

    def update_metadata(self, **values: Any) -> None:
        self._engine.update_metadata(values)

    def count(self, scope: Scope | None = None) -> int:
        """Points in the collection, or in the knowledge bases of `scope` (pending chunks included)."""
        if scope is None:
            return self._engine.count()
        return self._engine.count(Where(kbs=scope.kbs)) if scope.kbs else 0

    # ---- knowledge bases ----------------------------------------------------------------------
    def _migrate(self) -> None:
        """Bring an older store to the current layout, and finish a delete or rename a crash cut off."""
        meta = self.metadata()
        if int(meta.get("layout") or 1) < LAYOUT:
            self._engine.ensure_indexes()  # the `kb` index, before the filter that uses it
            self._engine.set_payload_where(Where(kb_missing=True), {KB: DEFAULT_KB})
            legacy = meta.get("head_importance") is not None or meta.get("bm25_avg_len") is not None
            if KB_META_PREFIX + DEFAULT_KB not in meta and (legacy or self._engine.count()):
                imp = meta.get("head_importance")
                info = KbInfo(
                    DEFAULT_KB,
                    key="",
                    chunks=self._engine.count(),
                    head_importance=tuple(imp) if imp else None,
                    importance_sample=int(meta.get("importance_sample", 0)),
                    importance_stale=bool(meta.get("importance_stale", False)) or not imp,
                    bm25_avg_len=meta.get("bm25_avg_len"),
                )
                self._write_kb(info)
            self.update_metadata(layout=LAYOUT)
        for info in self.kbs().values():
            if info.deleting:
                self.delete_kb(info.name)
            elif info.renaming_from is not None:
                self.rename_kb(info.renaming_from, info.name)

    def kbs(self) -> dict[str, KbInfo]:
        """Every knowledge base entry in the metadata (including any being deleted or renamed)."""
        if not self.exists():
            return {}
        return {
            k.removeprefix(KB_META_PREFIX): KbInfo.from_meta(k.removeprefix(KB_META_PREFIX), v)
            for k, v in self.metadata().items()
            if k.startswith(KB_META_PREFIX) and isinstance(v, dict)
        }

    def kb_names(self) -> list[str]:
        """The knowledge bases this collection holds, by name."""
        return sorted(n for n, info in self.kbs().items() if not info.deleting)

    def kb_info(self, name: str) -> KbInfo | None:
        return self.kbs().get(name)

    def _write_kb(self, info: KbInfo) -> None:
        self.update_metadata(**{KB_META_PREFIX + info.name: info.entry()})

    def update_kb(self, name: str, **values: Any) -> KbInfo:
        """Change fields of a knowledge base's entry (see KbInfo); returns the new entry."""
        info = self.kb_info(name)
        if info is None:
            raise KeyError(f"no knowledge base {name!r}")
        new = KbInfo.from_meta(name, info.entry() | values)
        self._write_kb(new)
        return new

    def ensure_kb(self, name: str) -> KbInfo:
        """The knowledge base's entry, created (with a fresh chunk-id key) when it has none.

        The key is "" for `default` and the name for any other, unless another entry (a renamed one)
        already uses it: then a random one, so two knowledge bases never share chunk ids."""
        check_kb_name(name)
        known = self.kbs()
        info = known.get(name)
        if info is not None and info.deleting:
            self.delete_kb(name)
            known.pop(name)
        elif info is not None:
            return info
        key = "" if name == DEFAULT_KB else name
        if key in {i.key for i in known.values()}:
            key = uuid.uuid4().hex
        info = KbInfo(name, key)
        self._write_kb(info)
        return info

    def delete_kb(self, name: str) -> int:
        """Remove a knowledge base: exactly its chunks (and with them its files' records: source, title,
        document hash), then its entry. Returns the chunks removed.

        Crash-safe and idempotent: the entry is marked `deleting` first (a store opened after a crash
        finishes the delete), chunks go by a filter on `kb`, the entry goes last. Deleting an unknown
        knowledge base removes any chunks still carrying its name and returns their count.
        """
        info = self.kb_info(name)
        if info is not None and not info.deleting:
            self._write_kb(KbInfo.from_meta(name, info.entry() | {"deleting": True}))
        n = self._engine.count(Where(kbs=frozenset({name})))
        if n:
            self._engine.delete_where(Where(kbs=frozenset({name})))
        if info is not None:
            self.update_metadata(**{KB_META_PREFIX + name: None})
        return n

    def rename_kb(self, old: str, new: str) -> None:
        """Rename a knowledge base; its chunks keep their ids and vectors (nothing is re-embedded).

        Crash-safe: the new entry is written first, marked `renaming_from`, then every chunk's `kb` is
        set by a filter, then one metadata write drops the old entry and the mark. A store opened
        after a crash finishes it; running the same rename again does too.
        """
        check_kb_name(new)
        if old == new:
            return
        src, dst = self.kb_info(old), self.kb_info(new)
        if dst is not None and dst.renaming_from != old:
            raise ValueError(f"knowledge base {new!r} already exists")
        if src is None and dst is None:
            raise KeyError(f"no knowledge base {old!r}")
        if src is not None and src.deleting:
            raise KeyError(f"knowledge base {old!r} is being deleted")
        if dst is None:
            assert src is not None
            dst = KbInfo.from_meta(new, src.entry() | {"renaming_from": old})
            self._write_kb(dst)
        self._engine.set_payload_where(Where(kbs=frozenset({old})), {KB: new})
        done = KbInfo.from_meta(new, {k: v for k, v in dst.entry().items() if k != "renaming_from"})
        self.update_metadata(**{KB_META_PREFIX + old: None, KB_META_PREFIX + new: done.entry()})

    def head_importance(self, scope: Scope) -> list[float] | None:
        """Head importance for a search over `scope`: its knowledge base's, or for several the mean of
        theirs weighted by their chunk counts (an approximation of the union's: importance is a
        mean norm times a mean spread, and chunk-weighted means of the parts track the whole's
        while the parts are alike). None when no knowledge base in scope has it yet."""
        infos = [i for n, i in self.kbs().items() if n in scope.kbs and i.head_importance]
        if not infos:
            return None
        if len(infos) == 1:
            return list(infos[0].head_importance or ())
        w = np.asarray([max(i.chunks, 0) for i in infos], dtype=np.float64)
        w = w / w.sum() if w.sum() > 0 else np.full(len(infos), 1.0 / len(infos))
        imp = np.asarray([i.head_importance for i in infos], dtype=np.float64)
        return (w[:, None] * imp).sum(axis=0).tolist()

    # ---- writes -------------------------------------------------------------------------------
    def upsert(
        self,
        chunks: Sequence[Chunk],
        emb: MultiHeadEmbeddings,
        sparse: Sequence[SparseVec],
        doc_hashes: Sequence[str],
        batch_size: int = 256,
    ) -> None:
        """Write chunks with all their vectors; raw head norms go to the payload for importance scoring."""
        norms = np.linalg.norm(emb.heads, axis=-1)
        heads = unit(emb.heads).astype(np.float32)
        full = np.ascontiguousarray(emb.full, dtype=np.float32)
        for start in range(0, len(chunks), batch_size):
            part = slice(start, start + batch_size)
            dense = {FULL: full[part]} | {head_name(h): heads[part, h] for h in range(heads.shape[1])}
            payloads = [
                c.model_dump() | {DOC_HASH: doc_hashes[start + i], "head_norms": norms[start + i].tolist()}
                for i, c in enumerate(chunks[part])
            ]
            self._engine.upsert([c.id for c in chunks[part]], dense, list(sparse[part]), payloads)

    def set_doc_hash(self, ids: Sequence[str], doc_hash: str) -> None:
        if ids:
            self._engine.set_payload(list(ids), {DOC_HASH: doc_hash})

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._engine.delete(list(ids))

    # ---- reads --------------------------------------------------------------------------------
    def scroll(
        self,
        sources: list[str] | None = None,
        fields: list[str] | bool = True,
        vectors: list[str] | bool = False,
        page: int = 2048,
        scope: Scope | None = None,
    ) -> Iterator[Record]:
        """Every point (of `sources`, of the knowledge bases in `scope`, if given), page by page."""
        if scope is not None and scope.empty:
            return
        where = None
        if sources is not None or scope is not None:
            where = Where(kbs=scope.kbs if scope else None, sources=sources)
        offset: str | None = None
        while True:
            records, offset = self._engine.scroll(where, fields, vectors, offset, page)
            yield from records
            if offset is None:
                return

    def source_states(self, sources: Iterable[str], kb: str) -> dict[str, dict[str, str]]:
        """For each source: chunk id -> stored document hash in knowledge base `kb` (empty for sources
        not stored there yet).

        Indexed engines (edge, server) filter by source in batches; local mode evaluates every filter by
        scanning all points, so beyond a few sources it takes one scroll over the collection instead.
        """
        wanted = sorted(set(sources))
        states: dict[str, dict[str, str]] = {s: {} for s in wanted}
        if not wanted:
            return states
        if self._engine.indexed_filters:
            groups: list[list[str] | None] = [wanted[i : i + 256] for i in range(0, len(wanted), 256)]
        else:
            groups = [[s] for s in wanted] if len(wanted) <= 16 else [None]
        scope = Scope.of(kb)
        for group in groups:
            for record in self.scroll(group, fields=["source", DOC_HASH], scope=scope):
                source = record.payload.get("source")
                if source in states:
                    states[source][record.id] = str(record.payload.get(DOC_HASH, PENDING))
        return states

    def sources(self, scope: Scope) -> list[StoredSource]:
        """Every source stored in the knowledge bases of `scope`, with its title and its chunks' document
        hashes, by knowledge base and source: one scroll over their chunks reading four payload fields
        (O(chunks); for listing and start-up checks). A source in two knowledge bases is two entries."""
        found: dict[tuple[str, str], StoredSource] = {}
        if not self.exists():
            return []
        for record in self.scroll(fields=["source", "title", DOC_HASH, KB], scope=scope):
            source = str(record.payload.get("source", ""))
            kb = str(record.payload.get(KB, DEFAULT_KB))
            entry = found.get((kb, source))
            if entry is None:
                title = str(record.payload.get("title", ""))
                entry = found[(kb, source)] = StoredSource(source, title, {}, kb)
            entry.chunks[record.id] = str(record.payload.get(DOC_HASH, PENDING))
        return [found[key] for key in sorted(found)]

    def ids(self, scope: Scope | None = None) -> list[str]:
        """Every point id in the collection, or in `scope` (scrolls; for tools and benchmarks, not the hot path)."""
        return [r.id for r in self.scroll(fields=False, scope=scope)]

    def chunks(self, ids: Iterable[str]) -> dict[str, Chunk]:
        ids = list(ids)
        if not ids:
            return {}
        fields = set(Chunk.model_fields)
        return {
            r.id: Chunk(**{k: v for k, v in r.payload.items() if k in fields})
            for r in self._engine.retrieve(ids, True, False)
        }

    def search_batch(self, searches: Sequence[Search], scope: Scope) -> list[list[Hit]]:
        """Several legs (heads, `full`, BM25) in one round trip: one call into the engine per query.

        Only chunks of the knowledge bases in `scope`: the filter is part of each leg's query, so
        every leg returns its full depth from those knowledge bases. An empty scope queries nothing."""
        if scope.empty:
            return [[] for _ in searches]
        return self._engine.search(searches, scope.kbs)

    def search(self, vector_name: str, vector: np.ndarray, limit: int, scope: Scope) -> list[Hit]:
        return self.search_batch([Search(vector_name, vector, limit)], scope)[0]

    def search_many(
        self, requests: Sequence[tuple[str, np.ndarray]], limit: int, scope: Scope
    ) -> list[list[Hit]]:
        return self.search_batch([Search(name, vec, limit) for name, vec in requests], scope)

    def search_sparse(self, query: SparseVec, limit: int, scope: Scope) -> list[Hit]:
        return self.search_batch([Search(SPARSE, query, limit)], scope)[0]

    def sample_heads(self, limit: int, kb: str) -> tuple[np.ndarray, np.ndarray]:
        """Raw head norms [n, H] and unit head vectors [n, H, d] of up to `limit` points of knowledge base `kb`.

        A stride sample over the id order: one id-only scroll, then the sampled points' vectors.
        """
        n_heads = self.n_heads
        names = [head_name(i) for i in range(n_heads)]
        ids = self.ids(Scope.of(kb))
        if not ids or not limit:
            return np.zeros((0, n_heads), np.float32), np.zeros((0, n_heads, 0), np.float32)
        picked = ids[:: max(1, len(ids) // limit)][:limit]
        norms: list[list[float]] = []
        heads: list[list[np.ndarray]] = []
        for start in range(0, len(picked), 512):
            for r in self._engine.retrieve(picked[start : start + 512], ["head_norms"], names):
                norms.append(r.payload.get("head_norms", [1.0] * n_heads))
                heads.append([np.asarray(r.vectors[name], dtype=np.float32) for name in names])
        return np.asarray(norms, dtype=np.float32), np.asarray(heads, dtype=np.float32)

    def close(self) -> None:
        self._engine.close()


def copy_collection(source: VectorStore, target: VectorStore, batch: int = 512) -> int:
    """Copy every point (vectors, sparse vector, payload) and the metadata into `target`.

    How data moves between engines without re-embedding: the embedded store to a Qdrant server
    (edge cannot write a server snapshot), or an old local-mode store into edge. Returns the count.
    """
    sizes = source.vector_sizes()
    n_heads = len(sizes) - 1
    meta = source.metadata()
    target.ensure_collection(sizes[FULL], n_heads, sizes.get(head_name(0), 0), str(meta.get("embedder", "")))
    names = list(sizes)
    copied = 0
    pending: list[Record] = []

    def flush() -> None:
        dense = {n: np.asarray([r.vectors[n] for r in pending], dtype=np.float32) for n in names}
        sparse = [r.vectors.get(SPARSE) or SparseVec([], []) for r in pending]
        target._engine.upsert([r.id for r in pending], dense, sparse, [r.payload for r in pending])

    for record in source.scroll(fields=True, vectors=True, page=batch):
        pending.append(record)
        if len(pending) == batch:
            flush()
            copied += len(pending)
            pending = []
    if pending:
        flush()
        copied += len(pending)
    target.update_metadata(**meta)
    return copied
