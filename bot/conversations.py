"""Conversation memory for chat channels without their own history (Slack threads, Discord channels).

SQLite by default: one file under the data dir, survives restarts, safe across the server's threads.
Also records which webhook events were already handled, so a retried delivery is answered once, and
the feedback people give on answers (with the turn it is about), for `ragbot feedback --export`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from bot.feedback import Feedback, Rating, TurnRecord
from generation.protocol import ChatMessage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    conversation TEXT NOT NULL, position INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (conversation, position));
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    turn_id TEXT PRIMARY KEY, rating TEXT, comment TEXT NOT NULL DEFAULT '', turn TEXT NOT NULL,
    updated REAL NOT NULL);
"""


class ConversationStore:
    def __init__(self, path: Path | str = ":memory:", max_messages: int = 20) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.max_messages = max_messages

    def history(self, conversation: str) -> list[ChatMessage]:
        """The latest `max_messages` messages of a conversation, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT role, content FROM messages WHERE conversation = ? ORDER BY position DESC LIMIT ?",
                (conversation, self.max_messages),
            ).fetchall()
        return [ChatMessage(role=role, content=content) for role, content in reversed(rows)]

    def append(self, conversation: str, *messages: ChatMessage) -> None:
        with self._lock, self._db:
            (last,) = self._db.execute(
                "SELECT COALESCE(MAX(position), -1) FROM messages WHERE conversation = ?", (conversation,)
            ).fetchone()
            self._db.executemany(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
                [(conversation, last + n, m.role, m.content, time.time()) for n, m in enumerate(messages, 1)],
            )

    def first_time(self, event_id: str) -> bool:
        """True once per event id: webhook retries of a delivery already handled get False."""
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO events VALUES (?, ?)", (event_id, time.time()))
            return cursor.rowcount == 1

    def rate(self, turn: TurnRecord, rating: Rating | None) -> None:
        """Set (or, with None, take back) the thumb on a turn; a comment already given stays."""
        self._upsert(turn, "rating", rating.value if rating else None)

    def comment(self, turn: TurnRecord, text: str) -> None:
        self._upsert(turn, "comment", text.strip())

    def _upsert(self, turn: TurnRecord, column: str, value: str | None) -> None:
        assert column in ("rating", "comment")
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO feedback (turn_id, turn, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(turn_id) DO UPDATE SET updated = excluded.updated",
                (turn.turn_id, turn.model_dump_json(), time.time()),
            )
            self._db.execute(f"UPDATE feedback SET {column} = ? WHERE turn_id = ?", (value, turn.turn_id))

    def feedback(self) -> list[Feedback]:
        """Every turn with a thumb or a comment, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT turn, rating, comment, updated FROM feedback "
                "WHERE rating IS NOT NULL OR comment != '' ORDER BY updated"
            ).fetchall()
        return [
            Feedback(
                turn=TurnRecord.model_validate_json(turn), rating=rating, comment=comment, updated=updated
            )
            for turn, rating, comment, updated in rows
        ]

    def close(self) -> None:
        self._db.close()
