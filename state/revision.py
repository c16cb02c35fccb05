"""Write a new migration for a change to state/models.py:

    python -m state.revision "what changes"

It builds a scratch SQLite database at the newest revision, compares it with the models and writes
the difference to state/migrations/versions/NNNN_what_changes.py, numbered after the newest. Read
it before committing: autogenerate misses renames (it sees a drop and an add) and data moves.
"""

from __future__ import annotations

import sys
import tempfile

from alembic import command
from alembic.script import ScriptDirectory

from state.db import alembic_config, connect, migrate


def main(argv: list[str] | None = None) -> int:
    message = " ".join(sys.argv[1:] if argv is None else argv).strip()
    if not message:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/head.db"
        engine = connect(url)
        migrate(engine)
        engine.dispose()
        config = alembic_config(url)
        head = ScriptDirectory.from_config(config).get_current_head()
        command.revision(config, message=message, autogenerate=True, rev_id=f"{int(head or 0) + 1:04d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
