"""The web chat's pieces that are not the browser: history, citation links, turn endings, lists."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from bot.chat import ChatService, TurnSettings
from bot.events import Answered, ErrorKind, Failed, Refused, Source
from bot.library import DocumentInfo, UploadOutcome
from bot.markdown import history_messages, link_citations
from bot.web import (
    build_ui,
    documents_table,
    end_section,
    end_text,
    example_questions,
    upload_table,
)
from guardrails.categories import Category
from guardrails.policy import Verdict
from retrieval.types import FileStatus

SOURCES = [
    Source(1, "Multi-Head RAG", "/x/mrag.md", "MRAG uses attention heads.", 0.9, "a", True),
    Source(2, "Qdrant", "https://qdrant.tech/docs", "Named vectors.", 0.5, "b", False),
]


def test_history_from_gradio_messages_turns_citation_links_back_into_markers() -> None:
    history = [
        {"role": "user", "content": "What is MRAG?"},
        {"role": "assistant", "content": link_citations("A retrieval method [1].", 1, {1})},
        {"role": "user", "content": [{"type": "text", "text": "And RRF?"}]},
        {"role": "assistant", "content": "Old style [2].\n\n**Sources**\n- **[2]** Qdrant"},
    ]
    msgs = history_messages(history)
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "What is MRAG?"),
        ("assistant", "A retrieval method [1]."),
        ("user", "And RRF?"),
        ("assistant", "Old style [2]."),
    ]


def test_only_markers_of_known_sources_become_links() -> None:
    assert link_citations("X [1]. Y [7].", 5, {1, 2}) == r"X [\[1\]](#cite-5-1). Y \[7\]."


def test_turn_endings_in_the_chat_bubble() -> None:
    answered = Answered("MRAG votes [1].", SOURCES, "q")
    assert end_text(answered, 3) == r"MRAG votes [\[1\]](#cite-3-1)."
    verdict = Verdict(True, Category.ILLEGAL, 0.95, stage="input")
    refused = end_text(Refused(verdict, "q"))
    assert refused.startswith("🛡️ ")
    assert "flagged as illegal activity" in refused
    withdrawn = end_text(Refused(Verdict(True, Category.HATE, 0.9, stage="output"), "q", retracted=True))
    assert withdrawn.startswith("🛡️ (The answer above was withdrawn.)")
    assert end_text(Failed(ErrorKind.STORE, "The document store is unavailable.")).startswith("⚠️ ")


def test_evidence_section_says_why_there_are_no_sources() -> None:
    verdict = Verdict(True, Category.HATE, 0.9, stage="output")
    html = end_section(4, "q", Refused(verdict, "q", retracted=True))
    assert "withdrawn by moderation (hate, harassment or violence)" in html
    assert "rb-src" not in html
    cited = end_section(2, "q", Answered("MRAG votes [1].", SOURCES, "q"))
    assert cited.index('id="rb-src-2-1"') < cited.index('id="rb-src-2-2"')
    assert 'href="https://qdrant.tech/docs"' in cited
    assert "<code>mrag.md</code>" in cited


def test_example_questions_come_from_titles() -> None:
    assert example_questions(["Cats", "Rockets", "Cats", "Tides"], limit=3) == [
        "What is Cats?",
        "Summarise Rockets.",
        "What is Tides?",
    ]
    assert example_questions([]) == []


def test_lists_escape_names_and_show_results() -> None:
    docs = documents_table([DocumentInfo("/d/uploads/<b>.md", "<b>Bold</b>", 3, 1.0)])
    assert "&lt;b&gt;Bold&lt;/b&gt;" in docs and "<b>Bold</b>" not in docs
    assert "1 documents, 3 chunks" in docs
    result = upload_table(
        [UploadOutcome("x.exe", "", FileStatus.REJECTED, reason="unsupported file type '.exe'")]
    )
    assert 'class="rb-rejected"' in result and "unsupported file type" in result


def test_ui_builds_as_blocks_without_a_library(tmp_path: Path) -> None:
    service = ChatService(retriever=None, generator=None, settings=TurnSettings())  # type: ignore[arg-type]
    assert isinstance(build_ui(service), gr.Blocks)
