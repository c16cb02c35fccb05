"""The documents panel's library over a real store and the real embedder: upload, list, delete, access."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.library import Library, UploadRejected, edit_access, safe_filename
from retrieval.ingest import Ingestor
from retrieval.store import VectorStore
from retrieval.types import FileStatus

CATS = "# Cats\n\nCats are small carnivorous mammals kept as pets. They purr when content."
CATS_V2 = CATS + "\n\nCats sleep for most of the day, often twelve to sixteen hours."


@pytest.fixture
def library(ingestor: Ingestor, tmp_path: Path) -> Library:
    return Library(ingestor, tmp_path / "data" / "uploads", max_bytes=2000)


def incoming(tmp_path: Path, name: str, text: str | bytes) -> Path:
    """A file as the browser's upload leaves it: somewhere temporary, under any name."""
    folder = tmp_path / "incoming"
    folder.mkdir(exist_ok=True)
    path = folder / f"tmp{len(list(folder.iterdir()))}"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("notes.md", "notes.md"),
        ("../../etc/cron.d/evil.md", "evil.md"),
        ("..\\..\\windows\\evil.txt", "evil.txt"),
        ("/etc/passwd.txt", "passwd.txt"),
        ("  ..hidden.md", "hidden.md"),
        ("Ré sumé (final).PDF", "Ré sumé _final_.pdf"),
        ("a\x00b\nc.md", "abc.md"),
        ("x" * 300 + ".html", "x" * 115 + ".html"),
    ],
)
def test_safe_filename_keeps_the_last_component_and_harmless_characters(name: str, stored: str) -> None:
    assert safe_filename(name) == stored


@pytest.mark.parametrize("name", ["..", ".md", "../.md", "passwd", "run.sh", "archive.tar.gz", ""])
def test_safe_filename_rejects_names_without_a_usable_stem_or_type(name: str) -> None:
    with pytest.raises(UploadRejected):
        safe_filename(name)


def test_upload_reports_added_unchanged_replaced_and_rejected(library: Library, tmp_path: Path) -> None:
    first = library.upload([("cats.md", incoming(tmp_path, "cats.md", CATS))])
    assert [(o.stored_as, o.status) for o in first] == [("cats.md", FileStatus.ADDED)]
    assert first[0].chunks == 1
    again = library.upload([("cats.md", incoming(tmp_path, "cats.md", CATS))])
    assert again[0].status is FileStatus.UNCHANGED
    changed = library.upload([("cats.md", incoming(tmp_path, "cats.md", CATS_V2))])
    assert changed[0].status is FileStatus.REPLACED
    batch = library.upload(
        [
            ("empty.txt", incoming(tmp_path, "e", "  \n ")),
            ("tool.exe", incoming(tmp_path, "t", b"MZ\x00\x00")),
            ("big.md", incoming(tmp_path, "b", "x" * 2001)),
            ("fake.pdf", incoming(tmp_path, "f", "not a pdf")),
            ("dogs.txt", incoming(tmp_path, "d", "Dogs bark at strangers and wag their tails.")),
        ]
    )
    assert [o.status for o in batch] == [FileStatus.REJECTED] * 4 + [FileStatus.ADDED]
    assert "no text could be extracted" in batch[0].reason
    assert "unsupported file type '.exe'" in batch[1].reason
    assert "over the 2.0 kB upload limit" in batch[2].reason
    assert "malformed PDF" in batch[3].reason
    assert sorted(p.name for p in library.uploads_dir.iterdir()) == ["cats.md", "dogs.txt"]


def test_stored_files_never_escape_the_uploads_folder(library: Library, tmp_path: Path) -> None:
    names = ["../../escape.md", "..\\..\\escape2.md", "/tmp/escape3.md", "sub/../../escape4.md"]
    outcomes = library.upload(
        [(n, incoming(tmp_path, n, f"# {i}\n\nText {i}.")) for i, n in enumerate(names)]
    )
    assert [o.stored_as for o in outcomes] == ["escape.md", "escape2.md", "escape3.md", "escape4.md"]
    assert all(o.status is FileStatus.ADDED for o in outcomes)
    everything = {p.relative_to(tmp_path) for p in tmp_path.rglob("escape*")}
    assert everything == {Path("data/uploads") / o.stored_as for o in outcomes}


def test_a_rejected_replacement_puts_the_previous_file_back(library: Library, tmp_path: Path) -> None:
    library.upload([("cats.md", incoming(tmp_path, "c", CATS))])
    broken = library.upload([("cats.md", incoming(tmp_path, "c2", b"\x00\x01binary"))])
    assert broken[0].status is FileStatus.REJECTED
    assert (library.uploads_dir / "cats.md").read_text() == CATS


def test_two_files_with_the_same_stored_name_in_one_upload(library: Library, tmp_path: Path) -> None:
    outcomes = library.upload(
        [
            ("a/notes.md", incoming(tmp_path, "1", "# One\n\nFirst.")),
            ("b/notes.md", incoming(tmp_path, "2", "# Two\n\nSecond.")),
        ]
    )
    assert [o.status for o in outcomes] == [FileStatus.ADDED, FileStatus.REJECTED]
    assert "also stored as 'notes.md'" in outcomes[1].reason


def test_documents_are_listed_with_chunk_counts_and_deleted_with_their_file(
    library: Library, ingestor: Ingestor, store: VectorStore, corpus: Path, tmp_path: Path
) -> None:
    ingestor.ingest_paths([corpus])  # as `ragbot ingest` would
    library.upload([("cats-extra.md", incoming(tmp_path, "c", CATS_V2))])
    docs = {d.name: d for d in library.documents()}
    assert len(docs) == 6
    assert docs["cats-extra.md"].uploaded
    assert not docs["volcano.md"].uploaded
    assert sum(d.chunks for d in docs.values()) == store.count()

    assert library.delete(docs["cats-extra.md"].source) == docs["cats-extra.md"].chunks
    assert not (library.uploads_dir / "cats-extra.md").exists()
    assert "cats-extra.md" not in {d.name for d in library.documents()}

    volcano = docs["volcano.md"]
    assert library.delete(volcano.source) == 1
    assert (corpus / "volcano.md").exists()  # an ingested (not uploaded) file is not touched on disk
    assert store.count() == 4


def test_deleting_an_unknown_source_touches_nothing(library: Library, tmp_path: Path) -> None:
    outside = tmp_path / "keep.md"
    outside.write_text("# Keep\n\nkeep")
    assert library.delete(str(outside)) == 0
    assert library.delete(str(library.uploads_dir / ".." / ".." / "keep.md")) == 0
    assert outside.exists()


def test_ingest_report_lists_each_file_with_its_outcome(ingestor: Ingestor, corpus: Path) -> None:
    (corpus / "broken.pdf").write_text("not a pdf")
    report = ingestor.ingest_paths([corpus])
    statuses = {Path(f.path).name: f.status for f in report.files}
    assert statuses["broken.pdf"] is FileStatus.REJECTED
    assert statuses["cats.md"] is FileStatus.ADDED
    again = ingestor.ingest_paths([corpus / "cats.md"])
    assert [(f.status, f.chunks) for f in again.files] == [(FileStatus.UNCHANGED, 1)]


def test_edit_access_needs_the_token_when_one_is_set() -> None:
    assert edit_access("s3cret", "s3cret", "10.1.2.3", {}).allowed
    assert not edit_access("s3cret", "", "127.0.0.1", {}).allowed
    assert not edit_access("s3cret", "wrong", "127.0.0.1", {}).allowed


def test_edit_access_without_a_token_is_for_direct_local_requests_only() -> None:
    assert edit_access(None, "", "127.0.0.1", {}).allowed
    assert edit_access(None, "", "::1", {}).allowed
    assert not edit_access(None, "", "192.168.1.20", {}).allowed
    assert not edit_access(None, "", None, {}).allowed
    assert not edit_access(None, "", "127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}).allowed
