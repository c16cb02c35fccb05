"""`ragbot users|groups|grant|revoke|keys|audit` against a real state file under --data-dir."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import Settings
from state import Principal, State, open_state


@pytest.fixture
def data(tmp_path: Path) -> list[str]:
    return ["--data-dir", str(tmp_path / "data")]


def opened(data: list[str]) -> State:
    return open_state(Settings(data_dir=Path(data[1])).state_db_url)


def ragbot(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_state_lives_in_the_data_directory_unless_a_url_is_set(tmp_path: Path) -> None:
    assert Settings(data_dir=tmp_path).state_db_url == f"sqlite:///{tmp_path}/state.db"
    url = "postgresql+psycopg://ragbot@db/ragbot"
    assert Settings(data_dir=tmp_path, state_url=url).state_db_url == url


def test_users_add_with_a_password_from_stdin_and_as_admin(
    data: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    code, out, _ = ragbot(capsys, "users", "add", "ada", "--password-stdin", *data)
    assert code == 0 and "created ada" in out
    code, out, _ = ragbot(capsys, "users", "add", "root", "--admin", *data)
    assert code == 0 and "site admin" in out
    code, _, err = ragbot(capsys, "users", "add", "ada", *data)
    assert code == 1 and "already exists" in err
    with opened(data) as state:
        ada = state.people.check_password("ada", "correct horse")
        assert ada is not None and not ada.admin
        root = state.people.by_username("root")
        assert root is not None and root.admin
        assert state.people.check_password("root", "") is None  # no password: links only
    code, out, _ = ragbot(capsys, "users", "list", *data)
    assert [line.split("\t")[1] for line in out.splitlines()] == ["ada", "root"]


def test_users_link_prints_a_one_time_sign_in_path(
    data: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    ragbot(capsys, "users", "add", "ada", *data)
    code, out, _ = ragbot(capsys, "users", "link", "ada", *data)
    assert code == 0 and out.startswith("/auth/link/")
    token = out.strip().removeprefix("/auth/link/")
    with opened(data) as state:
        person = state.people.redeem_link(token)
        assert person is not None and person.name == "ada"
        assert state.people.redeem_link(token) is None
    code, _, err = ragbot(capsys, "users", "link", "nobody", *data)
    assert code == 1 and "no account 'nobody'" in err


def test_groups_grant_and_revoke(data: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    ragbot(capsys, "users", "add", "ada", *data)
    with opened(data) as state:
        state.kbs.create("hr")
        state.kbs.create("ops")
    assert ragbot(capsys, "groups", "set", "ada", "eng", "people", *data)[0] == 0
    assert ragbot(capsys, "grant", "hr", "--group", "people", "--role", "edit", *data)[0] == 0
    assert ragbot(capsys, "grant", "ops", "--user", "ada", *data)[0] == 0
    assert ragbot(capsys, "grant", "ops", "--slack", "T1/C1", *data)[0] == 0
    assert ragbot(capsys, "grant", "hr", "--discord", "G1/C1", "--role", "read", *data)[0] == 0
    assert ragbot(capsys, "grant", "hr", "--widget", "intranet", *data)[0] == 0
    code, _, err = ragbot(capsys, "grant", "hr", "--slack", "C1", *data)
    assert code == 1 and "TEAM/CHANNEL" in err
    code, _, err = ragbot(capsys, "grant", "missing", "--group", "g", *data)
    assert code == 1 and "no knowledge base 'missing'" in err
    with opened(data) as state:
        ada = state.people.by_username("ada")
        assert ada is not None and ada.groups == {"eng", "people"}
        assert state.access.role(Principal.user(ada), "hr") == "edit"
        assert state.access.role(Principal.user(ada), "ops") == "read"
        assert state.access.readable(Principal.slack("T1", "C1")) == {"ops"}
        assert state.access.readable(Principal.discord("G1", "C1")) == {"hr"}
        assert state.access.readable(Principal.widget("intranet")) == {"hr"}
    code, out, _ = ragbot(capsys, "revoke", "ops", "--user", "ada", *data)
    assert code == 0 and "no role on ops" in out
    assert ragbot(capsys, "revoke", "hr", "--group", "people", *data)[0] == 0
    with opened(data) as state:
        ada = state.people.by_username("ada")
        assert ada is not None and state.access.readable(Principal.user(ada)) == frozenset()


def test_keys_create_list_and_revoke(data: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with opened(data) as state:
        state.kbs.create("hr")
        state.kbs.create("ops")
    code, out, _ = ragbot(
        capsys, "keys", "create", "reports", "--kb", "hr", "--kb", "ops", "--expires", "30", *data
    )
    assert code == 0 and "reads hr, ops" in out
    secret = out.strip().splitlines()[-1]
    with opened(data) as state:
        principal = state.keys.verify(secret)
        assert principal is not None and state.access.readable(principal) == {"hr", "ops"}
        (key,) = state.keys.list()
        assert key.expires_at is not None and key.created_by and key.created_by.startswith("cli:")
    code, out, _ = ragbot(capsys, "keys", "list", *data)
    assert out.split("\t")[:3] == [str(key.id), "reports", "hr,ops"] and out.rstrip().endswith("active")
    assert secret not in out
    assert ragbot(capsys, "grant", "hr", "--api-key", str(key.id), "--role", "edit", *data)[0] == 0
    assert ragbot(capsys, "keys", "revoke", str(key.id), *data)[0] == 0
    assert ragbot(capsys, "keys", "list", *data)[1].rstrip().endswith("revoked")
    with opened(data) as state:
        assert state.keys.verify(secret) is None
    code, _, err = ragbot(capsys, "keys", "create", "k", "--kb", "missing", *data)
    assert code == 1 and "no knowledge base 'missing'" in err


def test_audit_export_writes_json_lines(
    data: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ragbot(capsys, "users", "add", "ada", *data)
    ragbot(capsys, "users", "link", "ada", *data)
    code, out, _ = ragbot(capsys, "audit", *data)
    assert code == 0 and "person.create" in out and "link.create" in out
    code, out, _ = ragbot(capsys, "audit", "--export", *data)
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["action"] for e in events] == ["person.create", "link.create"]
    assert events[0]["actor"].startswith("cli:") and events[0]["at"].endswith("+00:00")
    target = tmp_path / "out" / "audit.jsonl"
    code, out, _ = ragbot(capsys, "audit", "--export", str(target), *data)
    assert code == 0 and "exported 2 audit entries" in out
    assert [json.loads(line)["target"] for line in target.read_text().splitlines()] == [
        events[0]["target"],
        events[1]["target"],
    ]
