"""Conversation memory for chat channels without their own history (Slack threads, Discord channels).

SQLite by default: one file under the data dir, survives restarts, safe across the server's threads.
Also records which webhook events were already handled, so a retried delivery is answered once, and
the feedback people give on answers (with the turn it is about), for `ragbot feedback --export`.

What webhooks leave behind is bounded: a conversation keeps its latest `max_messages` messages and
is forgotten after `idle_ttl_s` without a new one; an event id is forgotten after `event_ttl_s`
(a day: far past Slack's retries, about an hour, and Discord's 300 s signature window). Feedback is
kept until the operator exports it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bot.feedback import Feedback, Rating, TurnRecord
from generation.protocol import ChatMessage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    conversation TEXT NOT NULL, position INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL,
    created REAL NOT NULL, PRIMARY KEY (conversation, position));
CREATE TABLE IF NOT EXISTS events (event_id TEXT PRIMARY KEY, seen REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_seen ON events (seen);
CREATE TABLE IF NOT EXISTS feedback (
    turn_id TEXT PRIMARY KEY, rating TEXT, comment TEXT NOT NULL DEFAULT '', turn TEXT NOT NULL,
    updated REAL NOT NULL);
"""
DAY_S = 86_400.0
PRUNE_EVERY_S = 3_600.0  # how often old events and idle conversations are looked for


class ConversationStore:
    def __init__(
        self,
        path: Path | str = ":memory:",
        max_messages: int = 20,
        *,
        event_ttl_s: float = DAY_S,
        idle_ttl_s: float = 30 * DAY_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.max_messages = max_messages  # kept per conversation, and what `history` returns
        self.event_ttl_s = event_ttl_s
        self.idle_ttl_s = idle_ttl_s
        self._clock = clock
        self._pruned_at = self._clock()
        self.prune()

    def history(self, conversation: str) -> list[ChatMessage]:
        """The latest `max_messages` messages of a conversation, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT role, content FROM messages WHERE conversation = ? ORDER BY position DESC LIMIT ?",
                (conversation, self.max_messages),
            ).fetchall()
        return [ChatMessage(role=role, content=content) for role, content in reversed(rows)]

    def append(self, conversation: str, *messages: ChatMessage) -> None:
        """Add messages to a conversation; only its latest `max_messages` are kept."""
        self._prune_now_and_then()
        now = self._clock()
        with self._lock, self._db:
            (last,) = self._db.execute(
                "SELECT COALESCE(MAX(position), -1) FROM messages WHERE conversation = ?", (conversation,)
            ).fetchone()
            self._db.executemany(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
                [(conversation, last + n, m.role, m.content, now) for n, m in enumerate(messages, 1)],
            )
            self._db.execute(
                "DELETE FROM messages WHERE conversation = ? AND position <= ?",
                (conversation, last + len(messages) - self.max_messages),
            )

    def first_time(self, event_id: str) -> bool:
        """True once per event id (within `event_ttl_s`): webhook retries of a delivery already
        handled, and replays of a signed request, get False."""
        self._prune_now_and_then()
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO events VALUES (?, ?)", (event_id, self._clock()))
            return cursor.rowcount == 1

    def prune(self) -> None:
        """Forget event ids older than `event_ttl_s` and conversations idle for `idle_ttl_s`."""
        now = self._clock()
        with self._lock, self._db:
            self._db.execute("DELETE FROM events WHERE seen < ?", (now - self.event_ttl_s,))
            self._db.execute(
                "DELETE FROM messages WHERE conversation IN (SELECT conversation FROM messages "
                "GROUP BY conversation HAVING MAX(created) < ?)",
                (now - self.idle_ttl_s,),
            )
            self._pruned_at = now

    def _prune_now_and_then(self) -> None:
        if self._clock() - self._pruned_at >= PRUNE_EVERY_S:
            self.prune()

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
        """Closed under the lock: a webhook answer still being saved on another thread finishes first
        (closing an SQLite connection while another thread uses it crashes the process)."""
        with self._lock:
            self._db.close()
