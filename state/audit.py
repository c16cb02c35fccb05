"""The audit log: who did what to which account, knowledge base, grant or key, and when.

Parts of the state write their own entries in the same transaction as the change they record
(`Context.log`); `record` is for callers with something else to log, such as a front door.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from state.db import Context
from state.models import AuditRow
from state.types import AuditEvent


class Audit:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def record(self, actor: str, action: str, target: str, detail: str = "") -> None:
        with self._ctx.write() as s:
            self._ctx.log(s, actor, action, target, detail)

    def export(self, *, since: datetime | None = None) -> list[AuditEvent]:
        """Every entry (or those at or after `since`), oldest first."""
        query = select(AuditRow).order_by(AuditRow.id)
        if since is not None:
            query = query.where(AuditRow.at >= since)
        with self._ctx.sessions() as s:
            return [
                AuditEvent(id=r.id, at=r.at, actor=r.actor, action=r.action, target=r.target, detail=r.detail)
                for r in s.scalars(query)
            ]
