"""Turn files on disk into plain-text Documents (Markdown, plain text, HTML, PDF).

Every failure becomes a DocumentError carrying the file name and the reason, so a batch ingest can
report it and carry on with the other files.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from retrieval.types import Document

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".text", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES
MAX_FILE_BYTES = 50 * 1024 * 1024
logging.getLogger("pypdf").setLevel(logging.ERROR)  # its recoverable-damage warnings would flood ingest logs


class DocumentError(ValueError):
    """A file that cannot be ingested; the message is meant for the user."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def discover(paths: list[Path]) -> list[Path]:
    """Expand directories into the supported files below them, sorted for a reproducible order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
            )
        else:
            found.append(path)
    return found


def load_document(path: Path) -> Document:
    """Load one file by its suffix; raise DocumentError with a readable reason on any problem."""
    if not path.exists():
        raise DocumentError(path, "file not found")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            path, f"unsupported file type '{suffix}' (supported: {', '.join(sorted(SUPPORTED_SUFFIXES))})"
        )
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DocumentError(
            path, f"file is {size / 1e6:.0f} MB, over the {MAX_FILE_BYTES / 1e6:.0f} MB limit"
        )
    if suffix in PDF_SUFFIXES:
        title, text = _read_pdf(path)
    else:
        raw = _read_text(path)
        title, text = _read_html(raw) if suffix in HTML_SUFFIXES else (_markdown_title(raw), raw)
    text = _normalise(text)
    if not text:
        raise DocumentError(
            path, "no text could be extracted (empty file, or a scanned PDF without a text layer)"
        )
    return Document(source=str(path.resolve()), title=title or path.stem, text=text)


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise DocumentError(path, "looks like a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _markdown_title(text: str) -> str:
    match = re.search(r"^#\s+(.+)$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def _read_html(raw: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "nav", "footer"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    if not title and (h1 := soup.find("h1")):
        title = h1.get_text(strip=True)
    body = soup.body or soup
    return title, body.get_text("\n")


def _read_pdf(path: Path) -> tuple[str, str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            raise DocumentError(path, "PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(path, f"malformed PDF ({type(exc).__name__}: {exc})") from exc
    return str(title), "\n\n".join(pages)


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r"\n\s*\n\s*\n+", "\n\n", text)
    return text.strip()
