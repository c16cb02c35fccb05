"""Qdrant Edge engine (`qdrant-edge-py`): Qdrant's segment code in-process, on memory-mapped files.

Layout: `<path>/edge/<collection>/shard/` is the edge shard, `<path>/edge/<collection>/collection.json`
the collection's schema and metadata (the shard keeps none). The shard is created first and the
sidecar written last (atomically), so a collection exists exactly when its sidecar does.

Payload indexes: `source` and the document hash (keyword), and `kb`, a keyword index marked as the
tenant key; every search filters on `kb` inside the query (`_searchable`), so the index hands the
engine the scope's points and only those are scored.

The engine refuses a second open of a shard directory, in this process or another (its write-ahead
log is locked). So every `VectorStore` on the same directory in this process shares one open shard
through a reference-counted registry, and all calls on it are serialised by one lock: the web
server's threads, an ingest and the chat can hold stores on the same collection at once. Every call
holds the GIL anyway (COMPONENTS.md), so the lock costs no parallelism.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from retrieval.sparse import SparseVec
from retrieval.store_types import (
    DOC_HASH,
    KB,
    PENDING,
    SPARSE,
    Engine,
    Hit,
    Record,
    Schema,
    Search,
    StoreUnavailable,
    Where,
    atomic_write_json,
    remove_tree,
)

SIDECAR = "collection.json"
INDEXED = ("source", DOC_HASH)  # keyword payload indexes: listing by source, searching committed chunks
# The knowledge base is the tenant key: the engine keeps each tenant's points together and plans a
# filter on it as a partition, not as a post-filter of the HNSW graph.
TENANT_INDEX = qe.KeywordIndexParams(is_tenant=True)
_NOT_PENDING = qe.FieldCondition(key=DOC_HASH, match=qe.MatchValue(PENDING))


def _filter(where: Where | None) -> qe.Filter | None:
    if where is None:
        return None
    must: list = []
    if where.kbs is not None:
        must.append(qe.FieldCondition(key=KB, match=qe.MatchAny(sorted(where.kbs))))
    if where.sources is not None:
        must.append(qe.FieldCondition(key="source", match=qe.MatchAny(list(where.sources))))
    if where.kb_missing:
        must.append(qe.IsEmptyCondition(KB))
    return qe.Filter(must=must)


def _searchable(kbs: frozenset[str] | None) -> qe.Filter:
    """Committed chunks of the knowledge bases `kbs` (None: of any)."""
    must: list[Any] | None = None
    if kbs is not None:
        must = [qe.FieldCondition(key=KB, match=qe.MatchAny(sorted(kbs)))]
    return qe.Filter(must=must, must_not=[_NOT_PENDING])


@dataclass
class _Shared:
    """One open shard per directory in this process, and the lock its users share."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    shard: qe.EdgeShard | None = None
    sidecar: dict[str, Any] | None = None  # {"schema": {...}, "metadata": {...}}
    users: int = 0


_OPEN: dict[Path, _Shared] = {}
_OPEN_LOCK = threading.Lock()


class EdgeEngine(Engine):
    name = "edge"
    indexed_filters = True

    def __init__(self, collection: str, root: Path) -> None:
        self.dir = (root / "edge" / collection).resolve()
        self.location = str(self.dir)
        with _OPEN_LOCK:
            self._shared = _OPEN.setdefault(self.dir, _Shared())
            self._shared.users += 1
        self._closed = False
        try:
            with self._shared.lock:
                self._open_existing()
        except BaseException:
            self.close()
            raise

    # ---- lifecycle ----------------------------------------------------------------------------
    def _open_existing(self) -> None:
        s = self._shared
        if s.shard is not None or not (self.dir / SIDECAR).exists():
            return
        s.sidecar = json.loads((self.dir / SIDECAR).read_text())
        try:
            s.shard = qe.EdgeShard.load(str(self.dir / "shard"))
        except Exception as exc:
            if "WouldBlock" in str(exc) or "lock" in str(exc).lower():
                raise StoreUnavailable(
                    f"The embedded Qdrant store at {self.dir} is open in another ragbot process; the embedded "
                    "engine allows one process at a time. Stop the other process, or run a Qdrant server and "
                    "set QDRANT_URL."
                ) from exc
            raise
        self.ensure_indexes()

    def ensure_indexes(self) -> None:
        with self._shared.lock:
            shard = self._shared.shard
            if shard is None:
                return
            _create_indexes(shard, set(shard.info().payload_schema))

    def _shard(self) -> qe.EdgeShard:
        if self._shared.shard is None:
            self._open_existing()
        if self._shared.shard is None:
            raise RuntimeError(f"collection at {self.dir} does not exist: ingest first")
        return self._shared.shard

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _OPEN_LOCK:
            self._shared.users -= 1
            last = self._shared.users == 0
            if last:
                _OPEN.pop(self.dir, None)
        if last:
            with self._shared.lock:
                if self._shared.shard is not None:
                    self._shared.shard.flush()
                    self._shared.shard.close()
                    self._shared.shard = None

    # ---- schema and metadata ------------------------------------------------------------------
    def exists(self) -> bool:
        with self._shared.lock:
            return (self.dir / SIDECAR).exists()

    def create(self, schema: Schema, metadata: dict[str, Any]) -> None:
        with self._shared.lock:
            shard_dir = self.dir / "shard"
            remove_tree(shard_dir)  # a crash between creating the shard and writing the sidecar left it empty
            self.dir.mkdir(parents=True, exist_ok=True)
            config = qe.EdgeConfig(
                vectors={
                    name: qe.EdgeVectorParams(size=size, distance=qe.Distance.Cosine)
                    for name, size in schema.vector_sizes().items()
                },
                sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            )
            shard = qe.EdgeShard.create(str(shard_dir), config)
            _create_indexes(shard, set())
            sidecar = {"schema": asdict(schema), "metadata": dict(metadata)}
            atomic_write_json(self.dir / SIDECAR, sidecar)
            self._shared.shard, self._shared.sidecar = shard, sidecar

    def _sidecar(self) -> dict[str, Any]:
        self._shard()
        assert self._shared.sidecar is not None
        return self._shared.sidecar

    def vector_sizes(self) -> dict[str, int]:
        with self._shared.lock:
            return Schema(**self._sidecar()["schema"]).vector_sizes()

    def drop(self) -> None:
        with self._shared.lock:
            if self._shared.shard is not None:
                self._shared.shard.close()
            self._shared.shard, self._shared.sidecar = None, None
            (self.dir / SIDECAR).unlink(missing_ok=True)  # first: a crash mid-drop leaves no collection
            remove_tree(self.dir)

    def metadata(self) -> dict[str, Any]:
        with self._shared.lock:
            return dict(self._sidecar()["metadata"])

    def update_metadata(self, values: dict[str, Any]) -> None:
        with self._shared.lock:
            sidecar = self._sidecar()
            new = sidecar | {"metadata": sidecar["metadata"] | values}
            atomic_write_json(self.dir / SIDECAR, new)
            self._shared.sidecar = new

    def count(self, where: Where | None = None) -> int:
        with self._shared.lock:
            return self._shard().count(qe.CountRequest(exact=True, filter=_filter(where)))

    # ---- points -------------------------------------------------------------------------------
    def upsert(
        self, ids: list[str], dense: dict[str, np.ndarray], sparse: list[SparseVec], payloads: list[dict]
    ) -> None:
        points = []
        for i, pid in enumerate(ids):
            vector: dict[str, Any] = {name: rows[i] for name, rows in dense.items()}
            if sparse[i].indices:
                vector[SPARSE] = qe.SparseVector(sparse[i].indices, sparse[i].values)
            points.append(qe.Point(pid, vector, payloads[i]))
        with self._shared.lock:
            self._shard().update(qe.UpdateOperation.upsert_points(points))

    def set_payload(self, ids: list[str], payload: dict[str, Any]) -> None:
        with self._shared.lock:
            self._shard().update(qe.UpdateOperation.set_payload(list(ids), payload))

    def set_payload_where(self, where: Where, payload: dict[str, Any]) -> None:
        flt = _filter(where)
        assert flt is not None
        with self._shared.lock:
            self._shard().update(qe.UpdateOperation.set_payload_by_filter(flt, payload))

    def delete(self, ids: list[str]) -> None:
        with self._shared.lock:
            self._shard().update(qe.UpdateOperation.delete_points(list(ids)))

    def delete_where(self, where: Where) -> None:
        flt = _filter(where)
        assert flt is not None
        with self._shared.lock:
            self._shard().update(qe.UpdateOperation.delete_points_by_filter(flt))

    def scroll(
        self,
        where: Where | None,
        fields: list[str] | bool,
        vectors: list[str] | bool,
        offset: str | None,
        limit: int,
    ) -> tuple[list[Record], str | None]:
        request = qe.ScrollRequest(
            offset=offset, limit=limit, filter=_filter(where), with_payload=fields, with_vector=vectors
        )
        with self._shared.lock:
            records, nxt = self._shard().scroll(request)
        return [_record(r) for r in records], (str(nxt) if nxt is not None else None)

    def retrieve(self, ids: list[str], fields: list[str] | bool, vectors: list[str] | bool) -> list[Record]:
        with self._shared.lock:
            records = self._shard().retrieve(list(ids), with_payload=fields, with_vector=vectors)
        return [_record(r) for r in records]

    def search(self, searches: Sequence[Search], kbs: frozenset[str] | None) -> list[list[Hit]]:
        flt = _searchable(kbs)
        requests, slots = [], []
        for i, s in enumerate(searches):
            if isinstance(s.vector, SparseVec):
                if not s.vector.indices:
                    continue
                vector: Any = qe.SparseVector(s.vector.indices, s.vector.values)
            else:
                vector = np.asarray(s.vector, dtype=np.float32)
            query = qe.Query.Nearest(vector, using=s.using)
            requests.append(
                qe.QueryRequest(limit=s.limit, query=query, filter=flt, with_payload=False, with_vector=False)
            )
            slots.append(i)
        results: list[list[Hit]] = [[] for _ in searches]
        if requests:
            with self._shared.lock:
                answers = self._shard().query_batch(qe.QueryBatchRequest(requests))
            for slot, answer in zip(slots, answers, strict=True):
                results[slot] = [Hit(str(p.id), p.score) for p in answer]
        return results


def _create_indexes(shard: qe.EdgeShard, have: set[str]) -> None:
    for key in INDEXED:
        if key not in have:
            shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword))
    if KB not in have:
        shard.update(qe.UpdateOperation.create_field_index(KB, TENANT_INDEX))


def _record(r: Any) -> Record:
    vectors: dict[str, Any] = {}
    for name, value in (r.vector or {}).items():
        vectors[name] = SparseVec(list(value.indices), list(value.values)) if name == SPARSE else value
    return Record(str(r.id), dict(r.payload or {}), vectors)
