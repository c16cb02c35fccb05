import subprocess
import sys
from pathlib import Path

from bot.cli import build_parser, main, sample_corpus


def ragbot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONPATH": str(Path(__file__).parents[1])},
    )


def test_help_explains_commands(capsys) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for word in (
        "ingest",
        "query",
        "ask",
        "serve",
        "up",
        "QDRANT_URL",
        "Multi-Head RAG",
        "--vllm",
        "Moderation",
    ):
        assert word in out
    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "chunk size in embedder tokens" in sub["ingest"].format_help()


def test_sample_corpus_is_bundled() -> None:
    names = {p.name for p in sample_corpus().iterdir()}
    assert {"multi-head-rag.md", "sourdough.html"} <= names


def test_ingest_query_info_reset(tmp_path: Path, corpus: Path) -> None:
    (corpus / "bad.pdf").write_bytes(b"not a pdf")
    data = ["--data-dir", str(tmp_path / "data")]
    first = ragbot("ingest", str(corpus), *data, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "ingested 5 file(s) (0 unchanged)" in first.stdout
    assert "error:" in first.stderr and "bad.pdf: malformed PDF" in first.stderr
    assert "embedding" in first.stderr  # the progress bar
    again = ragbot("ingest", str(corpus), *data, cwd=tmp_path)
    assert "ingested 0 file(s) (5 unchanged): +0 / -0" in again.stdout

    q = ragbot("query", "What buried Pompeii?", "-k", "2", "--method", "mrag", *data, cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    assert q.stdout.splitlines()[0].startswith("[1]") and "Volcanoes" in q.stdout.splitlines()[0]

    info = ragbot("info", *data, cwd=tmp_path)
    assert "head importance:" in info.stdout and len(info.stdout.split("head importance:")[1].split()) == 12

    down = ragbot("ask", "What buried Pompeii?", "--vllm-url", "http://127.0.0.1:9", *data, cwd=tmp_path)
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert (
        "error: The language model is unavailable: The vLLM server at http://127.0.0.1:9 cannot connect"
        in (down.stderr)
    )
    bad = ragbot("ask", "hi", "--categories", "illegal,gambling", *data, cwd=tmp_path)
    assert bad.returncode == 2 and "Unknown moderation category 'gambling'" in bad.stderr

    assert ragbot("reset", *data, cwd=tmp_path).returncode == 0
    gone = ragbot("query", "anything", *data, cwd=tmp_path)
    assert gone.returncode == 1 and "run `ragbot ingest PATH` first" in gone.stderr


def test_unreachable_qdrant_server_is_a_clear_cli_error(tmp_path: Path) -> None:
    res = ragbot("info", "--qdrant-url", "http://127.0.0.1:9", cwd=tmp_path)
    assert res.returncode == 2
    assert "error: Cannot reach Qdrant at http://127.0.0.1:9" in res.stderr and "Traceback" not in res.stderr


def test_help_info_and_reset_start_without_torch(tmp_path: Path) -> None:
    """Commands that embed nothing do not import torch and transformers (~6 s here): `ragbot --help`
    answers in under a second."""
    code = (
        "import sys; from bot.cli import main; "
        f"main(['info', '--data-dir', {str(tmp_path)!r}]); main(['reset', '--data-dir', {str(tmp_path)!r}]); "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[1])  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "[]"


def test_knowledge_bases_from_the_command_line(tmp_path: Path, corpus: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    hr = tmp_path / "hr"
    hr.mkdir()
    (hr / "leave.md").write_text("# Leave\n\nEvery employee has twenty-five days of paid leave a year.")
    assert ragbot("ingest", str(corpus), *data, cwd=tmp_path).returncode == 0
    into = ragbot("ingest", "--kb", "hr", str(hr), *data, cwd=tmp_path)
    assert into.returncode == 0, into.stderr
    assert "1 chunks in knowledge base 'hr'" in into.stdout

    listed = ragbot("kb", "list", *data, cwd=tmp_path)
    assert listed.stdout.splitlines() == [
        "default\t5 chunks\t5 documents\tpublic",
        "hr\t1 chunks\t1 documents\tprivate",  # a new knowledge base is read by grants only
    ]
    q = ragbot("query", "How many days of paid leave?", "-k", "5", *data, cwd=tmp_path)
    assert q.returncode == 0 and "Leave" in q.stdout  # the operator at the terminal reads all
    narrowed = ragbot(
        "query", "How many days of paid leave?", "--kb", "default", "-k", "5", *data, cwd=tmp_path
    )
    assert narrowed.returncode == 0 and "Leave" not in narrowed.stdout

    assert ragbot("kb", "rename", "hr", "people", *data, cwd=tmp_path).returncode == 0
    taken = ragbot("kb", "rename", "people", "default", *data, cwd=tmp_path)
    assert taken.returncode == 1 and "already exists" in taken.stderr
    gone = ragbot("kb", "delete", "people", *data, cwd=tmp_path)
    assert gone.returncode == 0 and "(1 chunks)" in gone.stdout
    assert ragbot("kb", "list", *data, cwd=tmp_path).stdout.splitlines() == [
        "default\t5 chunks\t5 documents\tpublic"
    ]
    missing = ragbot("kb", "delete", "people", *data, cwd=tmp_path)
    assert missing.returncode == 1 and "no knowledge base 'people'" in missing.stderr
