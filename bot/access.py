"""Who may read what: each door names its asker as a `Principal` (state/), and this turns the principal
into the knowledge bases a turn may search (retrieval's `Scope`, which every search requires).

The doors: the web chat (the signed-in person, else anonymous), the widget (its site), `/v1` (its API
key), Slack (workspace and channel), Discord (guild and channel), the CLI (the operator, who reads all).
A knowledge base marked public is read by everyone, anonymous included; `default` is created public,
so a new install answers from its sample documents with no set-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass

from retrieval.store import VectorStore
from retrieval.types import DEFAULT_KB, Scope
from state import AlreadyExists, Principal, Role, State, allows


@dataclass(frozen=True)
class Readers:
    """The one place a principal becomes a scope. Without a state database (an app assembled by hand,
    as some tests do) there is one knowledge base, `default`, and everyone reads it."""

    state: State | None = None

    def readable(self, principal: Principal, wanted: Iterable[str] | None = None) -> Scope:
        """The knowledge bases `principal` may read, narrowed to `wanted` when given (a picker)."""
        kbs = self.state.access.readable(principal) if self.state is not None else frozenset({DEFAULT_KB})
        if wanted is not None:
            kbs = kbs & frozenset(wanted)
        return Scope(frozenset(kbs))

    def editable(self, principal: Principal) -> frozenset[str]:
        """The knowledge bases `principal` may change (upload to, delete from)."""
        return frozenset(kb for kb in self.readable(principal).kbs if self.may(principal, kb, "edit"))

    def may(self, principal: Principal, kb: str, role: Role) -> bool:
        """Whether `principal` holds `role` (read < edit < admin) on `kb`."""
        if self.state is None:
            return kb == DEFAULT_KB and role == "read"
        return allows(self.state.access.role(principal, kb), role)


def register_knowledge_bases(state: State, store: VectorStore) -> None:
    """Every knowledge base the store holds is known to the state database: `default` as public (a
    store from before knowledge bases stays readable as it was), any other as private until granted."""
    names = set(store.kb_names()) if store.exists() else set()
    for name in sorted(names | {DEFAULT_KB}):
        if state.kbs.get(name) is None:
            with suppress(AlreadyExists):  # another process registered it meanwhile
                state.kbs.create(name, public=name == DEFAULT_KB, actor="system")
