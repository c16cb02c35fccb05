"""Conversations of the chat channels without their own history (Slack threads, Discord channels),
the webhook deliveries already handled, and feedback on answers.

The caller sets the bounds (how many messages a conversation keeps, how long ids and idle
conversations last); this module keeps them with portable SQL, safe between threads and processes:
two deliveries of one event race on its primary key, so exactly one is the first.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from contextlib import closing, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from state.db import Context, once_more
from state.models import ConversationMessageRow, FeedbackRow, WebhookEventRow
from state.types import AnswerFeedback, Imported, Message, Rating

log = logging.getLogger(__name__)

OLD_TABLES = {"messages", "events", "feedback"}  # what a conversations file of before holds
APPEND_ATTEMPTS = 8  # appends racing on one conversation: each collision lets one of them through


class Conversations:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def history(self, conversation: str, limit: int) -> list[Message]:
        """The latest `limit` messages of a conversation, oldest first."""
        query = (
            select(ConversationMessageRow.role, ConversationMessageRow.content)
            .where(ConversationMessageRow.conversation == conversation)
            .order_by(ConversationMessageRow.position.desc())
            .limit(limit)
        )
        with self._ctx.sessions() as s:
            rows = s.execute(query).all()
        return [Message(role, content) for role, content in reversed(rows)]

    def append(self, conversation: str, messages: Sequence[Message], *, keep: int) -> None:
        """Add messages after the conversation's last; only its latest `keep` stay. Appends racing on
        one conversation collide on (conversation, position) (on SQLite they wait their turn
        instead): each collision lets one through, and the others run again after it."""
        m = ConversationMessageRow

        def work() -> None:
            with self._ctx.write() as s:
                last = s.scalar(
                    select(func.coalesce(func.max(m.position), -1)).where(m.conversation == conversation)
                )
                assert last is not None
                now = self._ctx.now()
                s.add_all(
                    m(
                        conversation=conversation,
                        position=last + n,
                        role=msg.role,
                        content=msg.content,
                        created_at=now,
                    )
                    for n, msg in enumerate(messages, 1)
                )
                s.flush()
                s.execute(
                    delete(m)
                    .where(m.conversation == conversation, m.position <= last + len(messages) - keep)
                    .execution_options(synchronize_session=False)
                )

        for attempt in range(APPEND_ATTEMPTS):
            try:
                work()
                return
            except IntegrityError:
                if attempt == APPEND_ATTEMPTS - 1:
                    raise

    def first_time(self, event_id: str) -> bool:
        """True for the first caller with this event id, False for every other (a webhook retry, a
        replayed request), however many race: the insert that meets the primary key loses."""
        try:
            with self._ctx.write() as s:
                s.execute(insert(WebhookEventRow).values(event_id=event_id, seen_at=self._ctx.now()))
        except IntegrityError:
            return False
        return True

    def prune(self, *, event_ttl: timedelta, idle_ttl: timedelta) -> None:
        """Forget event ids seen more than `event_ttl` ago and conversations idle for `idle_ttl`."""
        now = self._ctx.now()
        m = ConversationMessageRow
        idle = select(m.conversation).group_by(m.conversation).having(func.max(m.created_at) < now - idle_ttl)
        with self._ctx.write() as s:
            s.execute(
                delete(WebhookEventRow)
                .where(WebhookEventRow.seen_at < now - event_ttl)
                .execution_options(synchronize_session=False)
            )
            s.execute(delete(m).where(m.conversation.in_(idle)).execution_options(synchronize_session=False))

    def import_file(self, path: Path) -> Imported | None:
        """Bring over the SQLite conversations file kept before this database (history, event ids,
        feedback), then rename it `<name>.imported`; None when there is no such file. Rows already
        here are kept as they are, so an import cut off before the rename can run again."""
        if not path.is_file():
            return None
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as old:
            tables = {name for (name,) in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not OLD_TABLES.issubset(tables):
                log.warning("%s is not a conversations file from before; not imported", path)
                return None
            messages = old.execute(
                "SELECT conversation, position, role, content, created FROM messages"
            ).fetchall()
            events = old.execute("SELECT event_id, seen FROM events").fetchall()
            feedback = old.execute("SELECT turn_id, rating, comment, turn, updated FROM feedback").fetchall()

        def at(seconds: float) -> datetime:
            return datetime.fromtimestamp(seconds, UTC)

        with self._ctx.write() as s:
            m = ConversationMessageRow
            have_messages = {(c, p) for c, p in s.execute(select(m.conversation, m.position))}
            have_events = set(s.scalars(select(WebhookEventRow.event_id)))
            have_feedback = set(s.scalars(select(FeedbackRow.turn_id)))
            new_messages = [
                m(conversation=c, position=p, role=role, content=content, created_at=at(created))
                for c, p, role, content, created in messages
                if (c, p) not in have_messages
            ]
            new_events = [
                WebhookEventRow(event_id=e, seen_at=at(seen)) for e, seen in events if e not in have_events
            ]
            new_feedback = [
                FeedbackRow(turn_id=t, rating=rating, comment=comment, turn=turn, updated_at=at(updated))
                for t, rating, comment, turn, updated in feedback
                if t not in have_feedback
            ]
            s.add_all([*new_messages, *new_events, *new_feedback])
        imported = Imported(len(new_messages), len(new_events), len(new_feedback))
        with suppress(FileNotFoundError):  # another process starting at the same time renamed it first
            path.rename(path.with_name(path.name + ".imported"))
        log.info("imported %s from %s", imported, path)
        return imported


class Feedback:
    """A thumb and a comment per answer, with the answer as it was shown, until the operator exports them."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def rate(self, turn_id: str, turn: str, rating: Rating | None) -> None:
        """Set (or, with None, take back) the thumb on an answer; a comment already given stays."""
        self._upsert(turn_id, turn, rating=rating)

    def comment(self, turn_id: str, turn: str, text: str) -> None:
        """Set the comment on an answer; its thumb stays."""
        self._upsert(turn_id, turn, comment=text)

    def _upsert(self, turn_id: str, turn: str, **change: str | None) -> None:
        """One row per answer: the first feedback writes it with `turn`, later ones change it. Two
        first ones racing collide on the primary key, and the loser runs again as a change."""

        def work() -> None:
            with self._ctx.write() as s:
                row = s.get(FeedbackRow, turn_id, with_for_update=True)
                if row is None:
                    row = FeedbackRow(turn_id=turn_id, turn=turn, rating=None, comment="")
                    s.add(row)
                for column, value in change.items():
                    setattr(row, column, value)
                row.updated_at = self._ctx.now()

        once_more(work)

    def list(self) -> list[AnswerFeedback]:
        """Every answer with a thumb or a comment, oldest feedback first."""
        query = (
            select(FeedbackRow)
            .where(or_(FeedbackRow.rating.is_not(None), FeedbackRow.comment != ""))
            .order_by(FeedbackRow.updated_at, FeedbackRow.turn_id)
        )
        with self._ctx.sessions() as s:
            return [
                AnswerFeedback(r.turn_id, r.turn, _rating(r.rating), r.comment, r.updated_at)
                for r in s.scalars(query)
            ]


def _rating(value: str | None) -> Rating | None:
    if value is None:
        return None
    if value == "up":
        return "up"
    if value == "down":
        return "down"
    raise ValueError(f"unknown rating {value!r}")
