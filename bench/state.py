"""The state database's costs: opening (migrating) it, and the access checks made before each search.

Fills 200 knowledge bases (4 public) and 10,000 grants (half to groups, half to people), then times
`access.readable` and `access.role` for a person in 5 groups, and argon2id hashing and verifying.

    python -m bench.state                                   # a new SQLite file
    python -m bench.state --url postgresql+psycopg://…/db   # an empty PostgreSQL database
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable

from argon2 import PasswordHasher
from sqlalchemy import insert, select

from bench._common import table
from state import Principal, open_state, utcnow
from state.models import GrantRow, KbRow


def timed(n: int, work: Callable[[], object]) -> float:
    """Mean milliseconds of `work()` over n runs."""
    start = time.perf_counter()
    for _ in range(n):
        work()
    return (time.perf_counter() - start) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an empty database (default: a new SQLite file)")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/state.db"

    start = time.perf_counter()
    open_state(url).close()
    migrate_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    state = open_state(url)
    reopen_ms = (time.perf_counter() - start) * 1000

    now = utcnow()
    with state.engine.begin() as conn:
        conn.execute(
            insert(KbRow), [{"name": f"kb{i}", "public": i % 50 == 0, "created_at": now} for i in range(200)]
        )
        ids = list(conn.scalars(select(KbRow.id)))
        grants = [
            {
                "kb_id": ids[i % 200],
                "grantee_kind": kind,
                "grantee_id": f"{prefix}{i}",
                "role": role,
                "created_at": now,
            }
            for kind, prefix, role in (("group", "g", "read"), ("user", "", "edit"))
            for i in range(5000)
        ]
        conn.execute(insert(GrantRow), grants)
    person = Principal("user", "7", groups=frozenset({"g1", "g2", "g3", "g401", "g999"}))
    readable_ms = timed(args.repeat, lambda: state.access.readable(person))
    role_ms = timed(args.repeat, lambda: state.access.role(person, "kb3"))
    state.close()

    hasher = PasswordHasher()
    hashed = hasher.hash("correct horse")
    hash_ms = timed(5, lambda: hasher.hash("correct horse"))
    verify_ms = timed(5, lambda: hasher.verify(hashed, "correct horse"))

    print(f"database: {url.split('://')[0]}; 200 knowledge bases, 10,000 grants\n")
    rows: list[list[object]] = [
        ["open an empty database (migrate to head)", f"{migrate_ms:.0f}"],
        ["open one already at head", f"{reopen_ms:.1f}"],
        ["access.readable(person in 5 groups)", f"{readable_ms:.2f}"],
        ["access.role(person, kb)", f"{role_ms:.2f}"],
        ["argon2id hash (defaults)", f"{hash_ms:.0f}"],
        ["argon2id verify", f"{verify_ms:.0f}"],
    ]
    print(table(["measure", "ms"], rows))


if __name__ == "__main__":
    main()
