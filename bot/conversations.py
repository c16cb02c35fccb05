"""Conversation memory for chat channels without their own history (Slack threads, Discord channels),
the webhook events already handled, and feedback on answers: the doors' view of the state database
(state/conversations.py keeps them).

Each webhook event id is answered once, so a retried delivery is acknowledged, not repeated. What
webhooks leave behind is bounded: a conversation keeps its latest `max_messages` messages and is
forgotten after `idle_ttl_s` without a new one; an event id is forgotten after `event_ttl_s` (a day:
far past Slack's retries, about an hour, and Discord's 300 s signature window). Feedback (with the
turn it is about, for `ragbot feedback --export`) is kept until the operator exports it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.feedback import Feedback, Rating, TurnRecord
from generation.protocol import ChatMessage
from state import Message, State, open_state

DAY_S = 86_400.0
PRUNE_EVERY_S = 3_600.0  # how often old events and idle conversations are looked for


class ConversationStore:
    """`ConversationStore(state)` keeps everything in that state database, which stays its owner's.
    A path (or nothing, for a throwaway one) opens an SQLite state database of its own there, closed
    with the store, on `clock` (epoch seconds). `import_from`: a conversations file from before the
    state database, imported once (state/conversations.py)."""

    def __init__(
        self,
        state: State | Path | str = ":memory:",
        max_messages: int = 20,
        *,
        event_ttl_s: float = DAY_S,
        idle_ttl_s: float = 30 * DAY_S,
        clock: Callable[[], float] | None = None,
        import_from: Path | None = None,
    ) -> None:
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        if isinstance(state, State):
            if clock is not None:
                raise TypeError("a State brings its own clock (open_state(url, clock=...))")
            self.state, self._owned = state, False
        else:
            url = self._sqlite_url(state)
            self.state, self._owned = open_state(url, clock=_utc(clock or time.time)), True
        self.max_messages = max_messages  # kept per conversation, and what `history` returns
        self.event_ttl_s = event_ttl_s
        self.idle_ttl_s = idle_ttl_s
        if import_from is not None:
            self.state.conversations.import_file(import_from)
        self.prune()

    def _sqlite_url(self, path: Path | str) -> str:
        if str(path) == ":memory:":
            # A file in a folder of its own rather than SQLite's :memory:, which would be one
            # database per connection, and the server answers on several threads.
            self._scratch = tempfile.TemporaryDirectory(prefix="ragbot-conversations-")
            path = Path(self._scratch.name) / "state.db"
        return f"sqlite:///{Path(path).as_posix()}"

    def _now(self) -> float:
        return self.state.clock().timestamp()

    def history(self, conversation: str) -> list[ChatMessage]:
        """The latest `max_messages` messages of a conversation, oldest first."""
        return [
            ChatMessage.model_validate(m, from_attributes=True)
            for m in self.state.conversations.history(conversation, self.max_messages)
        ]

    def append(self, conversation: str, *messages: ChatMessage) -> None:
        """Add messages to a conversation; only its latest `max_messages` are kept."""
        self._prune_now_and_then()
        kept = [Message(m.role, m.content) for m in messages]
        self.state.conversations.append(conversation, kept, keep=self.max_messages)

    def first_time(self, event_id: str) -> bool:
        """True once per event id (within `event_ttl_s`), even to deliveries racing on several
        threads or processes: webhook retries of a delivery already handled, and replays of a
        signed request, get False."""
        self._prune_now_and_then()
        return self.state.conversations.first_time(event_id)

    def prune(self) -> None:
        """Forget event ids older than `event_ttl_s` and conversations idle for `idle_ttl_s`."""
        self._pruned_at = self._now()
        self.state.conversations.prune(
            event_ttl=timedelta(seconds=self.event_ttl_s), idle_ttl=timedelta(seconds=self.idle_ttl_s)
        )

    def _prune_now_and_then(self) -> None:
        if self._now() - self._pruned_at >= PRUNE_EVERY_S:
            self.prune()

    def rate(self, turn: TurnRecord, rating: Rating | None) -> None:
        """Set (or, with None, take back) the thumb on a turn; a comment already given stays."""
        self.state.feedback.rate(turn.turn_id, turn.model_dump_json(), rating.value if rating else None)

    def comment(self, turn: TurnRecord, text: str) -> None:
        self.state.feedback.comment(turn.turn_id, turn.model_dump_json(), text.strip())

    def feedback(self) -> list[Feedback]:
        """Every turn with a thumb or a comment, oldest first."""
        return [
            Feedback(
                turn=TurnRecord.model_validate_json(f.turn),
                rating=Rating(f.rating) if f.rating else None,
                comment=f.comment,
                updated=f.updated_at.timestamp(),
            )
            for f in self.state.feedback.list()
        ]

    def close(self) -> None:
        """Close the database the store opened itself; a state passed in stays open for its owner.
        A webhook answer still being saved on another thread keeps its connection until it is done."""
        if self._owned:
            self.state.close()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None


def _utc(clock: Callable[[], float]) -> Callable[[], datetime]:
    return lambda: datetime.fromtimestamp(clock(), UTC)
