"""Feedback: stored with its turn in the state database, given from the widget, exported by the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.app import AppDeps, create_app
from bot.chat import ChatService, TurnSettings
from bot.cli import main
from bot.config import Settings
from bot.conversations import ConversationStore
from bot.events import Answered, Refused, Source, TurnTimings
from bot.feedback import Rating, TurnRecord
from guardrails.categories import Category
from guardrails.policy import Verdict
from retrieval.ingest import Ingestor
from retrieval.retriever import RetrievalSettings, Retriever
from retrieval.store import VectorStore
from state import open_state
from tests.generators import ScriptedGenerator

ANSWER = "Mount Vesuvius buried Pompeii in 79 [1]."


def answered_turn() -> TurnRecord:
    sources = [Source(1, "Volcanoes", "/d/volcano.md", "Vesuvius buried Pompeii.", 0.03, "c1", True)]
    end = Answered(ANSWER, sources, "What buried Pompeii?", TurnTimings(0.1, 0.2, 2, 0.5, 1.5))
    return TurnRecord.from_end("web", "What buried it?", end)


def test_a_turn_record_keeps_what_was_shown() -> None:
    turn = answered_turn()
    assert (turn.question, turn.standalone_question, turn.outcome) == (
        "What buried it?",
        "What buried Pompeii?",
        "answered",
    )
    assert turn.sources[0].cited and turn.sources[0].text == "Vesuvius buried Pompeii."
    assert turn.timings is not None and turn.timings.total_s == 1.5
    verdict = Verdict(True, Category.HATE, 0.9, stage="output")
    refused = TurnRecord.from_end("web", "q", Refused(verdict, "q", retracted=True))
    assert refused.outcome == "refused"
    assert refused.answer.startswith("(The answer above was withdrawn.)")
    assert refused.verdict is not None
    assert (refused.verdict.category, refused.verdict.stage, refused.verdict.retracted) == (
        "hate",
        "output",
        True,
    )


def test_rating_and_comment_are_one_row_per_turn_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    store = ConversationStore(path)
    turn = answered_turn()
    store.rate(turn, Rating.DOWN)
    store.comment(turn, "  The year is right, the cause is not.  ")
    store.rate(turn, Rating.UP)
    store.close()
    rows = ConversationStore(path).feedback()
    assert len(rows) == 1
    assert rows[0].rating is Rating.UP
    assert rows[0].comment == "The year is right, the cause is not."
    assert rows[0].turn == turn


def test_a_thumb_taken_back_without_a_comment_is_not_exported(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite")
    turn = answered_turn()
    store.rate(turn, Rating.UP)
    store.rate(turn, None)
    assert store.feedback() == []


def test_cli_exports_feedback_as_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open_state(Settings(data_dir=tmp_path).state_db_url) as state:
        store = ConversationStore(state)
        store.rate(answered_turn(), Rating.UP)
        second = answered_turn()
        store.rate(second, Rating.DOWN)
        store.comment(second, "wrong source")
    assert main(["feedback", "--data-dir", str(tmp_path)]) == 0
    assert "2 answers with feedback: 1 👍, 1 👎, 1 with comments" in capsys.readouterr().out
    out = tmp_path / "export" / "feedback.jsonl"
    assert main(["feedback", "--export", str(out), "--data-dir", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["rating"] for r in rows] == ["up", "down"]
    assert rows[1]["comment"] == "wrong source"
    assert rows[1]["turn"]["answer"] == ANSWER
    assert rows[1]["turn"]["sources"][0]["title"] == "Volcanoes"


@pytest.fixture
def widget(ingestor: Ingestor, store: VectorStore, corpus: Path, tmp_path: Path) -> Iterator[TestClient]:
    ingestor.ingest_paths([corpus])
    settings = Settings(data_dir=tmp_path, widget_tokens="docs.example=site-token-1,other.example=t2")
    service = ChatService(
        Retriever(ingestor.embedder, store),
        ScriptedGenerator([ANSWER] * 5),
        TurnSettings(RetrievalSettings(k=2)),
    )
    with open_state(settings.state_db_url) as state:
        conversations = ConversationStore(state)
        with TestClient(
            create_app(AppDeps(settings, service, conversations, lambda: {}), with_ui=False),
            base_url="http://localhost",
        ) as client:
            yield client


def test_widget_answers_carry_passages_highlights_and_a_turn_id_for_feedback(
    widget: TestClient, tmp_path: Path
) -> None:
    r = widget.post("/widget/chat", json={"token": "site-token-1", "message": "What buried Pompeii?"})
    last = json.loads(r.text.splitlines()[-1])
    first = last["sources"][0]
    assert first["title"] == "Volcanoes" and first["cited"]
    assert "Mount Vesuvius buried Pompeii in the year 79." in first["text"]
    (start, end), *_ = first["highlights"]
    assert first["text"][start:end] == "Mount Vesuvius buried Pompeii in the year 79."

    turn_id = last["turn_id"]
    assert (
        widget.post(
            "/widget/feedback", json={"token": "nope", "turn_id": turn_id, "rating": "up"}
        ).status_code
        == 403
    )
    other_site = widget.post("/widget/feedback", json={"token": "t2", "turn_id": turn_id, "rating": "up"})
    assert other_site.status_code == 404
    assert (
        widget.post(
            "/widget/feedback", json={"token": "site-token-1", "turn_id": "x", "rating": "up"}
        ).status_code
        == 404
    )
    ok = widget.post("/widget/feedback", json={"token": "site-token-1", "turn_id": turn_id, "rating": "down"})
    assert ok.status_code == 200
    widget.post(
        "/widget/feedback", json={"token": "site-token-1", "turn_id": turn_id, "comment": "Too short."}
    )
    with open_state(Settings(data_dir=tmp_path).state_db_url) as state:
        (row,) = ConversationStore(state).feedback()
    assert (row.rating, row.comment) == (Rating.DOWN, "Too short.")
    assert row.turn.channel == "widget:docs.example"
    assert row.turn.answer == ANSWER
