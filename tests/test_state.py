"""The state database: migrations, accounts, sign-in links, access rules, API keys, kept chats and
the audit log, on real SQLite files (and on PostgreSQL too where one can be started: see
tests/postgres.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Barrier

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from argon2 import PasswordHasher
from sqlalchemy import inspect, text

from state import (
    ROLES,
    AlreadyExists,
    Invalid,
    NotFound,
    Person,
    Principal,
    SourceRef,
    State,
    TurnRecord,
    allows,
    open_state,
)
from state.db import alembic_config, connect
from state.models import Base
from tests.state_db import Clock


def local(state: State, username: str, **kw: bool) -> Person:
    """An account without a password (argon2 hashing is slow on purpose; these tests need none)."""
    return state.people.create_local(username, None, **kw)


# Migrations


def test_migrations_build_the_models_schema_on_an_empty_database_and_reopening_changes_nothing(
    url: str,
) -> None:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with open_state(url) as first:
        with first.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
            # the migrations and the ORM classes describe the same tables, columns and indexes
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        tables = set(inspect(first.engine).get_table_names())
        first.kbs.create("kept")
    assert set(Base.metadata.tables) <= tables
    with open_state(url) as again:
        with again.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head
        assert [kb.name for kb in again.kbs.list()] == ["kept"]


def test_processes_starting_together_on_a_new_database_migrate_it_once(url: str) -> None:
    def opened(_: int) -> str | None:
        with open_state(url) as s, s.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    with ThreadPoolExecutor(4) as pool:
        revisions = list(pool.map(opened, range(4)))
    assert revisions == [ScriptDirectory.from_config(alembic_config(url)).get_current_head()] * 4


def test_migrations_go_down_and_up_again(url: str) -> None:
    config = alembic_config(url)
    open_state(url).close()
    command.downgrade(config, "base")
    with connect(url).connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    with open_state(url) as again:
        assert again.kbs.list() == []


def test_the_default_sqlite_file_and_its_folder_are_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "state.db"
    with open_state(f"sqlite:///{path}") as s:
        s.kbs.create("a")
    assert path.is_file()


# Accounts and passwords


def test_a_local_password_signs_in_and_a_wrong_one_or_unknown_name_does_not(state: State) -> None:
    ada = state.people.create_local("Ada", "correct horse", name="Ada Lovelace")
    assert ada.name == "Ada Lovelace" and not ada.admin and ada.groups == frozenset()
    assert state.people.check_password("ada", "correct horse") == ada  # usernames ignore case
    assert state.people.check_password("ada", "correct horsE") is None
    assert state.people.check_password("nobody", "correct horse") is None
    assert state.people.get(ada.id) == ada
    assert state.people.by_username("ADA") == ada


def test_passwords_are_stored_as_argon2_hashes(state: State) -> None:
    state.people.create_local("ada", "correct horse")
    with state.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM local_logins")).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored


def test_a_hash_made_with_weaker_settings_is_upgraded_at_sign_in(state: State) -> None:
    ada = state.people.create_local("ada", "correct horse")
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash("correct horse")
    with state.engine.begin() as conn:
        conn.execute(text("UPDATE local_logins SET password_hash = :h"), {"h": weak})
    assert state.people.check_password("ada", "correct horse") == ada
    with state.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM local_logins")).scalar_one()
    assert stored != weak and not PasswordHasher().check_needs_rehash(stored)
    assert state.people.check_password("ada", "correct horse") == ada


def test_account_rules(state: State) -> None:
    state.people.create_local("ada", "correct horse")
    with pytest.raises(AlreadyExists):
        state.people.create_local("ADA", "another password")
    with pytest.raises(Invalid):
        state.people.create_local("bob", "short")
    linked_only = state.people.create_local("cy", None)
    assert state.people.check_password("cy", "") is None
    state.people.set_password(linked_only.id, "now a password")
    assert state.people.check_password("cy", "now a password") == linked_only


# One-time sign-in links


def test_a_sign_in_link_works_once(state: State) -> None:
    ada = local(state, "ada")
    token = state.people.sign_in_link(ada.id)
    assert state.people.redeem_link(token) == ada
    assert state.people.redeem_link(token) is None
    assert state.people.redeem_link("not-a-token") is None


def test_a_sign_in_link_expires(state: State, clock: Clock) -> None:
    ada = local(state, "ada")
    token = state.people.sign_in_link(ada.id, ttl_s=600)
    later = state.people.sign_in_link(ada.id, ttl_s=600)
    clock.advance(seconds=599)
    assert state.people.redeem_link(later) == ada
    clock.advance(seconds=1)
    assert state.people.redeem_link(token) is None


def test_sign_in_links_are_stored_only_as_hashes(state: State) -> None:
    token = state.people.sign_in_link(local(state, "ada").id)
    with state.engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM sign_in_links")).scalar_one()
    assert token not in stored and len(stored) == 64


def test_a_link_for_no_one_is_refused(state: State) -> None:
    with pytest.raises(NotFound):
        state.people.sign_in_link(999)


# OpenID Connect


def test_oidc_sign_in_creates_the_person_once_and_replaces_groups_from_the_claims(state: State) -> None:
    first = state.people.from_oidc(
        "https://idp.example", "sub-1", email="ada@example.org", name="Ada", groups=["eng", "hr", " "]
    )
    assert first.groups == frozenset({"eng", "hr"}) and first.email == "ada@example.org"
    again = state.people.from_oidc(
        "https://idp.example", "sub-1", email="ada@new.example", name="Ada L.", groups=["eng", "ops"]
    )
    assert again.id == first.id
    assert again.groups == frozenset({"eng", "ops"})
    assert (again.name, again.email) == ("Ada L.", "ada@new.example")
    other_issuer = state.people.from_oidc("https://other.example", "sub-1", email=None, name=None, groups=[])
    assert other_issuer.id != first.id and other_issuer.name == "sub-1"
    assert state.people.get(first.id) == again


def test_groups_are_set_for_a_local_account(state: State) -> None:
    ada = local(state, "ada")
    assert state.people.set_groups(ada.id, ["eng", "ops"]).groups == frozenset({"eng", "ops"})
    assert state.people.set_groups(ada.id, ["ops"]).groups == frozenset({"ops"})
    assert state.people.set_groups(ada.id, []).groups == frozenset()
    with pytest.raises(NotFound):
        state.people.set_groups(999, ["x"])


# Access


@pytest.fixture
def kbs(state: State) -> State:
    state.kbs.create("public", public=True)
    for name in ("hr", "eng", "ops"):
        state.kbs.create(name)
    return state


def test_anonymous_visitors_read_public_knowledge_bases_only(kbs: State) -> None:
    anonymous = Principal.anonymous()
    assert kbs.access.readable(anonymous) == {"public"}
    assert kbs.access.role(anonymous, "public") == "read"
    assert kbs.access.role(anonymous, "hr") is None
    assert kbs.access.role(anonymous, "missing") is None


def test_a_user_grant_gives_that_role_to_that_person_only(kbs: State) -> None:
    ada, bob = local(kbs, "ada"), local(kbs, "bob")
    kbs.access.grant("hr", "user", str(ada.id), "edit")
    kbs.access.grant("public", "user", str(ada.id), "admin")
    assert kbs.access.readable(Principal.user(ada)) == {"public", "hr"}
    assert kbs.access.role(Principal.user(ada), "hr") == "edit"
    assert kbs.access.role(Principal.user(ada), "public") == "admin"  # a grant above public's read
    assert kbs.access.readable(Principal.user(bob)) == {"public"}
    # the same id of another kind is someone else
    assert kbs.access.readable(Principal("api_key", str(ada.id))) == {"public"}
    assert kbs.access.readable(Principal("widget", str(ada.id))) == {"public"}


def test_a_group_grant_follows_group_membership(kbs: State) -> None:
    kbs.access.grant("eng", "group", "engineers", "read")
    ada = kbs.people.set_groups(local(kbs, "ada").id, ["engineers"])
    assert kbs.access.readable(Principal.user(ada)) == {"public", "eng"}
    assert kbs.access.role(Principal.user(ada), "eng") == "read"
    ada = kbs.people.set_groups(ada.id, [])
    assert kbs.access.readable(Principal.user(ada)) == {"public"}
    oidc = kbs.people.from_oidc("https://idp", "s", email=None, name="Cy", groups=["engineers"])
    assert kbs.access.role(Principal.user(oidc), "eng") == "read"


def test_site_admins_and_the_operator_are_admin_everywhere(kbs: State) -> None:
    root = local(kbs, "root", admin=True)
    for principal in (Principal.user(root), Principal.cli()):
        assert kbs.access.readable(principal) == {"public", "hr", "eng", "ops"}
        assert {kbs.access.role(principal, kb) for kb in ("public", "hr", "eng", "ops")} == {"admin"}
        assert kbs.access.role(principal, "missing") is None


def test_roles_include_the_lower_ones() -> None:
    assert allows("admin", "edit") and allows("edit", "read") and allows("read", "read")
    assert not allows("read", "edit") and not allows(None, "read")


def test_an_api_key_reads_the_knowledge_bases_it_was_made_for(kbs: State) -> None:
    info, secret = kbs.keys.create("reporting", kbs=["ops", "hr"], created_by="user:1")
    assert info.kbs == {"ops", "hr"} and info.created_by == "user:1"
    principal = kbs.keys.verify(secret)
    assert principal == Principal.api_key(info.id)
    assert kbs.access.readable(principal) == {"public", "ops", "hr"}
    assert kbs.access.role(principal, "ops") == "read"
    assert kbs.access.role(principal, "eng") is None
    assert kbs.keys.verify(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert kbs.keys.verify("rk_999_" + secret.split("_", 2)[2]) is None
    assert kbs.keys.verify("garbage") is None


def test_a_key_secret_is_stored_only_as_a_hash(kbs: State) -> None:
    _, secret = kbs.keys.create("k", kbs=["ops"])
    with kbs.engine.connect() as conn:
        stored = conn.execute(text("SELECT secret_hash FROM api_keys")).scalar_one()
    assert secret.split("_", 2)[2] not in stored and len(stored) == 64


def test_an_expired_key_stops_working(kbs: State, clock: Clock) -> None:
    info, secret = kbs.keys.create("short", kbs=["ops"], expires_at=clock.now + timedelta(days=1))
    assert kbs.keys.verify(secret) is not None
    clock.advance(days=1)
    assert kbs.keys.verify(secret) is None
    # a principal made before expiry loses the grants too
    assert kbs.access.readable(Principal.api_key(info.id)) == {"public"}
    assert kbs.access.role(Principal.api_key(info.id), "ops") is None
    assert not kbs.keys.list()[0].active(clock.now)


def test_a_revoked_key_stops_working(kbs: State) -> None:
    info, secret = kbs.keys.create("k", kbs=["ops"])
    revoked = kbs.keys.revoke(info.id)
    assert revoked.revoked_at is not None
    assert kbs.keys.verify(secret) is None
    assert kbs.access.readable(Principal.api_key(info.id)) == {"public"}
    with pytest.raises(NotFound):
        kbs.keys.revoke(999)


def test_a_key_for_a_missing_knowledge_base_is_refused(kbs: State) -> None:
    with pytest.raises(NotFound):
        kbs.keys.create("k", kbs=["ops", "missing"])
    assert kbs.keys.list() == []


def test_slack_discord_and_widget_grants_are_per_channel_and_site(kbs: State) -> None:
    kbs.access.grant("ops", "slack", "T1/C1", "read")
    kbs.access.grant("eng", "discord", "G1/C9", "read")
    kbs.access.grant("hr", "widget", "intranet", "read")
    assert kbs.access.readable(Principal.slack("T1", "C1")) == {"public", "ops"}
    assert kbs.access.readable(Principal.slack("T1", "C2")) == {"public"}
    assert kbs.access.readable(Principal.slack("T2", "C1")) == {"public"}
    assert kbs.access.readable(Principal.discord("G1", "C9")) == {"public", "eng"}
    assert kbs.access.readable(Principal.discord("T1", "C1")) == {"public"}  # a slack id is not a discord id
    assert kbs.access.readable(Principal.widget("intranet")) == {"public", "hr"}
    assert kbs.access.readable(Principal.widget("blog")) == {"public"}


def test_grant_checks_its_arguments(kbs: State) -> None:
    with pytest.raises(NotFound):
        kbs.access.grant("missing", "group", "g", "read")
    with pytest.raises(NotFound):
        kbs.access.grant("ops", "user", "999", "read")
    with pytest.raises(NotFound):
        kbs.access.grant("ops", "api_key", "999", "read")
    with pytest.raises(Invalid):
        kbs.access.grant("ops", "slack", "C1", "read")
    with pytest.raises(Invalid):
        kbs.access.grant("ops", "group", "g", "owner")  # type: ignore[arg-type]
    with pytest.raises(Invalid):
        kbs.access.grant("ops", "robot", "r", "read")  # type: ignore[arg-type]


def test_granting_again_changes_the_role_and_revoke_removes_it(kbs: State) -> None:
    kbs.access.grant("ops", "group", "g", "read")
    kbs.access.grant("ops", "group", "g", "admin")
    member = Principal("user", "0", groups=frozenset({"g"}))
    assert kbs.access.role(member, "ops") == "admin"
    assert [(g.kb, g.grantee_id, g.role) for g in kbs.access.grants("ops")] == [("ops", "g", "admin")]
    assert kbs.access.revoke("ops", "group", "g") is True
    assert kbs.access.revoke("ops", "group", "g") is False
    assert kbs.access.role(member, "ops") is None


def test_renaming_a_knowledge_base_keeps_its_grants(kbs: State) -> None:
    ada = local(kbs, "ada")
    kbs.access.grant("hr", "user", str(ada.id), "edit")
    info, _ = kbs.keys.create("k", kbs=["hr"])
    renamed = kbs.kbs.rename("hr", "people")
    assert renamed.name == "people" and kbs.kbs.get("hr") is None
    assert kbs.access.readable(Principal.user(ada)) == {"public", "people"}
    assert kbs.access.role(Principal.user(ada), "people") == "edit"
    assert kbs.keys.get(info.id).kbs == {"people"}  # type: ignore[union-attr]
    with pytest.raises(AlreadyExists):
        kbs.kbs.rename("people", "ops")
    with pytest.raises(NotFound):
        kbs.kbs.rename("hr", "x")


def test_deleting_a_knowledge_base_deletes_its_grants(kbs: State) -> None:
    ada = local(kbs, "ada")
    kbs.access.grant("hr", "user", str(ada.id), "edit")
    kbs.access.grant("hr", "slack", "T/C", "read")
    kbs.kbs.delete("hr")
    assert kbs.access.grants() == []
    kbs.kbs.create("hr")  # a new knowledge base of the same name starts with no grants
    assert kbs.access.readable(Principal.user(ada)) == {"public"}
    assert kbs.access.readable(Principal.slack("T", "C")) == {"public"}
    with pytest.raises(NotFound):
        kbs.kbs.delete("missing")


def test_knowledge_base_names_are_unique_and_listed_in_order(state: State) -> None:
    state.kbs.create("b")
    state.kbs.create("a", public=True)
    with pytest.raises(AlreadyExists):
        state.kbs.create("a")
    with pytest.raises(Invalid):
        state.kbs.create(" padded ")
    assert [(kb.name, kb.public) for kb in state.kbs.list()] == [("a", True), ("b", False)]
    assert state.kbs.set_public("b", True).public


# Kept chats


def turn(n: int) -> TurnRecord:
    return TurnRecord(
        question=f"question {n}",
        standalone=f"standalone question {n}",
        answer=f"answer {n} [1]",
        sources=[SourceRef(file=f"doc{n}.md", kb="hr", title=f"Doc {n}")],
        verdicts=["allowed", "grounded"],
        created_at=datetime(2026, 1, 5, 9, n, tzinfo=UTC),
    )


def test_a_person_keeps_renames_exports_and_deletes_their_chats(state: State, clock: Clock) -> None:
    ada = local(state, "ada")
    first = state.chats.create(ada.id, "  Leave   policy ")
    assert first.title == "Leave policy" and first.turns == 0
    clock.advance(minutes=1)
    second = state.chats.create(ada.id, "Second")
    state.chats.append_turn(ada.id, first.id, turn(1))
    clock.advance(minutes=1)
    info = state.chats.append_turn(ada.id, first.id, turn(2))
    assert info.turns == 2
    assert [(c.id, c.turns) for c in state.chats.list(ada.id)] == [(first.id, 2), (second.id, 0)]
    chat = state.chats.get(ada.id, first.id)
    assert chat is not None and chat.turns == [turn(1), turn(2)]
    assert state.chats.rename(ada.id, first.id, "Holidays")
    exported = json.loads(state.chats.export(ada.id, first.id) or "")
    assert exported["title"] == "Holidays"
    assert [t["question"] for t in exported["turns"]] == ["question 1", "question 2"]
    assert exported["turns"][0]["sources"] == [{"file": "doc1.md", "kb": "hr", "title": "Doc 1"}]
    assert exported["turns"][0]["verdicts"] == ["allowed", "grounded"]
    assert state.chats.delete(ada.id, first.id)
    assert [c.id for c in state.chats.list(ada.id)] == [second.id]
    assert state.chats.get(ada.id, first.id) is None


def test_no_one_reaches_another_persons_chat(state: State) -> None:
    ada, bob = local(state, "ada"), local(state, "bob")
    chat = state.chats.create(ada.id, "Private")
    state.chats.append_turn(ada.id, chat.id, turn(1))
    assert state.chats.list(bob.id) == []
    assert state.chats.get(bob.id, chat.id) is None
    assert state.chats.export(bob.id, chat.id) is None
    assert state.chats.rename(bob.id, chat.id, "Mine now") is False
    assert state.chats.delete(bob.id, chat.id) is False
    with pytest.raises(NotFound):
        state.chats.append_turn(bob.id, chat.id, turn(2))
    kept = state.chats.get(ada.id, chat.id)
    assert kept is not None and kept.info.title == "Private" and kept.turns == [turn(1)]


def test_ids_no_row_can_have_are_simply_absent(state: State) -> None:
    """Ids arrive from cookies, URLs and keys; one beyond the database's integer range finds nothing."""
    ada = local(state, "ada")
    huge = 2**40
    assert state.people.get(huge) is None
    assert state.chats.get(ada.id, huge) is None and state.chats.get(huge, 1) is None
    assert state.chats.list(huge) == []
    assert state.keys.verify(f"rk_{huge}_secret") is None and state.keys.get(huge) is None
    assert state.access.readable(Principal.api_key(huge)) == frozenset()
    state.kbs.create("x")
    with pytest.raises(NotFound):
        state.access.grant("x", "user", str(huge), "read")


def test_a_chat_needs_an_owner_and_a_title(state: State) -> None:
    with pytest.raises(NotFound):
        state.chats.create(999, "t")
    with pytest.raises(Invalid):
        state.chats.create(local(state, "ada").id, "   ")


# Requests at the same time


def together(n: int, work: Callable[[int], object]) -> list[object]:
    """Run `work` in n threads released at once; each result, or the exception it raised."""
    start = Barrier(n)

    def one(i: int) -> object:
        start.wait()
        try:
            return work(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_first_sign_ins_at_the_same_time_make_one_person(state: State) -> None:
    results = together(
        6, lambda i: state.people.from_oidc("https://idp", "new", email=None, name="N", groups=[f"g{i % 2}"])
    )
    assert all(isinstance(r, Person) for r in results), results
    assert len({r.id for r in results if isinstance(r, Person)}) == 1
    assert len(state.people.list()) == 1


def test_one_of_several_creating_the_same_name_wins(state: State) -> None:
    results = together(6, lambda i: state.kbs.create("shared"))
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if isinstance(r, Exception)), results
    results = together(6, lambda i: state.access.grant("shared", "group", "g", ROLES[i % 3]))
    assert not [r for r in results if isinstance(r, Exception)]
    assert len(state.access.grants("shared")) == 1


# Audit


def test_every_change_and_sign_in_is_audited_with_actor_and_time(state: State, clock: Clock) -> None:
    ada = state.people.create_local("ada", "correct horse", actor="cli:root")
    state.people.check_password("ada", "correct horse")
    state.people.check_password("ada", "wrong password")
    token = state.people.sign_in_link(ada.id, actor="cli:root")
    state.people.redeem_link(token)
    oidc = state.people.from_oidc("https://idp", "s1", email=None, name="Cy", groups=["g"])
    state.people.set_groups(ada.id, ["eng"], actor="user:9")
    clock.advance(minutes=5)
    state.kbs.create("hr", actor="user:9")
    state.access.grant("hr", "group", "eng", "edit", actor="user:9")
    state.access.revoke("hr", "group", "eng", actor="user:9")
    info, _ = state.keys.create("k", kbs=["hr"], created_by="user:9")
    state.keys.revoke(info.id, actor="user:9")
    state.kbs.rename("hr", "people", actor="user:9")
    state.kbs.delete("people", actor="user:9")
    state.audit.record("slack:T/C", "answer.export", "chat:3", "by request")
    events = state.audit.export()
    assert [(e.actor, e.action, e.target) for e in events] == [
        ("cli:root", "person.create", f"person:{ada.id}"),
        (f"user:{ada.id}", "sign_in", f"person:{ada.id}"),
        ("anonymous", "sign_in_failed", "username:ada"),
        ("cli:root", "link.create", f"person:{ada.id}"),
        (f"user:{ada.id}", "sign_in", f"person:{ada.id}"),
        ("system", "person.create", f"person:{oidc.id}"),
        (f"user:{oidc.id}", "sign_in", f"person:{oidc.id}"),
        ("user:9", "groups.set", f"person:{ada.id}"),
        ("user:9", "kb.create", "kb:hr"),
        ("user:9", "grant", "kb:hr"),
        ("user:9", "revoke", "kb:hr"),
        ("user:9", "key.create", f"api_key:{info.id}"),
        ("user:9", "key.revoke", f"api_key:{info.id}"),
        ("user:9", "kb.rename", "kb:hr"),
        ("user:9", "kb.delete", "kb:people"),
        ("slack:T/C", "answer.export", "chat:3"),
    ]
    assert events[9].detail == "group:eng edit" and events[13].detail == "to people"
    assert events[0].at == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert events[8].at == datetime(2026, 1, 5, 9, 5, tzinfo=UTC)
    assert state.audit.export(since=clock.now)[0].action == "kb.create"


def test_a_refused_change_leaves_no_audit_entry(state: State) -> None:
    with pytest.raises(NotFound):
        state.access.grant("missing", "group", "g", "read", actor="user:1")
    assert state.audit.export() == []
