"""Knowledge-base changes that touch both halves of a knowledge base: its chunks in the store, and its
name, visibility and grants in the state database. `ragbot kb` and the web admin page (bot/admin.py)
both go through `KnowledgeBaseAdmin`, so both change the two in the same order: the store first (a
cut-off delete leaves a name without chunks, never chunks without their grants).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.library import kb_folder
from retrieval.store import VectorStore, fsync_dir
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
    (the state does it). `uploads_dir` holds the web chat's uploaded files, each knowledge base's in its
    folder (bot/library.py `kb_folder`): they go with it, before its chunks, as Library.delete does (a
    cut-off delete never comes back), and move with it on a rename."""

    def __init__(
        self,
        kbs: KnowledgeBases,
        store: ChunkStore | None,
        uploads_dir: Path | None = None,
        on_uploads_moved: Callable[[str, str | None], object] | None = None,
    ) -> None:
        """Without a `store` (an app assembled without one) names and visibility can change, but
        deleting or renaming, which must move chunks too, is refused. `on_uploads_moved(old, new)` runs
        after a delete (`new` None) or a rename moved the uploaded files: the web chat's libraries
        (bot/library.py Libraries.moved) re-key the documents now rather than at the next start."""
        self.kbs, self.store, self.uploads_dir = kbs, store, uploads_dir
        self.on_uploads_moved = on_uploads_moved

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
        """Its uploaded files, its chunks, then its name and grants; the chunks removed."""
        store = self._store()
        if self.kbs.get(name) is None and name not in store.kb_names() and not store.chunks(name):
            raise NotFound(f"no knowledge base {name!r}")
        self._remove_uploads(name)
        n = store.delete(name)
        if self.kbs.get(name) is not None:
            self.kbs.delete(name, actor=actor)
        if self.on_uploads_moved is not None:
            self.on_uploads_moved(name, None)
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
        self._move_uploads(old, new)
        if self.on_uploads_moved is not None:
            self.on_uploads_moved(old, new)

    def _remove_uploads(self, name: str) -> None:
        """The files first (`default`'s: the files in the uploads folder, never the other knowledge
        bases' folders in it), then, for another knowledge base, its emptied folder."""
        if self.uploads_dir is None:
            return
        folder = kb_folder(self.uploads_dir, name)
        if not folder.is_dir() or folder.is_symlink():
            return
        for path in sorted(folder.iterdir()):
            if path.is_file() or path.is_symlink():
                path.unlink()
        fsync_dir(folder)
        if name != DEFAULT_KB:
            shutil.rmtree(folder)  # what is left: the staging folder of a cut-off upload

    def _move_uploads(self, old: str, new: str) -> None:
        """Move the uploaded files to the new name's folder (one rename of the folder, unless `default`,
        whose files sit beside the other folders). The chunks still name the old paths: Library.reconcile
        re-keys them (at once through `on_uploads_moved`, else at the next start)."""
        if self.uploads_dir is None:
            return
        source, target = kb_folder(self.uploads_dir, old), kb_folder(self.uploads_dir, new)
        if not source.is_dir() or source.is_symlink():
            return
        if DEFAULT_KB not in (old, new) and not target.exists():
            os.replace(source, target)
            fsync_dir(self.uploads_dir)
            return
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.iterdir()):
            if path.is_file() and not path.is_symlink() and not (target / path.name).exists():
                os.replace(path, target / path.name)
        fsync_dir(target)
        if old != DEFAULT_KB:
            with contextlib.suppress(OSError):
                shutil.rmtree(source)

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
