"""Who reads which knowledge base, from the state database (bot/access.py), and the first start's admin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.access import Readers, register_knowledge_bases
from bot.app import first_admin_link
from retrieval.chunking import Chunker
from retrieval.embedder import MultiHeadEmbedder
from retrieval.ingest import Ingestor
from retrieval.store import VectorStore
from state import Principal, State, open_state


@pytest.fixture
def state(tmp_path: Path) -> Iterator[State]:
    with open_state(f"sqlite:///{tmp_path / 'state.db'}") as opened:
        yield opened


def test_a_new_install_reads_default_publicly_and_new_knowledge_bases_privately(
    state: State, embedder: MultiHeadEmbedder, tmp_path: Path
) -> None:
    store = VectorStore("kbs", path=tmp_path / "q")
    for kb in ("default", "hr"):
        (tmp_path / kb).mkdir()
        (tmp_path / kb / "a.md").write_text(f"# {kb}\n\nSome text about {kb}.")
        Ingestor(embedder, Chunker(embedder.tokenizer, 64, 8), store, kb=kb, progress=False).ingest_paths(
            [tmp_path / kb]
        )
    register_knowledge_bases(state, store)
    register_knowledge_bases(state, store)  # again: nothing changes, nothing fails
    assert {(kb.name, kb.public) for kb in state.kbs.list()} == {("default", True), ("hr", False)}
    readers = Readers(state)
    assert readers.readable(Principal.anonymous()).kbs == {"default"}
    assert readers.readable(Principal.cli()).kbs == {"default", "hr"}
    assert readers.may(Principal.anonymous(), "default", "read")
    assert not readers.may(Principal.anonymous(), "default", "edit")
    assert not readers.may(Principal.anonymous(), "hr", "read")
    store.close()


def test_without_a_state_database_everyone_reads_default_only() -> None:
    assert Readers().readable(Principal.anonymous()).kbs == {"default"}
    assert Readers().readable(Principal.anonymous(), wanted=["hr"]).kbs == frozenset()


def test_the_first_start_makes_an_admin_with_a_one_time_link(state: State) -> None:
    link = first_admin_link(state)
    assert link is not None and link.startswith("/auth/link/")
    admin = state.people.redeem_link(link.removeprefix("/auth/link/"))
    assert admin is not None and admin.admin
    assert state.people.redeem_link(link.removeprefix("/auth/link/")) is None  # once
    assert first_admin_link(state) is None  # only on an empty database
