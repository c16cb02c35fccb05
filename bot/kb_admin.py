"""Knowledge-base changes that touch both halves of a knowledge base: its chunks in the store, and its
name, visibility and grants in the state database. `ragbot kb` and the web admin page (bot/admin.py)
both go through `KnowledgeBaseAdmin`, so both change the two in the same order: the store first (a
cut-off delete leaves a name without chunks, never chunks without their grants).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from retrieval.store import VectorStore
from retrieval.types import DEFAULT_KB, Scope, check_kb_name
from state import AlreadyExists, Invalid, KnowledgeBase, NotFound
from state.kbs import KnowledgeBases

log = logging.getLogger(__name__)


class ChunkStore(Protocol):
    """The store's side of a knowledge base, as knowledge-base administration needs it."""

    def kb_names(self) -> list[str]: ...

    def chunks(self, kb: str) -> int: ...

    def delete(self, kb: str) -> int: ...

    def rename(self, old: str, new: str) -> None: ...


@dataclass
class StoreChunks:
    """A VectorStore as a ChunkStore (a collection not created yet holds no knowledge base).
    `on_change` runs after a delete or rename: a retriever forgets what it cached about the collection."""

    store: VectorStore
    on_change: Callable[[], None] = field(default=lambda: None)

    def kb_names(self) -> list[str]:
        return self.store.kb_names() if self.store.exists() else []

    def chunks(self, kb: str) -> int:
        return self.store.count(Scope.of(kb)) if self.store.exists() else 0

    def delete(self, kb: str) -> int:
        held = self.store.exists() and (kb in self.store.kb_names() or self.store.count(Scope.of(kb)))
        n = self.store.delete_kb(kb) if held else 0
        self.on_change()
        return n

    def rename(self, old: str, new: str) -> None:
        if self.store.exists() and old in self.store.kb_names():
            self.store.rename_kb(old, new)
            self.on_change()


@dataclass(frozen=True)
class KbSummary:
    """A knowledge base as listed: `chunks` is None when the store could not be asked."""

    name: str
    public: bool
    chunks: int | None


class KnowledgeBaseAdmin:
    """Create, list, share, rename and delete knowledge bases. Each change is audited under `actor`
    (the state does it). `uploads_dir` holds the web chat's uploaded files, which are `default`'s: they
    go with it, before its chunks, as Library.delete does (a cut-off delete never comes back)."""

    def __init__(
        self, kbs: KnowledgeBases, store: ChunkStore | None, uploads_dir: Path | None = None
    ) -> None:
        """Without a `store` (an app assembled without one) names and visibility can change, but
        deleting or renaming, which must move chunks too, is refused."""
        self.kbs, self.store, self.uploads_dir = kbs, store, uploads_dir

    @property
    def moves_chunks(self) -> bool:
        """Whether rename and delete are possible here."""
        return self.store is not None

    def summaries(self, names: set[str] | None = None) -> list[KbSummary]:
        """Every knowledge base the state or the store knows (or those of `names`), by name."""
        known = {kb.name: kb for kb in self.kbs.list()}
        try:
            in_store: set[str] = set(self._store_names())
        except Exception:
            log.exception("listing the store's knowledge bases failed")
            in_store = set()
        every = set(known) | in_store
        out = []
        for name in sorted(every if names is None else every & names):
            kb = known.get(name)
            out.append(KbSummary(name, kb is not None and kb.public, self._chunks(name)))
        return out

    def create(self, name: str, *, public: bool = False, actor: str) -> KnowledgeBase:
        return self.kbs.create(_checked(name), public=public, actor=actor)

    def set_public(self, name: str, public: bool, *, actor: str) -> KnowledgeBase:
        return self.kbs.set_public(name, public, actor=actor)

    def delete(self, name: str, *, actor: str) -> int:
        """Its uploaded files (for `default`), its chunks, then its name and grants; the chunks removed."""
        store = self._store()
        if self.kbs.get(name) is None and name not in store.kb_names() and not store.chunks(name):
            raise NotFound(f"no knowledge base {name!r}")
        if name == DEFAULT_KB and self.uploads_dir is not None and self.uploads_dir.is_dir():
            for path in sorted(self.uploads_dir.iterdir()):
                if path.is_file() and not path.is_symlink():
                    path.unlink()
        n = store.delete(name)
        if self.kbs.get(name) is not None:
            self.kbs.delete(name, actor=actor)
        return n

    def rename(self, old: str, new: str, *, actor: str) -> None:
        """Its chunks keep their vectors (nothing is re-embedded) and its grants follow it."""
        store = self._store()
        _checked(new)
        if old == new:
            return
        if self.kbs.get(new) is not None:
            raise AlreadyExists(f"knowledge base {new!r} already exists")
        if self.kbs.get(old) is None and old not in store.kb_names():
            raise NotFound(f"no knowledge base {old!r}")
        try:
            store.rename(old, new)
        except (KeyError, ValueError) as exc:
            raise Invalid(str(exc.args[0] if exc.args else exc)) from None
        if self.kbs.get(old) is not None:
            self.kbs.rename(old, new, actor=actor)

    def _store(self) -> ChunkStore:
        if self.store is None:
            raise Invalid("the document store is not connected here: use `ragbot kb` on the server")
        return self.store

    def _store_names(self) -> list[str]:
        return self.store.kb_names() if self.store is not None else []

    def _chunks(self, name: str) -> int | None:
        if self.store is None:
            return None
        try:
            return self.store.chunks(name)
        except Exception:  # a store down: the list still shows names and visibility
            log.exception("counting the chunks of knowledge base %r failed", name)
            return None


def _checked(name: str) -> str:
    try:
        return check_kb_name(name)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
