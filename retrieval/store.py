"""Vector store wrapper around Qdrant: named vectors `full` + `head_NN` (cosine) and a `bm25` sparse vector.

The same code runs on Qdrant's local mode (`path=`, on disk, the embedded default) and on a Qdrant
server (`url=`). Collection-level facts (head importance, BM25 average length, embedder name) live in
the collection's metadata so they travel with the data.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException

from retrieval.embedder import MultiHeadEmbeddings
from retrieval.importance import unit
from retrieval.sparse import SparseVec
from retrieval.types import Chunk

FULL = "full"
SPARSE = "bm25"


def head_name(i: int) -> str:
    return f"head_{i:02d}"


class StoreUnavailable(RuntimeError):
    """Qdrant cannot be reached or opened; the message says what to do."""


class SchemaMismatch(RuntimeError):
    """The collection exists with other dimensions (another embedder)."""


class _GuardedClient:
    """Proxy to QdrantClient that turns lost connections into StoreUnavailable with the server named.

    One place for it, so every call of the wrapper (and of code holding `store.client`) fails the
    same readable way when a Qdrant server goes away mid-session.
    """

    def __init__(self, client: QdrantClient, location: str) -> None:
        self._client = client
        self._location = location

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except ResponseHandlingException as exc:
                raise StoreUnavailable(f"Lost the connection to Qdrant at {self._location}: {exc}") from exc

        return call


@dataclass(frozen=True)
class Hit:
    id: str
    score: float


class VectorStore:
    def __init__(
        self,
        collection: str,
        path: str | Path | None = None,
        url: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.collection = collection
        self.location = url or str(path)
        self.is_server = bool(url)
        try:
            if url:
                client = QdrantClient(
                    url=url, api_key=api_key, timeout=int(timeout), check_compatibility=False
                )
                client.get_collections()  # fail now, with a clear message, if the server is down
            elif str(path) == ":memory:":
                client = QdrantClient(location=":memory:")
            else:
                Path(path or "data/qdrant").mkdir(parents=True, exist_ok=True)
                client = QdrantClient(path=str(path or "data/qdrant"))
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreUnavailable(
                    f"The local Qdrant store at {path} is open in another ragbot process; local mode allows one "
                    "process at a time. Stop the other process, or run a Qdrant server and set QDRANT_URL."
                ) from exc
            raise
        except Exception as exc:
            raise StoreUnavailable(f"Cannot reach Qdrant at {url}: {exc}. Is the server running?") from exc
        self.client: QdrantClient = _GuardedClient(client, self.location)  # type: ignore[assignment]

    # ---- schema -------------------------------------------------------------------------------
    def ensure_collection(self, dim: int, n_heads: int, head_dim: int, embedder: str) -> None:
        if self.client.collection_exists(self.collection):
            info = self.client.get_collection(self.collection)
            vectors = info.config.params.vectors
            have = {name: params.size for name, params in (vectors or {}).items()}  # type: ignore[union-attr]
            want = {FULL: dim} | {head_name(i): head_dim for i in range(n_heads)}
            if have != want:
                raise SchemaMismatch(
                    f"Collection '{self.collection}' was built with other vectors ({len(have)} named vectors, "
                    f"full={have.get(FULL)}); it does not fit embedder '{embedder}'. Use another collection name "
                    "or delete it (ragbot reset)."
                )
            return
        vectors = {FULL: models.VectorParams(size=dim, distance=models.Distance.COSINE)}
        for i in range(n_heads):
            vectors[head_name(i)] = models.VectorParams(size=head_dim, distance=models.Distance.COSINE)
        self.client.create_collection(
            self.collection,
            vectors_config=vectors,
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata={"embedder": embedder, "n_heads": n_heads},
        )
        if (
            self.is_server
        ):  # local mode ignores payload indexes (and warns); a server needs one for fast filters
            self.client.create_payload_index(self.collection, "source", models.PayloadSchemaType.KEYWORD)

    def exists(self) -> bool:
        return self.client.collection_exists(self.collection)

    def drop(self) -> None:
        if self.exists():
            self.client.delete_collection(self.collection)

    @property
    def n_heads(self) -> int:
        return int(self.metadata().get("n_heads", 0))

    def metadata(self) -> dict[str, Any]:
        return dict(self.client.get_collection(self.collection).config.metadata or {})

    def update_metadata(self, **values: Any) -> None:
        self.client.update_collection(self.collection, metadata=values)

    def count(self) -> int:
        return self.client.count(self.collection, exact=True).count

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
        heads = unit(emb.heads)
        points = []
        for i, chunk in enumerate(chunks):
            vector: dict[str, Any] = {FULL: emb.full[i].tolist()}
            for h in range(heads.shape[1]):
                vector[head_name(h)] = heads[i, h].tolist()
            if sparse[i].indices:
                vector[SPARSE] = models.SparseVector(indices=sparse[i].indices, values=sparse[i].values)
            payload = chunk.model_dump() | {"doc_hash": doc_hashes[i], "head_norms": norms[i].tolist()}
            points.append(models.PointStruct(id=chunk.id, vector=vector, payload=payload))
        for start in range(0, len(points), batch_size):
            self.client.upsert(self.collection, points=points[start : start + batch_size], wait=True)

    def set_doc_hash(self, ids: Sequence[str], doc_hash: str) -> None:
        if ids:
            self.client.set_payload(
                self.collection, payload={"doc_hash": doc_hash}, points=list(ids), wait=True
            )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self.client.delete(
                self.collection, points_selector=models.PointIdsList(points=list(ids)), wait=True
            )

    # ---- reads --------------------------------------------------------------------------------
    def source_states(self, sources: Iterable[str]) -> dict[str, dict[str, str]]:
        """For each source: chunk id -> stored document hash (empty for sources not stored yet).

        A few sources are looked up by filter; many at once take one scroll over the collection,
        since local mode evaluates every filter by scanning all points anyway.
        """
        wanted = set(sources)
        states: dict[str, dict[str, str]] = {s: {} for s in wanted}
        if not wanted:
            return states
        filters: list[models.Filter | None]
        if len(wanted) <= 16:
            filters = [
                models.Filter(must=[models.FieldCondition(key="source", match=models.MatchValue(value=s))])
                for s in wanted
            ]
        else:
            filters = [None]
        for flt in filters:
            offset = None
            while True:
                points, offset = self.client.scroll(
                    self.collection,
                    scroll_filter=flt,
                    limit=2048,
                    offset=offset,
                    with_payload=["source", "doc_hash"],
                )
                for p in points:
                    payload = p.payload or {}
                    if payload.get("source") in states:
                        states[payload["source"]][str(p.id)] = str(payload.get("doc_hash", ""))
                if offset is None:
                    break
        return states

    def ids(self) -> list[str]:
        """Every point id in the collection (scrolls; for tools and benchmarks, not the hot path)."""
        ids: list[str] = []
        offset = None
        while True:
            points, offset = self.client.scroll(
                self.collection, limit=2048, offset=offset, with_payload=False
            )
            ids += [str(p.id) for p in points]
            if offset is None:
                return ids

    def chunks(self, ids: Iterable[str]) -> dict[str, Chunk]:
        ids = list(ids)
        if not ids:
            return {}
        records = self.client.retrieve(self.collection, ids=ids, with_payload=True)
        fields = set(Chunk.model_fields)
        return {
            str(r.id): Chunk(**{k: v for k, v in (r.payload or {}).items() if k in fields}) for r in records
        }

    def search(self, vector_name: str, vector: np.ndarray, limit: int) -> list[Hit]:
        res = self.client.query_points(self.collection, query=vector.tolist(), using=vector_name, limit=limit)
        return [Hit(str(p.id), p.score) for p in res.points]

    def search_many(self, requests: Sequence[tuple[str, np.ndarray]], limit: int) -> list[list[Hit]]:
        """One round trip for several named-vector searches (MRAG's per-head lists)."""
        batch = [
            models.QueryRequest(query=vec.tolist(), using=name, limit=limit, with_payload=False)
            for name, vec in requests
        ]
        results = self.client.query_batch_points(self.collection, requests=batch)
        return [[Hit(str(p.id), p.score) for p in r.points] for r in results]

    def search_sparse(self, query: SparseVec, limit: int) -> list[Hit]:
        if not query.indices:
            return []
        res = self.client.query_points(
            self.collection,
            query=models.SparseVector(indices=query.indices, values=query.values),
            using=SPARSE,
            limit=limit,
        )
        return [Hit(str(p.id), p.score) for p in res.points]

    def sample_heads(self, limit: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Raw head norms [n, H] and unit head vectors [n, H, d] of up to `limit` points.

        Sampling is by stride over the scroll order so it needs one pass and no random access.
        """
        total = self.count()
        n_heads = self.n_heads
        names = [head_name(i) for i in range(n_heads)]
        stride = max(1, total // limit) if limit else 1
        norms: list[list[float]] = []
        heads: list[list[Any]] = []
        offset, index = None, 0
        while True:
            points, offset = self.client.scroll(
                self.collection, limit=1024, offset=offset, with_payload=["head_norms"], with_vectors=names
            )
            for p in points:
                if index % stride == 0 and len(norms) < limit:
                    vec = p.vector if isinstance(p.vector, dict) else {}
                    norms.append((p.payload or {}).get("head_norms", [1.0] * n_heads))
                    heads.append([vec[name] for name in names])
                index += 1
            if offset is None or len(norms) >= limit:
                break
        return np.asarray(norms, dtype=np.float32), np.asarray(heads, dtype=np.float32)

    def close(self) -> None:
        self.client.close()
