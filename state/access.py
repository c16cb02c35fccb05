"""Who may read, edit or administer which knowledge base.

Roles grow read < edit < admin. A site admin (Person.admin, or the operator at the command line)
is admin on every knowledge base; a public knowledge base gives read to everyone, anonymous
visitors included; everything else comes from grants to a person, a group, a widget site, an API
key, a Slack team/channel or a Discord guild/channel. An API key that has expired or been revoked
holds none of its grants.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import Session

from state.db import Context, get_row, once_more
from state.models import ApiKeyRow, GrantRow, KbRow, PersonRow
from state.types import (
    GRANTEE_KINDS,
    ROLES,
    Grant,
    GranteeKind,
    Invalid,
    NotFound,
    Principal,
    Role,
)


def check_grantee(kind: str, grantee_id: str) -> None:
    if kind not in GRANTEE_KINDS:
        raise Invalid(f"grantee kind must be one of {', '.join(GRANTEE_KINDS)}, not {kind!r}")
    if not grantee_id:
        raise Invalid("empty grantee id")
    if kind in ("slack", "discord"):
        parts = grantee_id.split("/")
        if len(parts) != 2 or not all(parts):
            outer = "TEAM" if kind == "slack" else "GUILD"
            raise Invalid(f"a {kind} grantee is {outer}/CHANNEL, not {grantee_id!r}")
    if kind in ("user", "api_key") and not grantee_id.isdigit():
        raise Invalid(f"a {kind} grantee is its numeric id, not {grantee_id!r}")


def to_grant(row: GrantRow) -> Grant:
    return Grant(
        kb=row.kb.name,
        grantee_kind=row.grantee_kind,  # type: ignore[arg-type]  # checked on the way in
        grantee_id=row.grantee_id,
        role=row.role,  # type: ignore[arg-type]
        created_at=row.created_at,
    )


def best(roles: Iterable[str]) -> Role | None:
    ranks = [ROLES.index(r) for r in roles if r in ROLES]
    return ROLES[max(ranks)] if ranks else None


class Access:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def grant(
        self, kb: str, grantee_kind: GranteeKind, grantee_id: str, role: Role, *, actor: str = "system"
    ) -> Grant:
        """Give `role` on `kb`; a grantee that already has a role there gets this one instead."""
        check_grantee(grantee_kind, grantee_id)
        if role not in ROLES:
            raise Invalid(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        return once_more(lambda: self._grant(kb, grantee_kind, grantee_id, role, actor))

    def _grant(self, kb: str, grantee_kind: GranteeKind, grantee_id: str, role: Role, actor: str) -> Grant:
        with self._ctx.write() as s:
            kb_row = self._kb(s, kb)
            if grantee_kind == "user" and get_row(s, PersonRow, int(grantee_id)) is None:
                raise NotFound(f"no person {grantee_id}")
            if grantee_kind == "api_key" and get_row(s, ApiKeyRow, int(grantee_id)) is None:
                raise NotFound(f"no API key {grantee_id}")
            row = self._find(s, kb_row, grantee_kind, grantee_id)
            if row is None:
                row = GrantRow(
                    kb=kb_row,
                    grantee_kind=grantee_kind,
                    grantee_id=grantee_id,
                    role=role,
                    created_at=self._ctx.now(),
                )
                s.add(row)
            else:
                row.role = role
            self._ctx.log(s, actor, "grant", f"kb:{kb}", f"{grantee_kind}:{grantee_id} {role}")
            return to_grant(row)

    def revoke(self, kb: str, grantee_kind: GranteeKind, grantee_id: str, *, actor: str = "system") -> bool:
        """Take the grantee's role on `kb` away; False when it had none."""
        check_grantee(grantee_kind, grantee_id)
        with self._ctx.write() as s:
            row = self._find(s, self._kb(s, kb), grantee_kind, grantee_id)
            if row is None:
                return False
            s.delete(row)
            self._ctx.log(s, actor, "revoke", f"kb:{kb}", f"{grantee_kind}:{grantee_id} {row.role}")
            return True

    def grants(self, kb: str | None = None) -> list[Grant]:
        query = (
            select(GrantRow)
            .join(GrantRow.kb)
            .order_by(KbRow.name, GrantRow.grantee_kind, GrantRow.grantee_id)
        )
        with self._ctx.sessions() as s:
            if kb is not None:
                query = query.where(GrantRow.kb_id == self._kb(s, kb).id)
            return [to_grant(r) for r in s.scalars(query)]

    def role(self, principal: Principal, kb: str) -> Role | None:
        with self._ctx.sessions() as s:
            kb_row = s.scalar(select(KbRow).where(KbRow.name == kb))
            if kb_row is None:
                return None
            if principal.admin:
                return "admin"
            granted = s.scalars(
                select(GrantRow.role).where(GrantRow.kb_id == kb_row.id, self._matches(s, principal))
            )
            return best([*granted, *(["read"] if kb_row.public else [])])

    def readable(self, principal: Principal) -> frozenset[str]:
        """The names of the knowledge bases `principal` may read: what a search's scope may hold."""
        with self._ctx.sessions() as s:
            if principal.admin:
                return frozenset(s.scalars(select(KbRow.name)))
            granted = select(GrantRow.kb_id).where(self._matches(s, principal))
            return frozenset(s.scalars(select(KbRow.name).where(or_(KbRow.public, KbRow.id.in_(granted)))))

    def _matches(self, s: Session, principal: Principal) -> ColumnElement[bool]:
        """The grants that apply to `principal`."""
        match principal.kind:
            case "user":
                clauses = [and_(GrantRow.grantee_kind == "user", GrantRow.grantee_id == principal.id)]
                if principal.groups:
                    clauses.append(
                        and_(
                            GrantRow.grantee_kind == "group",
                            GrantRow.grantee_id.in_(sorted(principal.groups)),
                        )
                    )
                return or_(*clauses)
            case "api_key":
                key = get_row(s, ApiKeyRow, int(principal.id)) if principal.id.isdigit() else None
                now = self._ctx.now()
                if key is None or key.revoked_at is not None or (key.expires_at and key.expires_at <= now):
                    return false()
                return and_(GrantRow.grantee_kind == "api_key", GrantRow.grantee_id == principal.id)
            case "widget" | "slack" | "discord":
                return and_(GrantRow.grantee_kind == principal.kind, GrantRow.grantee_id == principal.id)
            case _:
                return false()

    @staticmethod
    def _kb(s: Session, name: str) -> KbRow:
        row = s.scalar(select(KbRow).where(KbRow.name == name))
        if row is None:
            raise NotFound(f"no knowledge base {name!r}")
        return row

    @staticmethod
    def _find(s: Session, kb: KbRow, kind: str, grantee_id: str) -> GrantRow | None:
        return s.scalar(
            select(GrantRow).where(
                GrantRow.kb_id == kb.id, GrantRow.grantee_kind == kind, GrantRow.grantee_id == grantee_id
            )
        )
