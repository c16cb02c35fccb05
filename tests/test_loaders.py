from pathlib import Path

import pytest

from retrieval.loaders import DocumentError, discover, load_document
from tests.pdf_maker import write_pdf


def test_markdown_title_and_text(tmp_path: Path) -> None:
    p = tmp_path / "a.md"
    p.write_text("# Heading One\n\nSome   body\r\ntext.\n\n\n\nMore.")
    doc = load_document(p)
    assert doc.title == "Heading One"
    assert doc.text == "# Heading One\n\nSome body\ntext.\n\nMore."
    assert doc.source == str(p.resolve())


def test_html_drops_scripts_and_styles(tmp_path: Path) -> None:
    p = tmp_path / "a.html"
    p.write_text(
        "<html><head><title>T</title><style>.x{}</style></head><body><p>Visible words</p>"
        "<script>alert('hidden')</script></body></html>"
    )
    doc = load_document(p)
    assert doc.title == "T"
    assert "Visible words" in doc.text
    assert "hidden" not in doc.text and ".x{}" not in doc.text


def test_valid_pdf_text_layer(tmp_path: Path) -> None:
    p = tmp_path / "ok.pdf"
    write_pdf(
        p,
        ["Photosynthesis converts light into chemical energy.", "Chlorophyll absorbs red light."],
        title="Plants",
    )
    doc = load_document(p)
    assert doc.title == "Plants"
    assert "Photosynthesis converts light" in doc.text and "Chlorophyll" in doc.text


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage", "malformed PDF"),
        ("notreally.pdf", b"this is not a pdf at all", "malformed PDF"),
        ("empty.md", b"   \n\n ", "no text could be extracted"),
        ("binary.txt", b"\x00\x01\x02binary", "binary file"),
        ("sheet.xlsx", b"PK\x03\x04", "unsupported file type"),
    ],
)
def test_bad_files_raise_clear_errors(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(DocumentError) as info:
        load_document(p)
    assert reason in str(info.value)
    assert name in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DocumentError, match="file not found"):
        load_document(tmp_path / "nope.md")


def test_discover_expands_directories_sorted(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ["b.md", "a.txt", "sub/c.html", "skip.bin"]:
        (tmp_path / name).write_text("x")
    assert [p.name for p in discover([tmp_path])] == ["a.txt", "b.md", "c.html"]
