"""What the conversation store keeps in the state database over time (bounded history, forgotten event
ids and idle conversations), webhook de-duplication and feedback under concurrent requests, and the
one-time import of the conversations file kept before the state database. Each test runs on an
SQLite file and on PostgreSQL where one can be started (tests/postgres.py)."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Barrier
from typing import TypeVar

import pytest
from sqlalchemy import text

from bot.app import build_app
from bot.cli import main
from bot.config import Settings
from bot.conversations import ConversationStore
from bot.factory import Components
from bot.feedback import Rating, TurnRecord
from generation.protocol import ChatMessage
from retrieval.embedder import MultiHeadEmbedder
from retrieval.store import VectorStore
from state import Imported, State, open_state
from tests.state_db import Clock

DAY = timedelta(days=1)
T = TypeVar("T")


def rows(state: State, table: str) -> int:
    """Count what a table holds, read through a connection of its own."""
    with state.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def exchange(n: int) -> tuple[ChatMessage, ChatMessage]:
    return ChatMessage(role="user", content=f"q{n}"), ChatMessage(role="assistant", content=f"a{n}")


def turn(answer: str = "Vesuvius [1].") -> TurnRecord:
    return TurnRecord(channel="web", question="What buried Pompeii?", outcome="answered", answer=answer)


def together(n: int, work: Callable[[int], T]) -> list[T]:
    """`work(0..n-1)` on n threads released at the same moment."""
    start = Barrier(n)

    def run(i: int) -> T:
        start.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


# Webhook event ids


def test_event_ids_are_remembered_for_a_day(state: State, clock: Clock) -> None:
    store = ConversationStore(state)
    assert store.first_time("slack:Ev1")
    clock.now += DAY - timedelta(minutes=1)
    assert not store.first_time("slack:Ev1")


def test_event_ids_older_than_a_day_are_deleted(state: State, clock: Clock) -> None:
    store = ConversationStore(state)
    for n in range(50):
        store.first_time(f"slack:Ev{n}")
    clock.now += DAY + timedelta(hours=1)
    store.first_time("discord:I1")  # any new delivery sweeps the old ones out
    assert rows(state, "webhook_events") == 1
    assert store.first_time("slack:Ev1")


def test_one_of_many_deliveries_of_an_event_racing_on_threads_and_processes_is_first(url: str) -> None:
    """Slack retries and a second web process: two stores on one database, eight threads at once."""
    with open_state(url) as one, open_state(url) as two:
        stores = [ConversationStore(one), ConversationStore(two)]
        for attempt in range(3):
            firsts = together(8, lambda i, a=attempt: stores[i % 2].first_time(f"slack:Ev{a}"))
            assert sorted(firsts) == [False] * 7 + [True]
        assert rows(one, "webhook_events") == 3


# Conversation history


def test_a_conversation_keeps_only_its_latest_messages(state: State) -> None:
    store = ConversationStore(state, max_messages=4)
    for n in range(10):
        store.append("slack:C1:1", *exchange(n))
    assert rows(state, "conversation_messages") == 4
    assert [m.content for m in store.history("slack:C1:1")] == ["q8", "a8", "q9", "a9"]
    assert store.history("slack:C1:2") == []


def test_messages_appended_at_once_to_one_conversation_are_all_kept_in_turn(state: State) -> None:
    store = ConversationStore(state, max_messages=100)
    together(6, lambda i: store.append("discord:CH1", *exchange(i)))
    contents = [m.content for m in store.history("discord:CH1")]
    assert sorted(contents) == sorted(f"{x}{i}" for i in range(6) for x in "qa")
    assert all(contents.index(f"a{i}") == contents.index(f"q{i}") + 1 for i in range(6))


def test_idle_conversations_are_deleted_and_active_ones_kept(state: State, clock: Clock) -> None:
    store = ConversationStore(state, idle_ttl_s=30 * DAY.total_seconds())
    store.append("slack:C1:old", *exchange(1))
    clock.now += 20 * DAY
    store.append("slack:C1:recent", *exchange(2))
    clock.now += 11 * DAY  # the old thread idle for 31 days, the recent one for 11
    store.first_time("slack:Ev1")
    assert store.history("slack:C1:old") == []
    assert [m.content for m in store.history("slack:C1:recent")] == ["q2", "a2"]
    assert rows(state, "conversation_messages") == 2


def test_a_store_reopened_after_a_long_pause_prunes_at_once(url: str, clock: Clock) -> None:
    with open_state(url, clock=clock) as state:
        store = ConversationStore(state)
        store.append("discord:CH1", *exchange(1))
        store.first_time("discord:I1")
        store.close()
    clock.now += 60 * DAY
    with open_state(url, clock=clock) as state:
        ConversationStore(state).close()
        assert rows(state, "conversation_messages") == 0
        assert rows(state, "webhook_events") == 0


def test_closing_a_store_leaves_the_state_it_was_given_open(state: State) -> None:
    store = ConversationStore(state)
    store.append("slack:C1:1", *exchange(1))
    store.close()
    assert [m.content for m in ConversationStore(state).history("slack:C1:1")] == ["q1", "a1"]


# Feedback


def test_rating_and_comment_are_one_row_per_turn(state: State) -> None:
    store = ConversationStore(state)
    answer = turn()
    store.rate(answer, Rating.DOWN)
    store.comment(answer, "  The year is right, the cause is not.  ")
    store.rate(answer, Rating.UP)
    (row,) = ConversationStore(state).feedback()
    assert (row.rating, row.comment, row.turn) == (Rating.UP, "The year is right, the cause is not.", answer)
    store.rate(answer, None)  # the thumb taken back, the comment stays
    (row,) = store.feedback()
    assert (row.rating, row.comment) == (None, "The year is right, the cause is not.")


def test_feedback_given_at_once_on_one_turn_is_one_row(state: State) -> None:
    store = ConversationStore(state)
    answer = turn()
    together(6, lambda i: store.rate(answer, Rating.UP) if i % 2 else store.comment(answer, "why 79?"))
    (row,) = store.feedback()
    assert (row.rating, row.comment, row.turn) == (Rating.UP, "why 79?", answer)
    assert rows(state, "answer_feedback") == 1


def test_feedback_is_exported_oldest_first(state: State, clock: Clock) -> None:
    store = ConversationStore(state)
    first, second = turn("one"), turn("two")
    store.rate(first, Rating.UP)
    clock.now += timedelta(seconds=1)
    store.rate(second, Rating.DOWN)
    clock.now += timedelta(seconds=1)
    store.comment(first, "edited later")
    assert [f.turn.answer for f in store.feedback()] == ["two", "one"]
    assert [f.updated for f in store.feedback()] == [
        (clock.now - timedelta(seconds=1)).timestamp(),
        clock.now.timestamp(),
    ]


# The conversations file from before the state database

OLD_SCHEMA = """
CREATE TABLE messages (
    conversation TEXT NOT NULL, position INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (conversation, position));
CREATE TABLE events (event_id TEXT PRIMARY KEY, seen REAL NOT NULL);
CREATE INDEX events_seen ON events (seen);
CREATE TABLE feedback (
    turn_id TEXT PRIMARY KEY, rating TEXT, comment TEXT NOT NULL DEFAULT '', turn TEXT NOT NULL,
    updated REAL NOT NULL);
"""


def old_conversations_file(path: Path, now: datetime, answer: TurnRecord) -> Path:
    """A conversations.sqlite as the store wrote it before the state database, in WAL mode."""
    t = now.timestamp()
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(OLD_SCHEMA)
        db.executemany(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
            [("slack:C1:1", 7, "user", "hi", t - 60), ("slack:C1:1", 8, "assistant", "hello", t - 60)],
        )
        db.execute("INSERT INTO events VALUES (?, ?)", ("slack:Ev9", t - 600))
        db.execute(
            "INSERT INTO feedback VALUES (?, ?, ?, ?, ?)",
            (answer.turn_id, "down", "wrong year", answer.model_dump_json(), t - 30),
        )
    return path


def test_the_conversations_file_from_before_is_imported_once_and_renamed(
    state: State, clock: Clock, tmp_path: Path
) -> None:
    answer = turn()
    old = old_conversations_file(tmp_path / "conversations.sqlite", clock.now, answer)
    store = ConversationStore(state, import_from=old)
    assert not old.exists() and (tmp_path / "conversations.sqlite.imported").is_file()
    assert [(m.role, m.content) for m in store.history("slack:C1:1")] == [
        ("user", "hi"),
        ("assistant", "hello"),
    ]
    assert not store.first_time("slack:Ev9")  # a retry of an event handled before the upgrade
    (row,) = store.feedback()
    assert (row.rating, row.comment, row.turn) == (Rating.DOWN, "wrong year", answer)
    assert row.updated == pytest.approx(clock.now.timestamp() - 30)
    store.append("slack:C1:1", *exchange(1))  # the conversation goes on after its old messages
    assert [m.content for m in store.history("slack:C1:1")] == ["hi", "hello", "q1", "a1"]

    ConversationStore(state, import_from=old)  # later starts find nothing to import
    assert rows(state, "conversation_messages") == 4


def test_an_import_cut_off_before_the_rename_runs_again_without_duplicates(
    state: State, clock: Clock, tmp_path: Path
) -> None:
    old = old_conversations_file(tmp_path / "conversations.sqlite", clock.now, turn())
    assert state.conversations.import_file(old) == Imported(messages=2, events=1, feedback=1)
    shutil.copy(tmp_path / "conversations.sqlite.imported", old)
    assert state.conversations.import_file(old) == Imported(messages=0, events=0, feedback=0)
    assert (rows(state, "conversation_messages"), rows(state, "webhook_events")) == (2, 1)
    assert rows(state, "answer_feedback") == 1


def test_a_file_that_is_not_an_old_conversations_file_is_left_alone(state: State, tmp_path: Path) -> None:
    other = tmp_path / "conversations.sqlite"
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE unrelated (x INTEGER)")
    assert state.conversations.import_file(other) is None
    assert other.is_file()
    assert state.conversations.import_file(tmp_path / "missing.sqlite") is None


def test_feedback_export_imports_the_old_file_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path)
    old_conversations_file(settings.conversations_path, datetime.now(UTC), turn())
    assert main(["feedback", "--data-dir", str(tmp_path)]) == 0
    assert "1 answers with feedback: 0 👍, 1 👎, 1 with comments" in capsys.readouterr().out
    assert not settings.conversations_path.exists()
    with open_state(settings.state_db_url) as state:
        assert rows(state, "conversation_messages") == 2


def test_the_served_app_keeps_conversations_in_the_state_database_and_imports_the_old_file(
    tmp_path: Path, embedder: MultiHeadEmbedder, store: VectorStore
) -> None:
    settings = Settings(data_dir=tmp_path, vllm_url="http://127.0.0.1:9")
    answer = turn()
    old_conversations_file(settings.conversations_path, datetime.now(UTC), answer)
    parts = Components(settings)
    parts.__dict__.update(embedder=embedder, store=store)
    build_app(parts)
    assert settings.conversations_path.with_name("conversations.sqlite.imported").is_file()
    assert [f.turn_id for f in parts.state.feedback.list()] == [answer.turn_id]
    assert not parts.state.conversations.first_time("slack:Ev9")
    parts.state.close()


# The path form, for tests and scripts that want a store of their own


def test_a_store_opened_on_a_path_is_an_sqlite_state_database_that_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    store = ConversationStore(path)
    store.append("slack:C1:1", *exchange(1))
    store.close()
    with open_state(f"sqlite:///{path}") as state:
        assert [m.content for m in ConversationStore(state).history("slack:C1:1")] == ["q1", "a1"]


def test_a_throwaway_store_is_shared_by_threads_and_removed_on_close() -> None:
    store = ConversationStore()
    together(4, lambda i: store.append(f"c{i}", *exchange(i)))
    assert [m.content for m in store.history("c3")] == ["q3", "a3"]
    url = store.state.engine.url.database
    store.close()
    assert url is not None and not Path(url).exists()
