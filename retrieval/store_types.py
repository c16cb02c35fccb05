"""What the store facade (`retrieval.store`) and its engines (`store_edge`, `store_client`) share.

The payload layout's names, the errors, the records a search or scroll returns, the `Engine`
interface each engine implements, and the file helpers for durable writes. The facade imports the
engines and this module; the engines import only this module, never the facade.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.sparse import SparseVec
from retrieval.types import DEFAULT_KB

FULL = "full"
SPARSE = "bm25"
DOC_HASH = "doc_hash"  # payload field: the hash of the file version a chunk belongs to
PENDING = ""  # its value on a chunk whose file is not completely stored yet: never searched, never listed
KB_META_PREFIX = "kb:"  # metadata key of one knowledge base's entry: `kb:<name>` (see retrieval/store.py)
LAYOUT = (
    2  # the metadata and payload layout version: 2 = chunks carry `kb` (absent: 1, before knowledge bases)
)
KB = "kb"  # payload field: the chunk's knowledge base (a keyword index, the tenant key where the engine has one)


def head_name(i: int) -> str:
    return f"head_{i:02d}"


class StoreUnavailable(RuntimeError):
    """Qdrant cannot be reached or opened; the message says what to do."""


class SchemaMismatch(RuntimeError):
    """The collection exists with other dimensions (another embedder)."""


@dataclass(frozen=True)
class Hit:
    id: str
    score: float


@dataclass(frozen=True)
class Search:
    """One leg of a batched search: a named dense vector or the sparse BM25 vector, and its depth."""

    using: str
    vector: np.ndarray | SparseVec
    limit: int


@dataclass(frozen=True)
class Where:
    """Which points a scroll, count or bulk write touches: all conditions given must hold (None: any)."""

    kbs: frozenset[str] | None = None
    sources: Sequence[str] | None = None
    kb_missing: bool = False  # points written before knowledge bases (no `kb` in their payload)


@dataclass(frozen=True)
class Record:
    id: str
    payload: dict[str, Any]
    vectors: dict[str, Any] = field(default_factory=dict)  # name -> list[float] or SparseVec


@dataclass(frozen=True)
class StoredSource:
    """One source as the store holds it: its title and each chunk's document hash (PENDING: not committed)."""

    source: str
    title: str
    chunks: dict[str, str]  # chunk id -> document hash
    kb: str = DEFAULT_KB

    @property
    def committed(self) -> int:
        return sum(1 for h in self.chunks.values() if h != PENDING)

    @property
    def pending(self) -> list[str]:
        return [i for i, h in self.chunks.items() if h == PENDING]

    @property
    def versions(self) -> set[str]:
        """The document hashes of its committed chunks: one, unless a replacement was cut off."""
        return {h for h in self.chunks.values() if h != PENDING}


@dataclass(frozen=True)
class Schema:
    dim: int
    n_heads: int
    head_dim: int

    def vector_sizes(self) -> dict[str, int]:
        return {FULL: self.dim} | {head_name(i): self.head_dim for i in range(self.n_heads)}


class Engine(ABC):
    """Storage primitives of one collection. Ids are chunk UUID strings; vectors are float32 arrays."""

    name: str
    location: str
    indexed_filters: bool  # filters use a payload index (else each filter scans every point)

    @abstractmethod
    def exists(self) -> bool: ...
    @abstractmethod
    def create(self, schema: Schema, metadata: dict[str, Any]) -> None: ...
    @abstractmethod
    def vector_sizes(self) -> dict[str, int]: ...
    @abstractmethod
    def drop(self) -> None: ...
    @abstractmethod
    def metadata(self) -> dict[str, Any]: ...
    @abstractmethod
    def update_metadata(self, values: dict[str, Any]) -> None:
        """Merge `values` into the metadata (keys not named keep their values)."""

    @abstractmethod
    def count(self, where: Where | None = None) -> int: ...
    @abstractmethod
    def upsert(
        self, ids: list[str], dense: dict[str, np.ndarray], sparse: list[SparseVec], payloads: list[dict]
    ) -> None: ...
    @abstractmethod
    def set_payload(self, ids: list[str], payload: dict[str, Any]) -> None: ...
    @abstractmethod
    def set_payload_where(self, where: Where, payload: dict[str, Any]) -> None: ...
    @abstractmethod
    def delete(self, ids: list[str]) -> None: ...
    @abstractmethod
    def delete_where(self, where: Where) -> None: ...
    @abstractmethod
    def scroll(
        self,
        where: Where | None,
        fields: list[str] | bool,
        vectors: list[str] | bool,
        offset: str | None,
        limit: int,
    ) -> tuple[list[Record], str | None]: ...
    @abstractmethod
    def retrieve(
        self, ids: list[str], fields: list[str] | bool, vectors: list[str] | bool
    ) -> list[Record]: ...
    @abstractmethod
    def search(self, searches: Sequence[Search], kbs: frozenset[str] | None) -> list[list[Hit]]:
        """All searches in one round trip; sparse searches with no terms are not sent and return [].

        Only chunks of the knowledge bases `kbs` are returned, the filter applied inside the engine's
        query (None: no knowledge base filter; the store never passes None, benchmarks do).
        Pending chunks (document hash PENDING) are never returned: a file being ingested is not
        searchable until all its chunks are stored and stamped, and its previous version serves meanwhile.
        """

    def ensure_indexes(self) -> None:  # noqa: B027 (optional: engines without payload indexes need nothing)
        """Create the payload indexes the store's filters use, where an older collection lacks them."""

    @abstractmethod
    def close(self) -> None: ...


# ---- file helpers the engines share ------------------------------------------------------------
def atomic_write_json(path: Path, value: dict[str, Any]) -> None:
    """Write-to-temp, fsync, rename, fsync the folder: a crash leaves the old file or the new, never half."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make renames and deletions in `folder` durable (best effort)."""
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
