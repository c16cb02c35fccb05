"""qdrant-client engine: a Qdrant server (`url=`) or qdrant-client's local mode (`path=`, pure Python).

Pending chunks are left out of searches by a payload filter on a server (indexed). Local mode
evaluates a filter in Python for every point of every search (20x slower at 5k points), so there the
engine keeps the set of pending ids instead (seeded by one scroll, then kept up to date by its own
writes: local mode admits one process) and drops them from over-fetched results.

The knowledge base filter is a payload filter on a server (a keyword index marked as the tenant
key). Local mode keeps each point's knowledge base with its pending flag (the same seed and writes)
and treats points outside the scope like pending ones: each leg is over-fetched in proportion to the
share of points it may return, the others dropped, and a leg that keeps fewer than it asked for
while more points exist is asked again for everything it could need. So the results are exact, and
a search over every knowledge base (the usual case, with one) over-fetches nothing.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException

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
)

INDEXED = ("source", DOC_HASH)  # keyword payload indexes on a server: listing by source, searching committed
TENANT_INDEX = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
_NOT_PENDING = models.FieldCondition(key=DOC_HASH, match=models.MatchValue(value=PENDING))


def _in_kbs(kbs: frozenset[str]) -> models.FieldCondition:
    return models.FieldCondition(key=KB, match=models.MatchAny(any=sorted(kbs)))


def _filter(where: Where | None) -> models.Filter | None:
    if where is None:
        return None
    must: list[Any] = []
    if where.kbs is not None:
        must.append(_in_kbs(where.kbs))
    if where.sources is not None:
        must.append(models.FieldCondition(key="source", match=models.MatchAny(any=list(where.sources))))
    if where.kb_missing:
        must.append(models.IsEmptyCondition(is_empty=models.PayloadField(key=KB)))
    return models.Filter(must=must)


class _GuardedClient:
    """Proxy to QdrantClient: lost connections become StoreUnavailable naming the server; calls optionally locked.

    Local mode is not documented as thread-safe, so its calls are serialised; a server client is.
    """

    def __init__(self, client: QdrantClient, location: str, lock: threading.RLock | None) -> None:
        self._client = client
        self._location = location
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                if self._lock is None:
                    return attr(*args, **kwargs)
                with self._lock:
                    return attr(*args, **kwargs)
            except ResponseHandlingException as exc:
                raise StoreUnavailable(f"Lost the connection to Qdrant at {self._location}: {exc}") from exc

        return call


class ClientEngine(Engine):
    def __init__(self, collection: str, client: QdrantClient, name: str, location: str) -> None:
        self.collection = collection
        self.name = name
        self.location = location
        self.indexed_filters = name == "server"  # local mode ignores payload indexes and scans
        self.client: QdrantClient = _GuardedClient(  # type: ignore[assignment]
            client, location, None if name == "server" else threading.RLock()
        )
        self._pending: set[str] | None = None  # local mode: ids of pending chunks, once seeded
        self._kb_of: dict[str, str] = {}  # local mode: each point's knowledge base, seeded with _pending
        self._pending_lock = threading.Lock()

    @classmethod
    def server(cls, collection: str, url: str, api_key: str | None, timeout: float) -> ClientEngine:
        try:
            client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout), check_compatibility=False)
            client.get_collections()  # fail now, with a clear message, if the server is down
        except Exception as exc:
            raise StoreUnavailable(f"Cannot reach Qdrant at {url}: {exc}. Is the server running?") from exc
        return cls(collection, client, "server", url)

    @classmethod
    def local(cls, collection: str, path: str | Path) -> ClientEngine:
        if str(path) == ":memory:":
            return cls(collection, QdrantClient(location=":memory:"), "local", ":memory:")
        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            client = QdrantClient(path=str(path))
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreUnavailable(
                    f"The local Qdrant store at {path} is open in another ragbot process; local mode allows one "
                    "process at a time. Stop the other process, or run a Qdrant server and set QDRANT_URL."
                ) from exc
            raise
        return cls(collection, client, "local", str(path))

    # ---- schema and metadata ------------------------------------------------------------------
    def exists(self) -> bool:
        return self.client.collection_exists(self.collection)

    def create(self, schema: Schema, metadata: dict[str, Any]) -> None:
        vectors = {
            name: models.VectorParams(size=size, distance=models.Distance.COSINE)
            for name, size in schema.vector_sizes().items()
        }
        self.client.create_collection(
            self.collection,
            vectors_config=vectors,
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata=metadata,
        )
        self.ensure_indexes()

    def ensure_indexes(self) -> None:
        if not self.indexed_filters:  # local mode ignores payload indexes
            return
        have = self.client.get_collection(self.collection).payload_schema or {}
        for key in INDEXED:
            if key not in have:
                self.client.create_payload_index(self.collection, key, models.PayloadSchemaType.KEYWORD)
        if KB not in have:
            self.client.create_payload_index(self.collection, KB, TENANT_INDEX)

    def vector_sizes(self) -> dict[str, int]:
        vectors = self.client.get_collection(self.collection).config.params.vectors
        return {name: params.size for name, params in (vectors or {}).items()}  # type: ignore[union-attr]

    def drop(self) -> None:
        self.client.delete_collection(self.collection)
        with self._pending_lock:
            self._pending = None
            self._kb_of = {}

    def metadata(self) -> dict[str, Any]:
        return dict(self.client.get_collection(self.collection).config.metadata or {})

    def update_metadata(self, values: dict[str, Any]) -> None:
        self.client.update_collection(self.collection, metadata=values)

    def count(self, where: Where | None = None) -> int:
        return self.client.count(self.collection, count_filter=_filter(where), exact=True).count

    # ---- points -------------------------------------------------------------------------------
    def upsert(
        self, ids: list[str], dense: dict[str, np.ndarray], sparse: list[SparseVec], payloads: list[dict]
    ) -> None:
        points = []
        for i, pid in enumerate(ids):
            vector: dict[str, Any] = {name: rows[i].tolist() for name, rows in dense.items()}
            if sparse[i].indices:
                vector[SPARSE] = models.SparseVector(indices=sparse[i].indices, values=sparse[i].values)
            points.append(models.PointStruct(id=pid, vector=vector, payload=payloads[i]))
        self.client.upsert(self.collection, points=points, wait=True)
        pending = {pid for pid, p in zip(ids, payloads, strict=True) if p.get(DOC_HASH) == PENDING}
        kbs = {pid: str(p.get(KB, "")) for pid, p in zip(ids, payloads, strict=True)}
        self._track(added=pending, removed=set(ids) - pending, kbs=kbs)

    def set_payload(self, ids: list[str], payload: dict[str, Any]) -> None:
        self.client.set_payload(self.collection, payload=payload, points=ids, wait=True)  # type: ignore[arg-type]
        kbs = {pid: str(payload[KB]) for pid in ids} if KB in payload else {}
        if DOC_HASH in payload:
            now_pending = payload[DOC_HASH] == PENDING
            added, removed = (set(ids), set()) if now_pending else (set(), set(ids))
            self._track(added=added, removed=removed, kbs=kbs)
        elif kbs:
            self._track(added=set(), removed=set(), kbs=kbs)

    def set_payload_where(self, where: Where, payload: dict[str, Any]) -> None:
        if self.indexed_filters:
            self.client.set_payload(self.collection, payload=payload, points=_filter(where), wait=True)  # type: ignore[arg-type]
            return
        ids: list[str] = []  # local mode: by id, so the knowledge base of each point stays known
        offset: str | None = None
        while True:
            records, offset = self.scroll(where, False, False, offset, 2048)
            ids += [r.id for r in records]
            if offset is None:
                break
        for start in range(0, len(ids), 2048):
            self.set_payload(ids[start : start + 2048], payload)

    def delete(self, ids: list[str]) -> None:
        self.client.delete(self.collection, points_selector=models.PointIdsList(points=ids), wait=True)  # type: ignore[arg-type]
        self._track(added=set(), removed=set(ids), kbs=dict.fromkeys(ids))

    def delete_where(self, where: Where) -> None:
        if self.indexed_filters:
            flt = _filter(where)
            self.client.delete(self.collection, points_selector=models.FilterSelector(filter=flt), wait=True)  # type: ignore[arg-type]
            return
        while True:  # local mode: by id, so the pending set stays in step
            records, _ = self.scroll(where, False, False, None, 2048)
            if not records:
                return
            self.delete([r.id for r in records])

    def _track(self, added: set[str], removed: set[str], kbs: Mapping[str, str | None]) -> None:
        """After a write: keep the pending set and the points' knowledge bases (when seeded) in step
        with the store; `kbs` maps ids to their knowledge base now (None: deleted)."""
        with self._pending_lock:
            if self._pending is not None:
                self._pending -= removed
                self._pending |= added
                for pid, kb in kbs.items():
                    if kb is None:
                        self._kb_of.pop(pid, None)
                    else:
                        self._kb_of[pid] = kb

    def _hidden_ids(self, kbs: frozenset[str] | None) -> tuple[set[str], int]:
        """Local mode: the ids a search over `kbs` must not return (pending, or outside `kbs`), and the
        point count. One scroll the first time, then kept by `_track`.

        A write racing the seed waits for the lock after its own write, so it is applied after the seed."""
        with self._pending_lock:
            if self._pending is None:
                found: set[str] = set()
                kb_of: dict[str, str] = {}
                offset: Any = None
                while True:
                    points, offset = self.client.scroll(
                        self.collection,
                        limit=2048,
                        offset=offset,
                        with_payload=[DOC_HASH, KB],
                        with_vectors=False,
                    )
                    for p in points:
                        payload = p.payload or {}
                        kb_of[str(p.id)] = str(payload.get(KB, ""))
                        if payload.get(DOC_HASH) == PENDING:
                            found.add(str(p.id))
                    if offset is None:
                        break
                self._pending, self._kb_of = found, kb_of
            hidden = set(self._pending)
            if kbs is not None:
                hidden.update(pid for pid, kb in self._kb_of.items() if kb not in kbs)
            return hidden, len(self._kb_of)

    def scroll(
        self,
        where: Where | None,
        fields: list[str] | bool,
        vectors: list[str] | bool,
        offset: str | None,
        limit: int,
    ) -> tuple[list[Record], str | None]:
        points, nxt = self.client.scroll(
            self.collection,
            scroll_filter=_filter(where),
            limit=limit,
            offset=offset,
            with_payload=fields,
            with_vectors=vectors,
        )
        return [_record(p) for p in points], (str(nxt) if nxt is not None else None)

    def retrieve(self, ids: list[str], fields: list[str] | bool, vectors: list[str] | bool) -> list[Record]:
        records = self.client.retrieve(self.collection, ids=ids, with_payload=fields, with_vectors=vectors)
        return [_record(r) for r in records]

    def search(self, searches: Sequence[Search], kbs: frozenset[str] | None) -> list[list[Hit]]:
        if self.indexed_filters:
            must: list[Any] | None = None if kbs is None else [_in_kbs(kbs)]
            flt = models.Filter(must=must, must_not=[_NOT_PENDING])
            return self._query(searches, {i: s.limit for i, s in enumerate(searches)}, flt, set())[0]
        hidden, total = self._hidden_ids(kbs)
        if not hidden:
            return self._query(searches, {i: s.limit for i, s in enumerate(searches)}, None, hidden)[0]
        visible = max(total - len(hidden), 1)
        ample = {
            i: min(s.limit + len(hidden), 2 * s.limit * total // visible + 16) for i, s in enumerate(searches)
        }
        results, fetched = self._query(searches, ample, None, hidden)
        short = {  # kept fewer than asked while the collection may hold more: ask for all it could need
            i: s.limit + len(hidden)
            for i, s in enumerate(searches)
            if len(results[i]) < s.limit and ample[i] < s.limit + len(hidden) and fetched.get(i) == ample[i]
        }
        if short:
            again = self._query(searches, short, None, hidden)[0]
            for i in short:
                results[i] = again[i]
        return results

    def _query(
        self, searches: Sequence[Search], limits: dict[int, int], flt: models.Filter | None, hidden: set[str]
    ) -> tuple[list[list[Hit]], dict[int, int]]:
        """Send the searches in `limits` (index -> how many to fetch), drop `hidden` ids, cut each to
        its own limit. Returns the results and how many points each fetch returned."""
        requests, slots = [], []
        for i, s in enumerate(searches):
            if i not in limits:
                continue
            if isinstance(s.vector, SparseVec):
                if not s.vector.indices:
                    continue
                query: Any = models.SparseVector(indices=s.vector.indices, values=s.vector.values)
            else:
                query = np.asarray(s.vector, dtype=np.float32).tolist()
            requests.append(
                models.QueryRequest(
                    query=query, using=s.using, limit=limits[i], filter=flt, with_payload=False
                )
            )
            slots.append(i)
        results: list[list[Hit]] = [[] for _ in searches]
        fetched: dict[int, int] = {}
        if requests:
            answers = self.client.query_batch_points(self.collection, requests=requests)
            for slot, answer in zip(slots, answers, strict=True):
                fetched[slot] = len(answer.points)
                hits = [Hit(str(p.id), p.score) for p in answer.points]
                results[slot] = [h for h in hits if h.id not in hidden][: searches[slot].limit]
        return results, fetched

    def close(self) -> None:
        self.client.close()


def _record(point: Any) -> Record:
    vectors: dict[str, Any] = {}
    if isinstance(point.vector, dict):
        for name, value in point.vector.items():
            vectors[name] = SparseVec(list(value.indices), list(value.values)) if name == SPARSE else value
    return Record(str(point.id), dict(point.payload or {}), vectors)
