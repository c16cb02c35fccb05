"""API keys: each is read access to the knowledge bases it was made for (grants to `api_key:ID`,
so `ragbot grant --api-key` can widen them later), until it expires or is revoked.

The secret is `rk_<id>_<random>`: the id finds the row, the random part is compared as a SHA-256
hash in constant time. Only the hash is stored; the secret is shown once, by `create`.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from state.db import Context, get_row
from state.models import ApiKeyRow, GrantRow, KbRow
from state.people import token_hash
from state.types import ApiKeyInfo, Invalid, NotFound, Principal

PREFIX = "rk"


def _info(s: Session, row: ApiKeyRow) -> ApiKeyInfo:
    kbs = s.scalars(
        select(KbRow.name)
        .join(GrantRow, GrantRow.kb_id == KbRow.id)
        .where(GrantRow.grantee_kind == "api_key", GrantRow.grantee_id == str(row.id))
    )
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        kbs=frozenset(kbs),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_by=row.created_by,
    )


def parse(secret: str) -> tuple[int, str] | None:
    prefix, _, rest = secret.partition("_")
    key_id, _, random_part = rest.partition("_")
    if prefix != PREFIX or not key_id.isdigit() or not random_part:
        return None
    return int(key_id), random_part


class ApiKeys:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def create(
        self,
        name: str,
        *,
        kbs: Iterable[str],
        expires_at: datetime | None = None,
        created_by: str | None = None,
    ) -> tuple[ApiKeyInfo, str]:
        """A new key reading `kbs`; returns it and its secret, which is not kept and cannot be shown again."""
        if not name.strip():
            raise Invalid("an API key needs a name")
        if expires_at is not None and expires_at.tzinfo is None:
            raise Invalid("expires_at must be an aware datetime")
        random_part = secrets.token_urlsafe(32)
        now = self._ctx.now()
        with self._ctx.write() as s:
            kb_rows = []
            for kb in sorted(set(kbs)):
                kb_row = s.scalar(select(KbRow).where(KbRow.name == kb))
                if kb_row is None:
                    raise NotFound(f"no knowledge base {kb!r}")
                kb_rows.append(kb_row)
            row = ApiKeyRow(
                name=name.strip(),
                secret_hash=token_hash(random_part),
                created_at=now,
                expires_at=expires_at,
                created_by=created_by,
            )
            s.add(row)
            s.flush()
            actor = created_by or "system"
            for kb_row in kb_rows:
                s.add(
                    GrantRow(
                        kb=kb_row, grantee_kind="api_key", grantee_id=str(row.id), role="read", created_at=now
                    )
                )
            s.flush()
            until = f" until {expires_at.isoformat()}" if expires_at else ""
            kb_names = ",".join(k.name for k in kb_rows)
            self._ctx.log(s, actor, "key.create", f"api_key:{row.id}", f"{row.name} kbs={kb_names}{until}")
            return _info(s, row), f"{PREFIX}_{row.id}_{random_part}"

    def verify(self, secret: str) -> Principal | None:
        """The key's principal, or None for an unknown, wrong, expired or revoked secret."""
        parsed = parse(secret)
        if parsed is None:
            return None
        key_id, random_part = parsed
        with self._ctx.sessions() as s:
            row = get_row(s, ApiKeyRow, key_id)
            if row is None or not hmac.compare_digest(row.secret_hash, token_hash(random_part)):
                return None
            if row.revoked_at is not None or (
                row.expires_at is not None and row.expires_at <= self._ctx.now()
            ):
                return None
            return Principal.api_key(row.id)

    def revoke(self, key_id: int, *, actor: str = "system") -> ApiKeyInfo:
        with self._ctx.write() as s:
            row = get_row(s, ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"no API key {key_id}")
            if row.revoked_at is None:
                row.revoked_at = self._ctx.now()
                self._ctx.log(s, actor, "key.revoke", f"api_key:{key_id}", row.name)
            return _info(s, row)

    def get(self, key_id: int) -> ApiKeyInfo | None:
        with self._ctx.sessions() as s:
            row = get_row(s, ApiKeyRow, key_id)
            return None if row is None else _info(s, row)

    def list(self) -> list[ApiKeyInfo]:
        with self._ctx.sessions() as s:
            return [_info(s, r) for r in s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))]
