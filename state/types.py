"""What crosses the state package's boundary: frozen dataclasses, never ORM rows or dicts.

Rows stay inside their sessions; callers get values they can keep, compare and pass to other
packages without a database connection behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, get_args

Role = Literal["read", "edit", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)  # in order: each includes the ones before it

GranteeKind = Literal["user", "group", "widget", "api_key", "slack", "discord"]
GRANTEE_KINDS: tuple[GranteeKind, ...] = get_args(GranteeKind)

PrincipalKind = Literal["anonymous", "user", "widget", "api_key", "slack", "discord", "cli"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def allows(role: Role | None, needed: Role) -> bool:
    """Whether `role` includes `needed` (admin includes edit includes read)."""
    return role is not None and ROLES.index(role) >= ROLES.index(needed)


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    email: str | None
    groups: frozenset[str]
    admin: bool


@dataclass(frozen=True)
class Principal:
    """Whoever is asking: a signed-in person, an anonymous visitor, a widget site, an API key,
    a Slack or Discord channel, or the operator at the command line."""

    kind: PrincipalKind
    id: str
    groups: frozenset[str] = frozenset()
    admin: bool = False

    @classmethod
    def anonymous(cls) -> Principal:
        return cls("anonymous", "")

    @classmethod
    def user(cls, person: Person) -> Principal:
        return cls("user", str(person.id), person.groups, person.admin)

    @classmethod
    def widget(cls, site: str) -> Principal:
        return cls("widget", site)

    @classmethod
    def api_key(cls, key_id: int) -> Principal:
        return cls("api_key", str(key_id))

    @classmethod
    def slack(cls, team: str, channel: str) -> Principal:
        return cls("slack", f"{team}/{channel}")

    @classmethod
    def discord(cls, guild: str, channel: str) -> Principal:
        return cls("discord", f"{guild}/{channel}")

    @classmethod
    def cli(cls, user: str = "operator") -> Principal:
        """The operator at the shell: whoever can run `ragbot` on the host already owns its data."""
        return cls("cli", user, admin=True)

    @property
    def label(self) -> str:
        """How the audit log names this principal as an actor: `user:3`, `slack:T1/C2`, `anonymous`."""
        return self.kind if self.kind == "anonymous" else f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class KnowledgeBase:
    name: str
    public: bool
    created_at: datetime


@dataclass(frozen=True)
class Grant:
    kb: str
    grantee_kind: GranteeKind
    grantee_id: str
    role: Role
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as listed: never its secret, which exists only in `keys.create`'s return value."""

    id: int
    name: str
    kbs: frozenset[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by: str | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True)
class AuditEvent:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


@dataclass(frozen=True)
class SourceRef:
    """A source an answer was given with, as kept in a chat (enough to show and find it again)."""

    file: str
    kb: str
    title: str


@dataclass(frozen=True)
class TurnRecord:
    question: str
    standalone: str
    answer: str
    sources: list[SourceRef] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class ChatInfo:
    id: int
    title: str
    created_at: datetime
    updated_at: datetime
    turns: int


@dataclass(frozen=True)
class Chat:
    info: ChatInfo
    turns: list[TurnRecord]


class StateError(Exception):
    """A request the state cannot carry out; the message says why, for the person who asked."""


class NotFound(StateError, LookupError):
    pass


class AlreadyExists(StateError, ValueError):
    pass


class Invalid(StateError, ValueError):
    pass


Rating = Literal["up", "down"]


@dataclass(frozen=True)
class Message:
    """One message of a Slack or Discord conversation, as the model is shown it again."""

    role: str
    content: str


@dataclass(frozen=True)
class AnswerFeedback:
    """A rated or commented answer. `turn` is the caller's JSON document of the answer as shown."""

    turn_id: str
    turn: str
    rating: Rating | None
    comment: str
    updated_at: datetime


@dataclass(frozen=True)
class Imported:
    """What `conversations.import_file` brought over from a conversations file of before."""

    messages: int
    events: int
    feedback: int
