"""The vector store: one collection of chunks with named vectors `full` + `head_NN` (cosine) and a `bm25` sparse vector.

`VectorStore` holds the logic every engine shares (payload layout, idempotent-ingest bookkeeping,
head sampling, batched searches); an `Engine` does the storage. Three engines, one behaviour:

- `edge` (the embedded default): Qdrant's own in-process engine, `qdrant-edge-py` — the Rust
  segment code of the server, reading memory-mapped files; milliseconds at 100k chunks.
- `local`: qdrant-client's local mode (pure Python/numpy), kept for comparison and old stores.
- a Qdrant server, whenever a URL is given (`QDRANT_URL`): no other change.

Collection-level facts (embedder, head importance, BM25 average length) live in the collection's
metadata on a server and in local mode, and in a sidecar file next to the edge shard, which keeps none.

Modules: this facade imports its engines (`store_edge`, `store_client`) and the names they share
(`store_types`, all re-exported here); the engines import only `store_types`, never this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from retrieval.importance import unit
from retrieval.sparse import SparseVec
from retrieval.store_edge import EdgeEngine
from retrieval.store_types import (
    DOC_HASH,
    FULL,
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
    atomic_write_json,
    fsync_dir,
    head_name,
    remove_tree,
)
from retrieval.types import Chunk

if TYPE_CHECKING:  # the store needs no torch: `ragbot info` and `reset` start in a second
    from retrieval.embedder import MultiHeadEmbeddings

EngineName = Literal["edge", "local"]
DEFAULT_ENGINE: EngineName = "edge"

__all__ = [  # the store's public names, the shared ones re-exported from retrieval.store_types
    "DEFAULT_ENGINE",
    "DOC_HASH",
    "FULL",
    "PENDING",
    "SPARSE",
    "Engine",
    "EngineName",
    "Hit",
    "Record",
    "Schema",
    "SchemaMismatch",
    "Search",
    "StoreUnavailable",
    "StoredSource",
    "VectorStore",
    "atomic_write_json",
    "copy_collection",
    "fsync_dir",
    "head_name",
    "remove_tree",
]


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
        self._engine.create(schema, {"embedder": embedder, "n_heads": n_heads})

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

    def count(self) -> int:
        return self._engine.count()

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
    ) -> Iterator[Record]:
        """Every point (of `sources`, if given), page by page."""
        offset: str | None = None
        while True:
            records, offset = self._engine.scroll(sources, fields, vectors, offset, page)
            yield from records
            if offset is None:
                return

    def source_states(self, sources: Iterable[str]) -> dict[str, dict[str, str]]:
        """For each source: chunk id -> stored document hash (empty for sources not stored yet).

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
        for group in groups:
            for record in self.scroll(group, fields=["source", DOC_HASH]):
                source = record.payload.get("source")
                if source in states:
                    states[source][record.id] = str(record.payload.get(DOC_HASH, PENDING))
        return states

    def sources(self) -> dict[str, StoredSource]:
        """Every stored source with its title and its chunks' document hashes: one scroll over the
        collection reading three payload fields (O(chunks); for listing and start-up checks)."""
        found: dict[str, StoredSource] = {}
        if not self.exists():
            return found
        for record in self.scroll(fields=["source", "title", DOC_HASH]):
            source = str(record.payload.get("source", ""))
            entry = found.get(source)
            if entry is None:
                entry = found[source] = StoredSource(source, str(record.payload.get("title", "")), {})
            entry.chunks[record.id] = str(record.payload.get(DOC_HASH, PENDING))
        return found

    def ids(self) -> list[str]:
        """Every point id in the collection (scrolls; for tools and benchmarks, not the hot path)."""
        return [r.id for r in self.scroll(fields=False)]

    def chunks(self, ids: Iterable[str]) -> dict[str, Chunk]:
        ids = list(ids)
        if not ids:
            return {}
        fields = set(Chunk.model_fields)
        return {
            r.id: Chunk(**{k: v for k, v in r.payload.items() if k in fields})
            for r in self._engine.retrieve(ids, True, False)
        }

    def search_batch(self, searches: Sequence[Search]) -> list[list[Hit]]:
        """Several legs (heads, `full`, BM25) in one round trip: one call into the engine per query."""
        return self._engine.search(searches)

    def search(self, vector_name: str, vector: np.ndarray, limit: int) -> list[Hit]:
        return self._engine.search([Search(vector_name, vector, limit)])[0]

    def search_many(self, requests: Sequence[tuple[str, np.ndarray]], limit: int) -> list[list[Hit]]:
        return self._engine.search([Search(name, vec, limit) for name, vec in requests])

    def search_sparse(self, query: SparseVec, limit: int) -> list[Hit]:
        return self._engine.search([Search(SPARSE, query, limit)])[0]

    def sample_heads(self, limit: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw head norms [n, H] and unit head vectors [n, H, d] of up to `limit` points.

        A stride sample over the id order: one id-only scroll, then the sampled points' vectors.
        """
        n_heads = self.n_heads
        names = [head_name(i) for i in range(n_heads)]
        ids = self.ids()
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
