"""The documents panel's library over a real store and the real embedder: upload, list, delete, access."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from bot.library import Libraries, Library, Reconciled, UploadRejected, kb_folder, safe_filename
from retrieval.ingest import Ingestor
from retrieval.store import PENDING, VectorStore
from retrieval.types import DEFAULT_KB, Document, FileStatus, Scope

CATS = "# Cats\n\nCats are small carnivorous mammals kept as pets. They purr when content."
CATS_V2 = CATS + "\n\nCats sleep for most of the day, often twelve to sixteen hours."
DOGS = "Dogs bark at strangers and wag their tails."
BIRDS = "# Birds\n\nSwallows migrate south in autumn and return to the same nests in spring."


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
            ("dogs.txt", incoming(tmp_path, "d", DOGS)),
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


def test_delete_marks_importance_stale_and_removes_the_file_before_the_chunks(
    library: Library, store: VectorStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete cut off after the file went: importance is recomputed and the chunks go at reconcile."""
    library.upload([("cats.md", incoming(tmp_path, "c", CATS)), ("dogs.txt", incoming(tmp_path, "d", DOGS))])
    source = str(library.uploads_dir / "cats.md")

    def crash(ids: Sequence[str]) -> None:
        raise OSError("killed mid-delete")

    with monkeypatch.context() as patch:
        patch.setattr(store, "delete", crash)
        with pytest.raises(OSError, match="killed mid-delete"):
            library.delete(source)
    assert store.kb_info(DEFAULT_KB).importance_stale is True  # type: ignore[union-attr]
    assert not (library.uploads_dir / "cats.md").exists()

    report = library.reconcile()
    assert (report.removed, report.importance_refreshed) == (("cats.md",), True)
    assert [d.name for d in library.documents()] == ["dogs.txt"]
    assert store.source_states([source], DEFAULT_KB)[source] == {}
    assert store.kb_info(DEFAULT_KB).importance_stale is False  # type: ignore[union-attr]


def test_reconcile_makes_uploads_and_the_store_agree(
    library: Library, ingestor: Ingestor, store: VectorStore, corpus: Path, tmp_path: Path
) -> None:
    ingestor.ingest_paths([corpus])  # as `ragbot ingest` would
    library.upload([("cats.md", incoming(tmp_path, "c", CATS)), ("dogs.txt", incoming(tmp_path, "d", DOGS))])
    uploads = library.uploads_dir
    old_cats = {
        c for c in store.source_states([str(uploads / "cats.md")], DEFAULT_KB)[str(uploads / "cats.md")]
    }
    # What crashes (and the earlier upload code) leave behind:
    (uploads / ".upload-k2j4x9").write_text("half a file")  # a temporary file
    (uploads / ".staging").mkdir()
    (uploads / ".staging" / "cats.md").write_text(CATS_V2)  # a re-upload cut off before its commit
    (uploads / "birds.md").write_text(BIRDS)  # a file whose ingest never ran
    (uploads / "broken.md").write_bytes(b"\x00\x01binary")  # ... and one that cannot be ingested
    (uploads / "dogs.txt").unlink()  # a delete cut off after the file went
    lost = Document(source=str(corpus / "lost.md"), title="Lost", text="Lighthouses warn ships off rocks.")
    chunks = ingestor.chunker.split(lost)  # a CLI ingest killed before its commit: pending chunks only
    texts = [c.text for c in chunks]
    sparse = [ingestor.bm25([]).encode_document(t) for t in texts]
    store.upsert(chunks, ingestor.embedder.embed(texts), sparse, [PENDING] * len(chunks))
    assert "Lost" not in {d.title for d in library.documents()}  # pending: never listed

    report = library.reconcile()
    assert report == Reconciled(
        completed=(),
        rolled_back=("cats.md",),
        repaired=("birds.md",),
        removed=("broken.md", "dogs.txt"),
        pending_removed=len(chunks),
        temp_files_removed=1,
        importance_refreshed=True,
    )
    assert sorted(p.name for p in uploads.iterdir()) == ["birds.md", "cats.md"]
    assert (uploads / "cats.md").read_text() == CATS
    assert (
        set(store.source_states([str(uploads / "cats.md")], DEFAULT_KB)[str(uploads / "cats.md")]) == old_cats
    )
    listed = {d.source: d for d in library.documents()}
    assert set(listed) == {str(p) for p in [*uploads.iterdir(), *corpus.resolve().iterdir()]}
    assert listed[str(uploads / "birds.md")].uploaded and listed[str(uploads / "birds.md")].chunks == 1
    assert sum(d.chunks for d in listed.values()) == store.count()  # nothing pending is left
    assert store.kb_info(DEFAULT_KB).importance_stale is False  # type: ignore[union-attr]
    assert not library.reconcile().changed


def test_a_library_sees_and_changes_only_its_own_knowledge_base(
    library: Library, ingestor: Ingestor, store: VectorStore, corpus: Path, tmp_path: Path
) -> None:
    other = Ingestor(ingestor.embedder, ingestor.chunker, store, progress=False, kb="other")
    other.ingest_paths([corpus])  # the same files, in another knowledge base
    theirs = set(store.ids(Scope.of("other")))
    stray = Document(source=str(corpus / "stray.md"), title="Stray", text="A kite caught in an oak tree.")
    chunks = other.chunker.split(stray, "other", store.kb_info("other").key)  # type: ignore[union-attr]
    texts = [c.text for c in chunks]
    sparse = [other.bm25([]).encode_document(t) for t in texts]
    store.upsert(
        chunks, ingestor.embedder.embed(texts), sparse, [PENDING] * len(chunks)
    )  # its ingest cut off

    assert library.documents() == []
    library.upload([("cats.md", incoming(tmp_path, "c", CATS))])
    assert [d.name for d in library.documents()] == ["cats.md"]
    assert library.delete(str(corpus.resolve() / "volcano.md")) == 0  # in 'other' only: not this library's
    assert not library.reconcile().pending_removed  # another knowledge base's pending chunks are left alone
    assert set(store.ids(Scope.of("other"))) == theirs | {c.id for c in chunks}


def test_each_knowledge_base_keeps_its_uploads_in_its_own_folder(ingestor: Ingestor, tmp_path: Path) -> None:
    uploads = (tmp_path / "data" / "uploads").resolve()
    libraries = Libraries(lambda kb: replace(ingestor, kb=kb), uploads, max_bytes=2000)
    assert (
        libraries.get(DEFAULT_KB).uploads_dir == uploads
    )  # where installs before knowledge bases keep theirs
    team = libraries.get("team")
    assert team.kb == "team" and team.uploads_dir.parent == uploads and libraries.get("team") is team
    folders = {kb_folder(uploads, name).name for name in ["team", "Team", "tëam", "../..", ".staging", "a/b"]}
    assert len(folders) == 6 and not any(f.startswith(".") or "/" in f or ".." in f for f in folders)
    team.upload([("cats.md", incoming(tmp_path, "c", CATS))])
    assert [d.name for d in team.documents()] == ["cats.md"] and (team.uploads_dir / "cats.md").is_file()
    assert libraries.get(DEFAULT_KB).documents() == [] and not (uploads / "cats.md").exists()


def test_reconcile_at_start_covers_every_knowledge_base_folder(
    ingestor: Ingestor, store: VectorStore, tmp_path: Path
) -> None:
    uploads = tmp_path / "data" / "uploads"
    libraries = Libraries(lambda kb: replace(ingestor, kb=kb), uploads, max_bytes=2000)
    team = libraries.get("team")
    team.upload([("cats.md", incoming(tmp_path, "c", CATS)), ("dogs.txt", incoming(tmp_path, "d", DOGS))])
    folder = team.uploads_dir
    # A crash in `team`: a re-upload cut off before its commit, a file never ingested, a delete cut off.
    (folder / ".staging").mkdir()
    (folder / ".staging" / "cats.md").write_text(CATS_V2)
    (folder / "birds.md").write_text(BIRDS)
    (folder / "dogs.txt").unlink()
    gone = kb_folder(uploads.resolve(), "gone")  # the folder of a knowledge base no longer known: left alone
    gone.mkdir()
    (gone / "orphan.md").write_text(BIRDS)

    fresh = Libraries(lambda kb: replace(ingestor, kb=kb), uploads, max_bytes=2000)  # the next start
    reports = fresh.reconcile(["team", "other"])
    assert set(reports) == {DEFAULT_KB, "team"}
    assert reports["team"].rolled_back == ("cats.md",) and reports["team"].repaired == ("birds.md",)
    assert reports["team"].removed == ("dogs.txt",)
    assert sorted(d.name for d in fresh.get("team").documents()) == ["birds.md", "cats.md"]
    assert {s.source for s in store.sources(Scope.of("team"))} == {
        str(folder / "birds.md"),
        str(folder / "cats.md"),
    }
    assert store.sources(Scope.of("gone")) == [] and (gone / "orphan.md").exists()
    assert not fresh.get("team").reconcile().changed


def test_a_renamed_knowledge_bases_documents_are_keyed_by_their_moved_files(
    ingestor: Ingestor, store: VectorStore, tmp_path: Path
) -> None:
    uploads = (tmp_path / "data" / "uploads").resolve()
    libraries = Libraries(lambda kb: replace(ingestor, kb=kb), uploads, max_bytes=2000)
    libraries.get("team").upload([("cats.md", incoming(tmp_path, "c", CATS))])
    store.rename_kb("team", "crew")  # as bot/kb_admin.py does: the chunks first, then the folder
    kb_folder(uploads, "team").rename(kb_folder(uploads, "crew"))
    report = libraries.moved("team", "crew")
    assert report is not None and report.moved == ("cats.md",) and report.repaired == ("cats.md",)
    crew = libraries.get("crew")
    [doc] = crew.documents()
    assert doc.source == str(kb_folder(uploads, "crew") / "cats.md") and doc.uploaded
    assert [s.source for s in store.sources(Scope.of("crew"))] == [doc.source]
    assert crew.delete(doc.source) == 1 and not (kb_folder(uploads, "crew") / "cats.md").exists()
