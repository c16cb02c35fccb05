"""Alembic's environment for the state database.

`state.db.migrate` runs it with the connection it opened (config.attributes["connection"]), so no
alembic.ini is needed. For writing a new migration by hand-run autogenerate, see
state/migrations/README.md.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from state.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them against a database")
run()
