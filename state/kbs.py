"""Knowledge bases as the state knows them: a name, whether everyone may read it, and its grants.

The documents themselves live in retrieval/, tagged with the knowledge base's name; renaming or
deleting one here changes who may read it, and the caller moves or drops its chunks there.
"""

from __future__ import annotations

from sqlalchemy import select

from state.db import Context, unique
from state.models import KbRow
from state.types import AlreadyExists, Invalid, KnowledgeBase, NotFound


def to_kb(row: KbRow) -> KnowledgeBase:
    return KnowledgeBase(name=row.name, public=row.public, created_at=row.created_at)


def check_name(name: str) -> str:
    if not name or name != name.strip() or len(name) > 200 or any(c < " " for c in name):
        raise Invalid(f"a knowledge base name needs 1 to 200 printable characters, no edge spaces: {name!r}")
    return name


class KnowledgeBases:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def create(self, name: str, *, public: bool = False, actor: str = "system") -> KnowledgeBase:
        check_name(name)
        taken = f"knowledge base {name!r} already exists"
        with unique(taken), self._ctx.write() as s:
            if s.scalar(select(KbRow).where(KbRow.name == name)):
                raise AlreadyExists(taken)
            row = KbRow(name=name, public=public, created_at=self._ctx.now())
            s.add(row)
            self._ctx.log(s, actor, "kb.create", f"kb:{name}", "public" if public else "")
            return to_kb(row)

    def get(self, name: str) -> KnowledgeBase | None:
        with self._ctx.sessions() as s:
            row = s.scalar(select(KbRow).where(KbRow.name == name))
            return None if row is None else to_kb(row)

    def rename(self, old: str, new: str, *, actor: str = "system") -> KnowledgeBase:
        """Grants follow the knowledge base: they point at it, not at its name."""
        check_name(new)
        taken = f"knowledge base {new!r} already exists"
        with unique(taken), self._ctx.write() as s:
            row = s.scalar(select(KbRow).where(KbRow.name == old))
            if row is None:
                raise NotFound(f"no knowledge base {old!r}")
            if old != new and s.scalar(select(KbRow).where(KbRow.name == new)):
                raise AlreadyExists(taken)
            row.name = new
            self._ctx.log(s, actor, "kb.rename", f"kb:{old}", f"to {new}")
            return to_kb(row)

    def set_public(self, name: str, public: bool, *, actor: str = "system") -> KnowledgeBase:
        with self._ctx.write() as s:
            row = s.scalar(select(KbRow).where(KbRow.name == name))
            if row is None:
                raise NotFound(f"no knowledge base {name!r}")
            row.public = public
            self._ctx.log(s, actor, "kb.public" if public else "kb.private", f"kb:{name}")
            return to_kb(row)

    def delete(self, name: str, *, actor: str = "system") -> None:
        """Deletes its grants with it (an API key bound only to it then reads nothing but public ones)."""
        with self._ctx.write() as s:
            row = s.scalar(select(KbRow).where(KbRow.name == name))
            if row is None:
                raise NotFound(f"no knowledge base {name!r}")
            grants = len(row.grants)
            s.delete(row)
            self._ctx.log(s, actor, "kb.delete", f"kb:{name}", f"{grants} grant(s) removed")

    def list(self) -> list[KnowledgeBase]:
        with self._ctx.sessions() as s:
            return [to_kb(r) for r in s.scalars(select(KbRow).order_by(KbRow.name))]
