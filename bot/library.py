"""The document library behind the web chat's documents panel: list, upload, delete.

Uploads go through the same Ingestor as `ragbot ingest`. Each file is first copied under the data
folder's `uploads/` with a sanitised name (never outside it, whatever the name a browser sends),
and that copy is what gets ingested, so its path is the document's key: uploading a file with the
same name again reports it unchanged or replaced. Deleting a document removes its chunks and, when
it was uploaded, its stored copy. Who may change the library is decided by `edit_access`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from retrieval.ingest import Ingestor, refresh_importance
from retrieval.loaders import SUPPORTED_SUFFIXES
from retrieval.types import FileOutcome, FileStatus

MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^\w.\- ]+")  # \w is Unicode-aware: accented and non-Latin names survive
# A proxy in front of the app makes every request look local; these headers give it away.
_FORWARDING = ("forwarded", "x-forwarded-for", "x-real-ip")


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
class Access:
    allowed: bool
    reason: str = ""


def edit_access(
    admin_token: str | None, given_token: str, host: str | None, headers: Mapping[str, str]
) -> Access:
    """May this request upload or delete? With an operator token: only with that token. Without one:
    only a direct request from this machine (loopback address and no proxy forwarding headers)."""
    if admin_token:
        if hmac.compare_digest(given_token.strip().encode(), admin_token.encode()):
            return Access(True)
        return Access(False, "The operator token is missing or wrong.")
    lowered = {k.lower() for k in headers}
    try:
        local = host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if local and not lowered.intersection(_FORWARDING):
        return Access(True)
    return Access(
        False,
        "Changing documents is allowed from this machine only; the operator can set RAGBOT_ADMIN_TOKEN.",
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


class Library:
    """List, upload and delete documents; one change at a time (a lock), readers never wait."""

    def __init__(
        self,
        ingestor: Ingestor,
        uploads_dir: Path,
        max_bytes: int = 20_000_000,
        on_change: Callable[[], None] | None = None,
        list_ttl_s: float = 30.0,
    ) -> None:
        self.ingestor = ingestor
        self.store = ingestor.store
        self.uploads_dir = uploads_dir.resolve()
        self.max_bytes = max_bytes
        self.on_change = on_change  # e.g. the retriever forgetting cached collection facts
        self._lock = threading.Lock()
        # Listing reads every chunk's payload, and every page load asks for it: keep it a while
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
        """One pass over the store's chunks (O(chunks): fine for thousands, slow for 100k)."""
        if not self.store.exists():
            return []
        ids = self.store.ids()
        counts: dict[str, int] = {}
        titles: dict[str, str] = {}
        for start in range(0, len(ids), 1024):
            for chunk in self.store.chunks(ids[start : start + 1024]).values():
                counts[chunk.source] = counts.get(chunk.source, 0) + 1
                titles.setdefault(chunk.source, chunk.title)
        docs = [DocumentInfo(s, titles[s], n, self._uploaded_at(s)) for s, n in counts.items()]
        return sorted(docs, key=lambda d: (d.title.lower(), d.source))

    # ---- changing ----------------------------------------------------------------------------
    def upload(self, files: Sequence[tuple[str, Path]]) -> list[UploadOutcome]:
        """Store and ingest (browser name, temporary path) pairs; one outcome per file, in order.

        A file the loader rejects leaves no trace: its stored copy is removed, or the copy it would
        have replaced is put back.
        """
        with self._lock:
            self.uploads_dir.mkdir(parents=True, exist_ok=True)
            outcomes: dict[int, UploadOutcome] = {}
            saved: dict[int, tuple[Path, bytes | None]] = {}  # index -> (stored path, previous bytes)
            taken: set[str] = set()
            for i, (name, temp) in enumerate(files):
                try:
                    stored = self._save(name, temp, taken)
                except UploadRejected as exc:
                    outcomes[i] = UploadOutcome(name, "", FileStatus.REJECTED, reason=str(exc))
                    continue
                saved[i] = stored
            if saved:
                report = self.ingestor.ingest_paths([path for path, _ in saved.values()])
                by_path = {str(Path(f.path).resolve()): f for f in report.files}
                for i, (path, previous) in saved.items():
                    outcome = by_path.get(str(path)) or FileOutcome(
                        path=str(path), status=FileStatus.REJECTED, reason="not ingested"
                    )
                    if outcome.status is FileStatus.REJECTED:
                        self._undo(path, previous)
                    outcomes[i] = UploadOutcome(
                        files[i][0], path.name, outcome.status, outcome.chunks, outcome.reason
                    )
                self._changed()
            return [outcomes[i] for i in range(len(files))]

    def delete(self, source: str) -> int:
        """Remove a document's chunks (and its uploaded file); returns how many chunks went.

        Only sources the store holds can be deleted, and only files inside the uploads folder are
        ever removed from disk.
        """
        with self._lock:
            ids = list(self.store.source_states([source])[source])
            if not ids:
                return 0
            self.store.delete(ids)
            if (path := self._uploaded(source)) is not None:
                path.unlink(missing_ok=True)
            refresh_importance(self.store, self.ingestor.importance_sample)
            self._changed()
            return len(ids)

    # ---- helpers -----------------------------------------------------------------------------
    def _save(self, name: str, temp: Path, taken: set[str]) -> tuple[Path, bytes | None]:
        safe = safe_filename(name)
        if safe.lower() in taken:
            raise UploadRejected(f"another file in this upload is also stored as '{safe}'")
        size = temp.stat().st_size
        if size > self.max_bytes:
            raise UploadRejected(f"file is {_size(size)}, over the {_size(self.max_bytes)} upload limit")
        target = self.uploads_dir / safe
        if target.is_symlink() or target.resolve().parent != self.uploads_dir:
            raise UploadRejected(f"'{safe}' cannot be stored in the uploads folder")
        previous = target.read_bytes() if target.is_file() else None
        self._write(target, temp.read_bytes())
        taken.add(safe.lower())
        return target, previous

    def _write(self, target: Path, data: bytes) -> None:
        """Write through a temporary file and a rename, so a reader never sees half a file."""
        fd, tmp = tempfile.mkstemp(dir=self.uploads_dir, prefix=".upload-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    def _undo(self, path: Path, previous: bytes | None) -> None:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            self._write(path, previous)

    def _uploaded(self, source: str) -> Path | None:
        """The stored file of an uploaded document; None for anything outside the uploads folder."""
        if source.startswith(("http://", "https://")):
            return None
        path = Path(source)
        return path if path.parent == self.uploads_dir and path.name else None

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


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"
