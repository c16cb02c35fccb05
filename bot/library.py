"""The document library behind the web chat's documents panel: list, upload, delete.

Uploads go through the same Ingestor as `ragbot ingest`. Each file is stored under the data
folder's `uploads/` with a sanitised name (never outside it, whatever the name a browser sends), and
that path is the document's key: uploading a file with the same name again reports it unchanged or
replaced. Deleting a document removes its chunks and, when it was uploaded, its stored copy. Who may
change the library is decided by `edit_access` (bot/httpsafe.py).

Crash safety: a new version is written to `uploads/.staging/` and ingested under its final name;
its chunks stay pending (never searched, never listed) until all are stored and stamped, which is
the commit. Only then does the staged file replace the one in `uploads/`, so until the commit the
previous version serves, on disk and in the store. An exception during ingest puts the previous
version back in the store. After a kill, `Library.reconcile()` (at start-up) finishes or rolls back
what was cut off: a staged file whose version the store committed is moved into place, any other is
dropped; then every uploaded document whose chunks do not match its file (pending chunks, two
versions, no chunks, no file) is re-ingested from the file in `uploads/`, or removed when the file is
gone. Deleting removes the file before the chunks, so a cut-off delete never comes back.

A library is one knowledge base's: its ingestor's `kb`. It lists, changes and reconciles only that
knowledge base's chunks, and its folder holds only that knowledge base's files. `Libraries` holds one
per knowledge base, made on demand: `default`'s folder is the uploads folder itself (where installs from
before knowledge bases keep their files), any other's a sub-folder named by `kb_folder`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from retrieval.ingest import Ingestor, refresh_importance, refresh_stale
from retrieval.loaders import SUPPORTED_SUFFIXES, DocumentError, load_document
from retrieval.store import PENDING, StoredSource, fsync_dir
from retrieval.types import DEFAULT_KB, Document, FileStatus, Scope

log = logging.getLogger(__name__)
MAX_NAME_CHARS = 120
STAGING = ".staging"  # under uploads/: new versions wait here until the store has committed their chunks
TEMP_PREFIX = ".upload-"  # temporary files of earlier versions of this module, removed by reconcile
_UNSAFE = re.compile(r"[^\w.\- ]+")  # \w is Unicode-aware: accented and non-Latin names survive
_FOLDER_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class UploadRejected(ValueError):
    """A file refused before ingest (name, type, size); the message is meant for the user."""


@dataclass(frozen=True)
class DocumentInfo:
    source: str  # the store key: an absolute path or a URL
    title: str
    chunks: int
    uploaded_at: float | None = None  # set when its file lives in the uploads folder (delete removes it)

    @property
    def uploaded(self) -> bool:
        return self.uploaded_at is not None

    @property
    def name(self) -> str:
        return self.source.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class UploadOutcome:
    name: str  # as the browser sent it
    stored_as: str  # the sanitised file name under uploads/ ('' when rejected before saving)
    status: FileStatus
    chunks: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Reconciled:
    """What `Library.reconcile` did to make `uploads/` and the store agree (file names, counts)."""

    completed: tuple[str, ...] = ()  # committed in the store, cut off before the file swap: swapped now
    rolled_back: tuple[str, ...] = ()  # cut off before the commit: staged file dropped, previous version kept
    repaired: tuple[str, ...] = ()  # re-ingested from uploads/ so the store holds exactly that file's chunks
    removed: tuple[str, ...] = ()  # documents dropped: file gone (a cut-off delete) or no longer readable
    moved: tuple[str, ...] = ()  # its knowledge base was renamed: chunks under the old folder's path dropped
    pending_removed: int = 0  # pending chunks of other sources' cut-off ingests deleted (embedded store only)
    temp_files_removed: int = 0
    importance_refreshed: bool = False

    @property
    def changed(self) -> bool:
        return bool(
            self.completed
            or self.rolled_back
            or self.repaired
            or self.removed
            or self.moved
            or self.pending_removed
            or self.temp_files_removed
            or self.importance_refreshed
        )


def safe_filename(name: str) -> str:
    """The name a file is stored under: its last path component, reduced to word characters, dots,
    dashes and spaces, no leading dots, a supported suffix. Raises UploadRejected otherwise."""
    base = re.split(r"[/\\]", unicodedata.normalize("NFKC", name or ""))[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")  # control and format chars
    base = _UNSAFE.sub("_", base).strip(" .")
    stem, dot, suffix = base.rpartition(".")
    if not dot or not stem.strip(" ._"):
        raise UploadRejected(f"'{name}' has no usable file name and type")
    suffix = "." + suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UploadRejected(
            f"unsupported file type '{suffix}' (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})"
        )
    return stem[: MAX_NAME_CHARS - len(suffix)].rstrip(" .") + suffix


def kb_folder(uploads_dir: Path, kb: str) -> Path:
    """Where knowledge base `kb`'s uploaded files live: `default`'s in `uploads_dir` itself, any other's
    in a sub-folder named by its ASCII letters, digits, `_` and `-` and a hash of the whole name (names
    are any printable text: the hash keeps `Team`, `team` and `tëam` apart on any file system). A
    folder is never a document of `default` (those are files), and never starts with a dot."""
    if kb == DEFAULT_KB:
        return uploads_dir
    slug = _FOLDER_UNSAFE.sub("_", kb)[:40].strip("_") or "kb"
    return uploads_dir / f"{slug}-{hashlib.sha256(kb.encode()).hexdigest()[:10]}"


class Library:
    """List, upload and delete documents; one change at a time (a lock), readers never wait."""

    def __init__(
        self,
        ingestor: Ingestor,
        uploads_dir: Path,
        max_bytes: int = 20_000_000,
        on_change: Callable[[], None] | None = None,
        list_ttl_s: float = 30.0,
        uploads_root: Path | None = None,
    ) -> None:
        """`uploads_root`, the folder above every knowledge base's (when `uploads_dir` is one of them):
        reconcile drops this knowledge base's chunks of a file there that is gone (its knowledge base
        was renamed, the file moved here and is re-ingested under its new path)."""
        self.ingestor = ingestor
        self.store = ingestor.store
        self.kb = ingestor.kb
        self.scope = Scope.of(self.kb)
        self.uploads_dir = uploads_dir.resolve()
        self.uploads_root = uploads_root.resolve() if uploads_root is not None else self.uploads_dir
        self.max_bytes = max_bytes
        self.on_change = on_change  # e.g. the retriever forgetting cached collection facts
        self._lock = threading.Lock()
        # Listing reads every chunk's source, title and hash, and every page load asks for it: keep it a while
        # (changes made here clear it; an ingest by another process shows within `list_ttl_s`).
        self.list_ttl_s = list_ttl_s
        self._listed: tuple[float, list[DocumentInfo]] | None = None

    # ---- reading -----------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        """Every stored source with its title and chunk count, by title."""
        listed = self._listed
        if listed and time.monotonic() - listed[0] < self.list_ttl_s:
            return listed[1]
        docs = self._scan()
        self._listed = (time.monotonic(), docs)
        return docs

    def _scan(self) -> list[DocumentInfo]:
        """One pass over the store's chunks (O(chunks): fine for thousands, slow for 100k).

        Committed chunks only: a file being ingested shows once its new version is complete."""
        docs = [
            DocumentInfo(s.source, s.title, s.committed, self._uploaded_at(s.source))
            for s in self.store.sources(self.scope)
            if s.committed
        ]
        return sorted(docs, key=lambda d: (d.title.lower(), d.source))

    # ---- changing ----------------------------------------------------------------------------
    def upload(self, files: Sequence[tuple[str, Path]]) -> list[UploadOutcome]:
        """Store and ingest (browser name, temporary path) pairs; one outcome per file, in order.

        Each file is staged and ingested under its final name; it replaces the file in `uploads/` only
        once the store has committed its chunks. A file the loader rejects leaves no trace, and an
        exception during ingest (re-raised) leaves every previous version in place, on disk and in
        the store.
        """
        with self._lock:
            outcomes: dict[int, UploadOutcome] = {}
            staged: dict[int, tuple[Path, Path]] = {}  # index -> (staged file, final path)
            taken: set[str] = set()
            try:
                for i, (name, temp) in enumerate(files):
                    try:
                        staged[i] = self._stage(name, temp, taken)
                    except UploadRejected as exc:
                        outcomes[i] = UploadOutcome(name, "", FileStatus.REJECTED, reason=str(exc))
                docs: dict[int, Document] = {}
                for i, (path, final) in staged.items():
                    try:
                        docs[i] = _load_as(path, final)
                    except DocumentError as exc:
                        outcomes[i] = UploadOutcome(
                            files[i][0], final.name, FileStatus.REJECTED, reason=exc.reason
                        )
                if docs:
                    outcomes |= self._ingest_staged([name for name, _ in files], staged, docs)
            finally:
                for path, _ in staged.values():
                    path.unlink(missing_ok=True)
                self._drop_staging_dir()
            return [outcomes[i] for i in range(len(files))]

    def delete(self, source: str) -> int:
        """Remove a document's chunks (and its uploaded file); returns how many chunks went.

        Only sources the store holds can be deleted, and only files inside the uploads folder are
        ever removed from disk. Head importance is marked stale first and the file goes before the
        chunks: a crash part-way leaves chunks without a file, which `reconcile` removes.
        """
        with self._lock:
            ids = list(self.store.source_states([source], self.kb)[source])
            if not ids:
                return 0
            self.store.update_kb(self.kb, importance_stale=True)
            if (path := self._uploaded(source)) is not None:
                path.unlink(missing_ok=True)
                fsync_dir(self.uploads_dir)
            try:
                self.store.delete(ids)
                refresh_importance(self.store, self.kb, self.ingestor.importance_sample)
            finally:
                self._changed()
            return len(ids)

    def reconcile(self) -> Reconciled:
        """Make `uploads/` and the store agree after a crash; call once at start-up, before serving.

        Cheap when nothing was cut off: one scroll over the chunks' source and hash, and a look at
        `uploads/`; files are loaded (and chunks embedded) only for documents found out of step.
        """
        with self._lock:
            temp_files = self._remove_temp_files()
            stored = {s.source: s for s in self.store.sources(self.scope)}
            completed, rolled_back = self._settle_staged(stored)
            suspects: set[Path] = set()
            leftovers: list[str] = []  # pending chunks of sources outside uploads/
            moved: list[str] = []  # documents whose file a knowledge-base rename moved into this folder
            for source, entry in stored.items():
                path = self._uploaded(source)
                if path is None and self._moved_away(source):
                    moved.append(Path(source).name)
                    self._remove_chunks(list(entry.chunks))
                    suspects.add(self.uploads_dir / Path(source).name)
                elif path is None:
                    leftovers += entry.pending
                elif not path.is_file() or entry.pending or len(entry.versions) != 1:
                    suspects.add(path)
            for path in self._uploaded_files():
                found = stored.get(str(path))
                if found is None or not found.versions:  # its ingest never committed
                    suspects.add(path)
            if self.store.is_server:  # another process may be ingesting those right now
                leftovers = []
            self._remove_chunks(leftovers)
            repaired, removed = self._converge(sorted(p for p in suspects if p.is_file() or str(p) in stored))
            refreshed = self._refresh_if_stale() or bool(repaired) or bool(moved)
            report = Reconciled(
                completed=tuple(completed),
                rolled_back=tuple(rolled_back),
                repaired=tuple(repaired),
                removed=tuple(removed),
                moved=tuple(moved),
                pending_removed=len(leftovers),
                temp_files_removed=temp_files,
                importance_refreshed=refreshed,
            )
            if report.changed:
                log.info("library reconciled after an interrupted change: %s", report)
                self._changed()
            return report

    # ---- helpers -----------------------------------------------------------------------------
    def _stage(self, name: str, temp: Path, taken: set[str]) -> tuple[Path, Path]:
        """Copy an upload into the staging folder under its safe name; returns (staged, final) paths."""
        safe = safe_filename(name)
        if safe.lower() in taken:
            raise UploadRejected(f"another file in this upload is also stored as '{safe}'")
        size = temp.stat().st_size
        if size > self.max_bytes:
            raise UploadRejected(f"file is {_size(size)}, over the {_size(self.max_bytes)} upload limit")
        target = self.uploads_dir / safe
        if target.is_symlink() or target.resolve().parent != self.uploads_dir:
            raise UploadRejected(f"'{safe}' cannot be stored in the uploads folder")
        staging = self.uploads_dir / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        staged = staging / safe
        staged.unlink(missing_ok=True)
        with temp.open("rb") as src, staged.open("xb") as dst:
            shutil.copyfileobj(src, dst)
            dst.flush()
            os.fsync(dst.fileno())  # durable before its chunks can be committed
        taken.add(safe.lower())
        return staged, target

    def _ingest_staged(
        self, names: list[str], staged: dict[int, tuple[Path, Path]], docs: dict[int, Document]
    ) -> dict[int, UploadOutcome]:
        """Ingest the staged documents, then move each staged file into place (its commit is done)."""
        outcomes: dict[int, UploadOutcome] = {}
        swapped: set[int] = set()
        try:
            report = self.ingestor.ingest_documents(list(docs.values()))
            by_source = {f.source: f for f in report.files}
            for i, doc in docs.items():
                path, final = staged[i]
                os.replace(path, final)
                swapped.add(i)
                f = by_source[doc.source]
                outcomes[i] = UploadOutcome(names[i], final.name, f.status, f.chunks, f.reason)
            fsync_dir(self.uploads_dir)
        except BaseException:
            self._restore([staged[i][1] for i in docs if i not in swapped])
            raise
        finally:
            self._changed()
        return outcomes

    def _restore(self, finals: list[Path]) -> None:
        """After a failed ingest: the store goes back to what `uploads/` holds (the previous versions)."""
        try:
            self._converge(finals)
            self._refresh_if_stale()
        except Exception:
            log.exception(
                "could not restore %s after a failed upload; reconcile() at the next start will", finals
            )

    def _converge(self, paths: list[Path]) -> tuple[list[str], list[str]]:
        """Make the store hold exactly the chunks of each uploaded file as it is on disk, or none when the
        file is gone or unreadable (then it is removed too). Returns (re-ingested, removed) file names."""
        if not paths:
            return [], []
        states = self.store.source_states((str(p) for p in paths), self.kb)
        docs: list[Document] = []
        removed: list[str] = []
        drop: list[str] = []
        for path in paths:
            chunks = states[str(path)]
            if path.is_file():
                try:
                    docs.append(_load_as(path, path))
                    continue
                except DocumentError as exc:
                    log.warning("removing the uploaded file %s: %s", path.name, exc.reason)
                    path.unlink(missing_ok=True)
                    removed.append(path.name)
            elif any(h != PENDING for h in chunks.values()):  # a listed document whose file is gone
                removed.append(path.name)
            drop += chunks
        self._remove_chunks(drop)
        repaired: list[str] = []
        if docs:
            report = self.ingestor.ingest_documents(docs)
            repaired = [Path(f.source).name for f in report.files if f.status is not FileStatus.UNCHANGED]
        return repaired, removed

    def _remove_chunks(self, ids: list[str]) -> None:
        if ids:
            self.store.update_kb(self.kb, importance_stale=True)  # first: a crash part-way recomputes it
            self.store.delete(ids)

    def _refresh_if_stale(self) -> bool:
        return bool(self.store.exists() and refresh_stale(self.store, self.ingestor.importance_sample))

    def _settle_staged(self, stored: Mapping[str, StoredSource]) -> tuple[list[str], list[str]]:
        """Staged files left by a crash: moved into place when the store committed their version
        (the crash came after the commit), dropped otherwise. Returns (completed, rolled back) names."""
        staging = self.uploads_dir / STAGING
        if not staging.is_dir() or staging.is_symlink():
            return [], []
        completed: list[str] = []
        rolled_back: list[str] = []
        for path in sorted(staging.iterdir()):
            final = self.uploads_dir / path.name
            entry = stored.get(str(final))
            if self._committed(path, final, entry.versions if entry else set()):
                os.replace(path, final)
                completed.append(path.name)
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            rolled_back.append(path.name)
        fsync_dir(self.uploads_dir)
        self._drop_staging_dir()
        return completed, rolled_back

    def _committed(self, staged: Path, final: Path, versions: set[str]) -> bool:
        """Is this staged file the version the store committed for its final name?"""
        if not versions or not staged.is_file() or staged.is_symlink():
            return False
        try:
            if safe_filename(staged.name) != staged.name:
                return False
            return self.ingestor.doc_hash(_load_as(staged, final)) in versions
        except (UploadRejected, DocumentError):
            return False

    def _drop_staging_dir(self) -> None:
        staging = self.uploads_dir / STAGING
        with contextlib.suppress(OSError):  # absent, or a file is still staged
            staging.rmdir()

    def _remove_temp_files(self) -> int:
        if not self.uploads_dir.is_dir():
            return 0
        found = [p for p in self.uploads_dir.glob(TEMP_PREFIX + "*") if p.is_file() or p.is_symlink()]
        for path in found:
            path.unlink(missing_ok=True)
        return len(found)

    def _uploaded_files(self) -> list[Path]:
        """The documents' files in `uploads/` (hidden and unsupported files are not documents)."""
        if not self.uploads_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.uploads_dir.iterdir()
            if not p.name.startswith(".")
            and p.suffix.lower() in SUPPORTED_SUFFIXES
            and p.is_file()
            and not p.is_symlink()
        )

    def _uploaded(self, source: str) -> Path | None:
        """The stored file of an uploaded document; None for anything outside the uploads folder."""
        if source.startswith(("http://", "https://")):
            return None
        path = Path(source)
        return path if path.parent == self.uploads_dir and path.name else None

    def _moved_away(self, source: str) -> bool:
        """A source in another knowledge base's folder under the uploads root, whose file is gone: this
        knowledge base was renamed and its folder moved (the file, when it came along, is re-ingested)."""
        if source.startswith(("http://", "https://")):
            return False
        path = Path(source)
        under_root = self.uploads_root in (path.parent, path.parent.parent)
        return under_root and path.parent != self.uploads_dir and not path.exists()

    def _uploaded_at(self, source: str) -> float | None:
        path = self._uploaded(source)
        try:
            return path.stat().st_mtime if path else None
        except OSError:  # its chunks are stored but the file is gone: still listed, as ingested
            return None

    def _changed(self) -> None:
        self._listed = None
        if self.on_change:
            self.on_change()


def _load_as(path: Path, final: Path) -> Document:
    """Load a (staged) file as the document stored under `final`: chunk ids and key follow `final`."""
    return load_document(path).model_copy(update={"source": str(final)})


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


class Libraries:
    """One `Library` per knowledge base, made on first use, all under one uploads folder (`kb_folder`)."""

    def __init__(
        self,
        ingestor_for: Callable[[str], Ingestor],
        uploads_dir: Path,
        max_bytes: int = 20_000_000,
        on_change: Callable[[], None] | None = None,
        list_ttl_s: float = 30.0,
    ) -> None:
        self.ingestor_for = ingestor_for
        self.uploads_dir = uploads_dir.resolve()
        self.max_bytes, self.on_change, self.list_ttl_s = max_bytes, on_change, list_ttl_s
        self._made: dict[str, Library] = {}
        self._lock = threading.Lock()

    def get(self, kb: str) -> Library:
        """Knowledge base `kb`'s library (its folder is made at its first upload)."""
        with self._lock:
            if (library := self._made.get(kb)) is None:
                library = Library(
                    self.ingestor_for(kb),
                    kb_folder(self.uploads_dir, kb),
                    self.max_bytes,
                    on_change=self.on_change,
                    list_ttl_s=self.list_ttl_s,
                    uploads_root=self.uploads_dir,
                )
                self._made[kb] = library
            return library

    def reconcile(self, kbs: Iterable[str]) -> dict[str, Reconciled]:
        """`Library.reconcile` for `default` and each of `kbs` that has a folder; at start-up, before
        serving. A folder of a knowledge base no longer known is left alone (never re-ingested into a
        knowledge base that was deleted)."""
        names = {DEFAULT_KB} | {kb for kb in kbs if kb_folder(self.uploads_dir, kb).is_dir()}
        return {kb: self.get(kb).reconcile() for kb in sorted(names)}

    def moved(self, old: str, new: str | None) -> Reconciled | None:
        """After knowledge base `old` was deleted (`new` None) or renamed to `new`, its folder removed or
        moved by bot/kb_admin.py: the libraries made for either name are forgotten, and the renamed
        one's documents are keyed by their new paths (Library.reconcile)."""
        with self._lock:
            self._made.pop(old, None)
            if new is not None:
                self._made.pop(new, None)
        return self.get(new).reconcile() if new is not None else None
