"""People: local accounts with argon2 passwords, identities from an OpenID Connect provider, groups,
and one-time sign-in links.

Sign-ins are audited here, where they happen: a successful `check_password`, `redeem_link` or
`from_oidc` writes `sign_in`, a wrong password `sign_in_failed`; callers need not record them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta
from functools import cached_property
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from state.db import Context, get_row, once_more, unique
from state.models import GroupMemberRow, LocalLoginRow, OidcIdentityRow, PersonRow, SignInLinkRow
from state.types import AlreadyExists, Invalid, NotFound, Person

MIN_PASSWORD = 8
LINK_TTL_S = 15 * 60


def token_hash(token: str) -> str:
    """How a random token is stored: its SHA-256, so a copy of the database signs no one in."""
    return hashlib.sha256(token.encode()).hexdigest()


def normal_groups(groups: Iterable[str]) -> set[str]:
    return {g.strip() for g in groups if g.strip()}


def to_person(row: PersonRow) -> Person:
    return Person(
        id=row.id,
        name=row.name,
        email=row.email,
        groups=frozenset(g.group for g in row.groups),
        admin=row.admin,
    )


class People:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._hasher = PasswordHasher()

    @cached_property
    def _dummy_hash(self) -> str:
        """Verified against when the username is unknown, so a wrong name takes as long as a wrong password."""
        return self._hasher.hash(secrets.token_urlsafe(16))

    def _new_hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise Invalid(f"a password needs at least {MIN_PASSWORD} characters")
        return self._hasher.hash(password)

    def create_local(
        self,
        username: str,
        password: str | None,
        *,
        name: str | None = None,
        admin: bool = False,
        actor: str = "system",
    ) -> Person:
        """A local account. Without a password it can sign in only through a link (`sign_in_link`)."""
        username = username.strip().lower()
        if not username or len(username) > 200:
            raise Invalid("a username needs 1 to 200 characters")
        hashed = None if password is None else self._new_hash(password)
        taken = f"user {username!r} already exists"
        with unique(taken), self._ctx.write() as s:
            if s.scalar(select(LocalLoginRow).where(LocalLoginRow.username == username)):
                raise AlreadyExists(taken)
            row = PersonRow(name=name or username, email=None, admin=admin, created_at=self._ctx.now())
            s.add(row)
            s.flush()
            s.add(LocalLoginRow(person_id=row.id, username=username, password_hash=hashed))
            self._ctx.log(
                s, actor, "person.create", f"person:{row.id}", f"local {username}" + (" admin" * admin)
            )
            return to_person(row)

    def set_password(self, person_id: int, password: str | None, *, actor: str = "system") -> None:
        hashed = None if password is None else self._new_hash(password)
        with self._ctx.write() as s:
            login = get_row(s, LocalLoginRow, person_id)
            if login is None:
                raise NotFound(f"person {person_id} has no local account")
            login.password_hash = hashed
            self._ctx.log(
                s, actor, "password.set", f"person:{person_id}", "cleared" if hashed is None else ""
            )

    def check_password(self, username: str, password: str) -> Person | None:
        username = username.strip().lower()
        with self._ctx.sessions() as s:
            login = s.scalar(select(LocalLoginRow).where(LocalLoginRow.username == username))
            person_id, stored = (login.person_id, login.password_hash) if login else (None, None)
        # Hashing is slow on purpose: done outside the write transaction, it holds no lock.
        try:
            self._hasher.verify(stored or self._dummy_hash, password)
            ok = stored is not None
        except (VerificationError, InvalidHashError):
            ok = False
        rehashed = (
            self._hasher.hash(password) if ok and self._hasher.check_needs_rehash(stored or "") else None
        )
        with self._ctx.write() as s:
            person = get_row(s, PersonRow, person_id) if ok and person_id is not None else None
            if person is None:
                self._ctx.log(s, "anonymous", "sign_in_failed", f"username:{username}", "password")
                return None
            if rehashed:
                s.get_one(LocalLoginRow, person.id).password_hash = rehashed
            self._ctx.log(s, f"user:{person.id}", "sign_in", f"person:{person.id}", "password")
            return to_person(person)

    def from_oidc(
        self,
        issuer: str,
        subject: str,
        *,
        email: str | None,
        name: str | None,
        groups: Iterable[str],
    ) -> Person:
        """The person behind an identity provider's (issuer, subject), created on first sign-in.
        Email, name and groups come from the claims each time: groups removed there are removed here."""
        return once_more(lambda: self._from_oidc(issuer, subject, email, name, list(groups)))

    def _from_oidc(
        self, issuer: str, subject: str, email: str | None, name: str | None, groups: list[str]
    ) -> Person:
        with self._ctx.write() as s:
            ident = s.scalar(
                select(OidcIdentityRow).where(
                    OidcIdentityRow.issuer == issuer, OidcIdentityRow.subject == subject
                )
            )
            if ident is None:
                row = PersonRow(
                    name=name or email or subject, email=email, admin=False, created_at=self._ctx.now()
                )
                s.add(row)
                s.flush()
                s.add(OidcIdentityRow(issuer=issuer, subject=subject, person_id=row.id))
                self._ctx.log(s, "system", "person.create", f"person:{row.id}", f"oidc {issuer} {subject}")
            else:  # locked, so sign-ins of one person at once replace groups one after another
                row = s.get_one(PersonRow, ident.person_id, with_for_update=True)
                row.name = name or row.name
                row.email = email
            self._replace_groups(s, row, groups)
            self._ctx.log(s, f"user:{row.id}", "sign_in", f"person:{row.id}", f"oidc {issuer}")
            return to_person(row)

    def _replace_groups(self, s: Session, row: PersonRow, groups: Iterable[str]) -> None:
        wanted = normal_groups(groups)
        row.groups[:] = [g for g in row.groups if g.group in wanted]
        have = {g.group for g in row.groups}
        row.groups.extend(GroupMemberRow(person_id=row.id, group=g) for g in sorted(wanted - have))
        s.flush()

    def set_groups(self, person_id: int, groups: Iterable[str], *, actor: str = "system") -> Person:
        """Replace a person's groups (for local accounts; an OIDC sign-in replaces them from its claims)."""
        with self._ctx.write() as s:
            row = get_row(s, PersonRow, person_id, lock=True)
            if row is None:
                raise NotFound(f"no person {person_id}")
            self._replace_groups(s, row, groups)
            names = ",".join(sorted(g.group for g in row.groups))
            self._ctx.log(s, actor, "groups.set", f"person:{person_id}", names)
            return to_person(row)

    def sign_in_link(self, person_id: int, ttl_s: float = LINK_TTL_S, *, actor: str = "system") -> str:
        """A one-time token that signs `person_id` in until it is used or `ttl_s` seconds pass.
        Only its hash is stored: the token exists in this return value alone."""
        token = secrets.token_urlsafe(32)
        with self._ctx.write() as s:
            if get_row(s, PersonRow, person_id) is None:
                raise NotFound(f"no person {person_id}")
            expires = self._ctx.now() + timedelta(seconds=ttl_s)
            s.add(SignInLinkRow(token_hash=token_hash(token), person_id=person_id, expires_at=expires))
            self._ctx.log(s, actor, "link.create", f"person:{person_id}", f"expires {expires.isoformat()}")
        return token

    def redeem_link(self, token: str) -> Person | None:
        """The link's person, once: a used, expired or unknown token gives None."""
        digest = token_hash(token)
        now = self._ctx.now()
        with self._ctx.write() as s:
            link = s.scalar(select(SignInLinkRow).where(SignInLinkRow.token_hash == digest))
            if link is None or not hmac.compare_digest(link.token_hash, digest) or link.expires_at <= now:
                return None
            # Spent in one conditional update, so two requests racing with the same link cannot both win.
            spent = s.execute(
                update(SignInLinkRow)
                .where(SignInLinkRow.id == link.id, SignInLinkRow.used_at.is_(None))
                .values(used_at=now)
            )
            if cast(CursorResult[Any], spent).rowcount != 1:
                return None
            person = s.get_one(PersonRow, link.person_id)
            self._ctx.log(s, f"user:{person.id}", "sign_in", f"person:{person.id}", "link")
            return to_person(person)

    def get(self, person_id: int) -> Person | None:
        with self._ctx.sessions() as s:
            row = get_row(s, PersonRow, person_id)
            return None if row is None else to_person(row)

    def by_username(self, username: str) -> Person | None:
        with self._ctx.sessions() as s:
            login = s.scalar(select(LocalLoginRow).where(LocalLoginRow.username == username.strip().lower()))
            return None if login is None else to_person(s.get_one(PersonRow, login.person_id))

    def list(self) -> list[Person]:
        with self._ctx.sessions() as s:
            return [to_person(r) for r in s.scalars(select(PersonRow).order_by(PersonRow.id))]
