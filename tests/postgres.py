"""A throwaway PostgreSQL server for the state tests, so the same tests prove the SQL is portable.

Started once per test session from the installed server programs (`initdb`, `pg_ctl`), in a
temporary folder, listening on a Unix socket only; each test gets a fresh database. Without the
programs or the psycopg driver, `fresh_database` skips the test and says what is missing.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from itertools import count
from pathlib import Path

import pytest


def _programs() -> Path | None:
    """The folder holding initdb and pg_ctl (Debian keeps them out of PATH, under /usr/lib/postgresql)."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None)


class PostgresServer:
    def __init__(self, programs: Path) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ragbot-pg-"))
        self._as: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres account
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        self._pg_ctl = str(programs / "pg_ctl")
        self._run(
            str(programs / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        options = f"-k {self.root} -c listen_addresses='' -c fsync=off -c full_page_writes=off"
        self._run(
            self._pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"
        )
        self._names = count()

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, timeout=120)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.root}"

    def fresh_database(self) -> str:
        import psycopg

        name = f"state_{next(self._names)}"
        with psycopg.connect(
            host=str(self.root), user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(self._pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start() -> PostgresServer | str:
    """A running server, or why there is none."""
    programs = _programs()
    if programs is None:
        return "PostgreSQL's initdb/pg_ctl are not installed (apt-get install postgresql)"
    if importlib.util.find_spec("psycopg") is None:
        return "the psycopg driver is not installed (pip install 'psycopg[binary]')"
    try:
        return PostgresServer(programs)
    except (OSError, KeyError, subprocess.SubprocessError) as exc:
        return f"could not start PostgreSQL: {exc}"


def fresh_database(server: PostgresServer | str) -> str:
    if isinstance(server, str):
        pytest.skip(server)
    return server.fresh_database()
