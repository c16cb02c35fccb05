"""Accounts, knowledge bases, permissions, API keys, the audit log, kept chats, Slack and Discord
conversations, handled webhook events and feedback on answers, in one database.

    state = open_state("sqlite:///data/state.db")
    person = state.people.check_password("ada", "...")
    scope = state.access.readable(Principal.user(person))

SQLAlchemy with Alembic migrations (state/migrations/), run to the newest revision on open. The SQL
is portable: the default is an SQLite file, and a PostgreSQL URL works the same. This package knows
nothing of retrieval or the front doors; they ask it who someone is and what they may read.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from state.access import Access
from state.audit import Audit
from state.chats import Chats
from state.conversations import Conversations, Feedback
from state.db import Clock, Context, connect, migrate
from state.kbs import KnowledgeBases
from state.keys import ApiKeys
from state.people import People
from state.types import (
    ROLES,
    AlreadyExists,
    AnswerFeedback,
    ApiKeyInfo,
    AuditEvent,
    Chat,
    ChatInfo,
    Grant,
    GranteeKind,
    Imported,
    Invalid,
    KnowledgeBase,
    Message,
    NotFound,
    Person,
    Principal,
    Rating,
    Role,
    SourceRef,
    StateError,
    TurnRecord,
    allows,
    utcnow,
)

__all__ = [
    "ROLES",
    "AlreadyExists",
    "AnswerFeedback",
    "ApiKeyInfo",
    "AuditEvent",
    "Chat",
    "ChatInfo",
    "Grant",
    "GranteeKind",
    "Imported",
    "Invalid",
    "KnowledgeBase",
    "Message",
    "NotFound",
    "Person",
    "Principal",
    "Rating",
    "Role",
    "SourceRef",
    "State",
    "StateError",
    "TurnRecord",
    "allows",
    "open_state",
]


class State:
    """The parts, sharing one engine. Safe to share between threads: each call uses its own session."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        ctx = Context(sessionmaker(engine, expire_on_commit=False), clock)
        self.people = People(ctx)
        self.kbs = KnowledgeBases(ctx)
        self.keys = ApiKeys(ctx)
        self.audit = Audit(ctx)
        self.chats = Chats(ctx)
        self.access = Access(ctx)
        self.conversations = Conversations(ctx)
        self.feedback = Feedback(ctx)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_state(url: str, *, clock: Clock = utcnow) -> State:
    """The state at `url`, its schema migrated to the newest revision first."""
    engine = connect(url)
    migrate(engine)
    return State(engine, clock)
