"""The nodes sharing one store, their heartbeats, and the sessions bound on each.

Every node writes a heartbeat every few seconds; one whose heartbeat is older than the
TTL the caller gives is gone (killed, cut off), and its sessions stop counting. A bind
is registered in one transaction that counts the account's sessions on every live node
(PostgreSQL: under an advisory lock per account, so two nodes binding the same account
at once are counted one after the other), so an account's bind limit holds across the
cluster. On SQLite there is one node, and the same queries run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from store.engine import writer
from store.tables import accounts, bound_sessions, deliveries, nodes

# The first key of the advisory locks of binds ("SMPP" in ASCII): no other lock uses it.
_BIND_LOCK = 0x534D5050
_TRANSMITTING = ("transmitter", "transceiver")
_RECEIVING = ("receiver", "transceiver")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Who a node is, as the other nodes and the operator see it."""

    name: str
    node_id: int
    host: str
    pid: int
    smpp: str


class NodeStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._postgres = engine.dialect.name == "postgresql"

    async def register(self, node: NodeInfo, now: datetime) -> tuple[int, int]:
        """The node starts: its row (re)written, and what a previous run of it left
        behind cleared: its sessions, and the deliveries it held (due again now).
        Returns (sessions, deliveries) cleared."""
        async with self._writer.begin() as conn:
            await conn.execute(nodes.delete().where(nodes.c.name == node.name))
            await conn.execute(nodes.insert().values(
                name=node.name, node_id=node.node_id, host=node.host, pid=node.pid,
                smpp=node.smpp, started_at=now, heartbeat_at=now, stopped_at=None,
            ))
            sessions = await conn.execute(
                bound_sessions.delete().where(bound_sessions.c.node == node.name))
            held = await conn.execute(
                deliveries.update()
                .where(deliveries.c.claimed_by == node.name, deliveries.c.state == "pending")
                .values(claimed_by=None, next_attempt_at=now))
        return sessions.rowcount or 0, held.rowcount or 0

    async def listening(self, name: str, smpp: str) -> None:
        """Where the node's SMPP listener ended up (known once it has started)."""
        async with self._writer.begin() as conn:
            await conn.execute(nodes.update().where(nodes.c.name == name).values(smpp=smpp))

    async def heartbeat(self, name: str, now: datetime, ttl: timedelta) -> int:
        """This node is alive; the sessions of nodes silent for longer than `ttl` are
        removed (they count for nothing already). Returns how many were removed."""
        async with self._writer.begin() as conn:
            await conn.execute(
                nodes.update().where(nodes.c.name == name).values(heartbeat_at=now))
            gone = sa.select(nodes.c.name).where(
                sa.or_(nodes.c.heartbeat_at < now - ttl, nodes.c.stopped_at.is_not(None)))
            removed = await conn.execute(
                bound_sessions.delete().where(bound_sessions.c.node.in_(gone)))
        return removed.rowcount or 0

    async def stopped(self, name: str, now: datetime) -> None:
        """A clean stop: the node's sessions go, the node stays listed as stopped."""
        async with self._writer.begin() as conn:
            await conn.execute(bound_sessions.delete().where(bound_sessions.c.node == name))
            await conn.execute(
                nodes.update().where(nodes.c.name == name).values(stopped_at=now))

    async def bind(
        self, session_id: str, node: str, account_id: int, bind_type: str, peer: str,
        now: datetime, *, limit: int, ttl: timedelta,
    ) -> bool:
        """Register a bind if the account has room for it on the whole cluster: at most
        `limit` sessions able to transmit and `limit` able to receive (a transceiver is
        both), counting live nodes only. False (nothing written) when it has not."""
        async with self._writer.begin() as conn:
            if self._postgres:
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
                    sa.literal(_BIND_LOCK, sa.Integer), sa.literal(account_id, sa.Integer))))
            live = sa.select(nodes.c.name).where(
                nodes.c.heartbeat_at >= now - ttl, nodes.c.stopped_at.is_(None))
            rows = await conn.execute(
                sa.select(bound_sessions.c.bind_type, sa.func.count())
                .where(bound_sessions.c.account_id == account_id,
                       bound_sessions.c.node.in_(live))
                .group_by(bound_sessions.c.bind_type))
            counts = dict(rows.all())
            tx = sum(counts.get(t, 0) for t in _TRANSMITTING)
            rx = sum(counts.get(t, 0) for t in _RECEIVING)
            if (bind_type in _TRANSMITTING and tx >= limit) or (
                    bind_type in _RECEIVING and rx >= limit):
                return False
            await conn.execute(bound_sessions.insert().values(
                id=session_id, node=node, account_id=account_id, bind_type=bind_type,
                peer=peer[:64], bound_at=now))
        return True

    async def unbind(self, session_id: str) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(bound_sessions.delete().where(bound_sessions.c.id == session_id))

    async def list(self, now: datetime, ttl: timedelta) -> list[dict[str, Any]]:
        """Every node ever registered, with its state (up, stopped, gone), its heartbeat's
        age and the sessions it has bound (as the store knows them)."""
        counts = (
            sa.select(bound_sessions.c.node, sa.func.count().label("sessions"))
            .group_by(bound_sessions.c.node).subquery()
        )
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(nodes, sa.func.coalesce(counts.c.sessions, 0).label("sessions"))
                .select_from(nodes.outerjoin(counts, counts.c.node == nodes.c.name))
                .order_by(nodes.c.node_id))
            found = []
            for row in rows:
                item = dict(row._mapping)
                if item["stopped_at"] is not None:
                    item["state"] = "stopped"
                elif item["heartbeat_at"] < now - ttl:
                    item["state"] = "gone"
                else:
                    item["state"] = "up"
                item["heartbeat_age"] = round((now - item["heartbeat_at"]).total_seconds(), 1)
                found.append(item)
            return found

    async def sessions(
        self, now: datetime, ttl: timedelta, *, besides: str, system_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The sessions bound on the live nodes other than `besides` (of one account,
        or of all), as registered, with the account's system_id."""
        live = sa.select(nodes.c.name).where(
            nodes.c.heartbeat_at >= now - ttl, nodes.c.stopped_at.is_(None),
            nodes.c.name != besides)
        query = (
            sa.select(bound_sessions, accounts.c.system_id)
            .join(accounts, accounts.c.id == bound_sessions.c.account_id)
            .where(bound_sessions.c.node.in_(live))
            .order_by(bound_sessions.c.node, bound_sessions.c.bound_at)
        )
        if system_id is not None:
            query = query.where(accounts.c.system_id == system_id)
        async with self._engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]
