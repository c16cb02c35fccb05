"""The database connection and its schema: an engine per URL, migrated to the newest revision on open."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from state.models import AuditRow
from state.types import AlreadyExists

MIGRATIONS = Path(__file__).parent / "migrations"
MAX_ID = 2**31 - 1  # the integer keys' range on every database (PostgreSQL's INTEGER)

MIGRATION_LOCK = 0x7261_6762  # PostgreSQL advisory lock key held while migrating ("ragb")

T = TypeVar("T")


def once_more(work: Callable[[], T]) -> T:
    """Run `work` (one transaction) a second time when a unique constraint fired: a concurrent request
    made the same row first, and the second run finds it instead of making it."""
    try:
        return work()
    except IntegrityError:
        return work()


@contextmanager
def unique(message: str) -> Iterator[None]:
    """A unique constraint that fires because a concurrent request got there first reads as
    AlreadyExists, like the check that ran before it would have."""
    try:
        yield
    except IntegrityError as exc:
        raise AlreadyExists(message) from exc


def valid_id(key: int) -> bool:
    return 0 < key <= MAX_ID


def get_row(s: Session, model: type[T], key: int, *, lock: bool = False) -> T | None:
    """`s.get`, where an id no row can have (from a cookie, a URL or a key) is absent, not a
    database error: PostgreSQL refuses to compare an INTEGER column with a larger number.
    `lock`: the row stays locked until the transaction ends (SELECT ... FOR UPDATE where supported)."""
    return s.get(model, key, with_for_update=lock) if valid_id(key) else None


def alembic_config(url: str) -> Config:
    """Alembic's configuration, built here: the migrations ship inside the package, no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def connect(url: str) -> Engine:
    """An engine for `url`; an SQLite file gets its folder, foreign keys and write-ahead logging."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # SQLite enforces foreign keys (and their ON DELETE CASCADE) only when asked, per connection.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if parsed.database and parsed.database != ":memory:":
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
        cursor.close()

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; a database already there is left as it is."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        # One process migrates at a time, in one transaction; the others then find the schema at head.
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # takes the write lock, waits out the others
        elif connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Context:
    """What every part of the state shares: its sessions and its clock (tests move the clock)."""

    sessions: sessionmaker[Session]
    clock: Clock

    def now(self) -> datetime:
        return self.clock()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that changes something. On SQLite it takes the write lock before it reads
        (BEGIN IMMEDIATE; by default SQLite would read outside any transaction until the first
        write), so what it checks is still true when it writes; other writers wait their turn."""
        with self.sessions.begin() as s:
            if s.get_bind().dialect.name == "sqlite":
                s.execute(text("BEGIN IMMEDIATE"))
            yield s

    def log(self, session: Session, actor: str, action: str, target: str, detail: str = "") -> None:
        """Write an audit entry in the caller's transaction: the change and its record commit together."""
        session.add(AuditRow(at=self.now(), actor=actor, action=action, target=target, detail=detail))
