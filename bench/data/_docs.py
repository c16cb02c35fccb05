"""A QA set's own articles: the markdown files in its docs/ folder, each opening with front matter
that gives its title. Read the same way by bench/qa.py (to ingest them) and by the set's validate.py
(to check the questions against them), so both see the same title and text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FOLDER = "docs"


@dataclass(frozen=True)
class Article:
    file: str  # name inside docs/
    title: str  # the front matter's `title:`
    text: str  # the body after the front matter


def read_article(path: Path) -> Article:
    """One markdown file: `---`, `title: ...` (other keys ignored), `---`, then the body."""
    raw = path.read_text(encoding="utf-8")
    head, sep, body = raw.removeprefix("---\n").partition("\n---\n")
    if not raw.startswith("---\n") or not sep:
        raise ValueError(f"{path}: no front matter (--- ... ---) at the top")
    fields = dict(line.split(":", 1) for line in head.splitlines() if ":" in line)
    title = fields.get("title", "").strip()
    if not title:
        raise ValueError(f"{path}: front matter has no title")
    return Article(file=path.name, title=title, text=body.strip() + "\n")


def read_articles(set_folder: Path) -> list[Article]:
    """Every docs/*.md of a set, sorted by file name; [] when the set has no docs/ folder."""
    return [read_article(p) for p in sorted((set_folder / FOLDER).glob("*.md"))]
