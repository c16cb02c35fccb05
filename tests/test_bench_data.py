"""The benchmark question sets stay consistent with their documents: each set's validate.py passes
(answers found in the gold document, unanswerable questions answered by no document, the split as
make_split assigns it), and a set that brings its own articles in docs/ is ingested with the titles
its questions name. No model is loaded."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.data._docs import read_article
from bench.qa import load_set

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
EVALDATA = Path(os.environ.get("RAGBOT_EVALDATA", ROOT.parent / "shared" / "evaldata"))

needs_konlpy = pytest.mark.skipif(
    importlib.util.find_spec("konlpy") is None, reason="qa_ko reads its documents from the konlpy package"
)
needs_mrag = pytest.mark.skipif(
    not (EVALDATA / "mrag").is_dir(), reason="needs the MRAG articles under $RAGBOT_EVALDATA/mrag"
)


@pytest.mark.parametrize(
    "name",
    [
        "qa_ko_tech",
        pytest.param("qa_ko", marks=needs_konlpy),
        pytest.param("qa", marks=needs_mrag),
        pytest.param("qa_leads", marks=needs_mrag),
    ],
)
def test_question_set_passes_its_validator(name: str) -> None:
    run = subprocess.run(
        [sys.executable, str(DATA / name / "validate.py")], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith("OK")


def test_a_set_with_its_own_articles_is_loaded_from_its_docs_folder() -> None:
    docs, conversations = load_set("qa_ko_tech", "dev")
    assert len(docs) == 6
    assert all(d.source.startswith("qa-docs://qa_ko_tech/") and d.source.endswith(".md") for d in docs)
    titles = {d.title for d in docs}
    assert "트랜스포머 어텐션 메커니즘 복습" in titles
    assert not any(d.text.startswith("---") or "title:" in d.text for d in docs)  # front matter dropped
    assert len(conversations) == 20 and {c["split"] for c in conversations} == {"dev"}
    assert {g for c in conversations for t in c["turns"] for g in t["gold_titles"]} <= titles


def test_an_article_without_a_front_matter_title_is_refused(tmp_path: Path) -> None:
    untitled = tmp_path / "a.md"
    untitled.write_text("# 제목만 있는 글\n\n본문\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no front matter"):
        read_article(untitled)
    untitled.write_text("---\nauthor: 누군가\n---\n본문\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no title"):
        read_article(untitled)
