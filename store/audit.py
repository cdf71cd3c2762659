"""The audit log: who changed what, when, with the record before and after as JSON.

Written for every operator change (and the gateway's own, such as a STOP reply). The
callers decide what goes in: no password or hash is ever passed here. Each entry is also
logged at INFO (actor, action, target only: before/after stay in the store).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from store.bounds import check_text
from store.engine import writer
from store.tables import audit_log, utcnow

log = logging.getLogger(__name__)

# The most entries one newest() call returns.
MAX_PAGE = 100_000


def _shown(text: str | None) -> str:
    """`text` as it is when it is one plain word, else repr-escaped: a target named by a
    customer (an email, a sender) must not be able to end the log line or forge another."""
    if text is None:
        return "-"
    if text and text.isprintable() and not any(c.isspace() for c in text):
        return text
    return repr(text)


def _to_json(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    # default=str: datetimes and Decimals in an audit record are for humans to read.
    return json.dumps(value, sort_keys=True, default=str)


class AuditStore:
    """Repository of audit entries; append and read the newest, nothing else."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def record(
        self,
        actor: str,
        action: str,
        target: str | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """Record a change; before/after are stored as JSON text."""
        check_text(audit_log.c.actor, actor, "audit actor")
        check_text(audit_log.c.action, action, "audit action")
        check_text(audit_log.c.target, target, "audit target")
        async with self._writer.begin() as conn:
            await conn.execute(
                audit_log.insert().values(
                    at=utcnow(), actor=actor, action=action, target=target,
                    before=_to_json(before), after=_to_json(after),
                )
            )
        # Who did what to whom, and never the record: before/after may hold what a log
        # must not (the store keeps them for those allowed to read the audit log).
        log.info("admin change: actor=%s action=%s target=%s",
                 _shown(actor), _shown(action), _shown(target),
                 extra={"actor": actor, "action": action, "target": target})

    async def newest(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest entries first (1 <= limit <= MAX_PAGE), before/after decoded."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit!r}")
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
            )
            entries = [dict(row._mapping) for row in rows]
        for entry in entries:
            for key in ("before", "after"):
                if entry[key] is not None:
                    entry[key] = json.loads(entry[key])
        return entries
