"""This node among the others on one store: its heartbeat, and its binds counted
cluster-wide.

At start the node registers (store.nodes), clearing what a previous run of it left
(sessions, held deliveries); then it writes a heartbeat every `heartbeat_interval`.
On a shared store (PostgreSQL) each bind that the local limits let through is also
registered in the store, which counts the account's sessions on every live node, so
`bind_limit` holds across the cluster; an unbind removes it. Should the store be
unreachable at a bind, the local count decides (the gateway keeps serving), and the
node registers its sessions again once a heartbeat gets through.

It is also what the admin sees of sessions: this node's, and those the store holds for
the other live nodes, each with its id "<node>/<session number>" (the number of the
session's log lines); a kick (suspend or rotate with --unbind) unbinds the account here
and tells the other nodes to do the same, and a kick of one session id unbinds it here
or tells its node (store.changes).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from store.changes import KICK_PREFIX, UNBIND_PREFIX, kick_notice, unbind_notice
from store.nodes import NodeInfo

if TYPE_CHECKING:
    from gateway.accounts import Account
    from gateway.sessions.registry import BoundSession
    from store.changes import ChangeFeed
    from store.nodes import NodeStore

log = logging.getLogger(__name__)

_STORE_ERRORS = (OSError, SQLAlchemyError)


class LocalSessions(Protocol):
    def bound(self, system_id: str | None = None) -> list[BoundSession]: ...


class Presence:
    def __init__(
        self, store: NodeStore, local: LocalSessions, *, node: str, node_id: int,
        shared: bool, heartbeat_interval: float, ttl: float,
        changes: ChangeFeed | None = None,
    ) -> None:
        self._store = store
        self._local = local
        self._changes = changes
        self.node = node
        self._node_id = node_id
        self.shared = shared
        self._interval = heartbeat_interval
        self._ttl = timedelta(seconds=ttl)
        # session -> its id, "<node>/<session number>", for every bound session
        self._ids: dict[BoundSession, str] = {}
        # session -> its id in the store (shared stores only)
        self._registered: dict[BoundSession, str] = {}
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Set when a heartbeat failed: the next one that gets through registers every
        # session again (another node may have cleared them as those of a gone node).
        self._stale = False

    async def start(self) -> None:
        """Register this node; before the listeners start, as it clears the sessions
        a previous run left under the same name."""
        info = NodeInfo(self.node, self._node_id, socket.gethostname(), os.getpid(), "")
        sessions, held = await self._store.register(info, _now())
        if sessions or held:
            log.info("cleared what a previous run of %s left: %d sessions, %d deliveries "
                     "it held", self.node, sessions, held)
        self._task = asyncio.get_running_loop().create_task(
            self._beat(), name="smppgw-heartbeat")
        if self._changes is not None:
            self._changes.listen(self._heard)

    async def listening(self, smpp: str) -> None:
        await self._store.listening(self.node, smpp)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self._store.stopped(self.node, _now())
        except _STORE_ERRORS as exc:
            log.warning("could not record the stop of %s: %s", self.node, exc)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                if self._stale:
                    await self._register_all()
                removed = await self._store.heartbeat(self.node, _now(), self._ttl)
            except _STORE_ERRORS as exc:
                if not self._stale:
                    log.warning("heartbeat of %s not written: %s", self.node, exc)
                self._stale = True
                continue
            if self._stale:
                log.info("heartbeat of %s written again", self.node)
                self._stale = False
            if removed:
                log.info("removed %d sessions of nodes gone silent", removed)

    async def _register_all(self) -> None:
        now = _now()
        for session, session_id in list(self._registered.items()):
            await self._store.unbind(session_id)
            await self._store.bind(session_id, self.node, session.account.id,
                                   session.bind_type, session.peer, now,
                                   limit=1 << 30, ttl=self._ttl)

    # --- binds ----------------------------------------------------------------------

    async def bind(self, session: BoundSession, account: Account, bind_type: str) -> bool:
        """Whether the cluster has room for this bind (registered if so); always True
        on a store of one node, where the local limits decide."""
        session_id = f"{self.node}/{session.number}"
        self._ids[session] = session_id
        if not self.shared:
            return True
        if self._tasks:
            # Unbinds of this node still being written: a client that reconnects at once
            # must not find its own previous session counted.
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        try:
            ok = await self._store.bind(session_id, self.node, account.id, bind_type,
                                        session.peer, _now(), limit=account.bind_limit,
                                        ttl=self._ttl)
        except _STORE_ERRORS as exc:
            log.warning("%s: bind of %s not registered in the store (%s); the local count "
                        "decided", session.peer, account.system_id, exc)
            self._stale = True
            ok = True
        if ok:
            self._registered[session] = session_id
        else:
            self._ids.pop(session, None)
        return ok

    def unbound(self, session: BoundSession) -> None:
        """The session left: its registration goes, in the background."""
        self._ids.pop(session, None)
        session_id = self._registered.pop(session, None)
        if session_id is None:
            return
        task = asyncio.get_running_loop().create_task(self._unbind(session_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _unbind(self, session_id: str) -> None:
        try:
            await self._store.unbind(session_id)
        except _STORE_ERRORS as exc:
            # Left in the store: it counts until the node's next start, or until a
            # heartbeat that registers everything again.
            log.warning("unbind of %s not written to the store: %s", session_id, exc)
            self._stale = True

    # --- what the operator sees and does ---------------------------------------------------

    async def nodes(self) -> list[dict[str, Any]]:
        """Every node the store knows, with its state, heartbeat and sessions."""
        rows = await self._store.list(_now(), self._ttl)
        for row in rows:
            if row["name"] == self.node:
                # This node knows its own sessions best (on SQLite none are in the store).
                row["sessions"] = len(self._local.bound())
                row["this"] = True
        return rows

    async def sessions(self, system_id: str | None = None) -> list[dict[str, Any]]:
        """The bound sessions of the whole cluster (of one account, or of all): this
        node's, then those the store holds for the other live nodes."""
        found = [
            {"id": self._ids.get(s), "node": self.node, "system_id": s.system_id,
             "peer": s.peer, "bind_type": s.bind_type, "tls": s.tls}
            for s in self._local.bound(system_id)
        ]
        if self.shared:
            for row in await self._store.sessions(_now(), self._ttl, besides=self.node,
                                                  system_id=system_id):
                found.append({"id": row["id"], "node": row["node"],
                              "system_id": row["system_id"], "peer": row["peer"],
                              "bind_type": row["bind_type"], "tls": None})
        return found

    async def bound_counts(self) -> dict[str, int]:
        """system_id -> sessions bound on the cluster."""
        counts: dict[str, int] = {}
        for session in await self.sessions():
            counts[session["system_id"]] = counts.get(session["system_id"], 0) + 1
        return counts

    async def kick(self, system_id: str) -> int:
        """Unbind every session of the account, on every node; returns how many."""
        elsewhere = [s for s in await self.sessions(system_id) if s["node"] != self.node]
        here = self._unbind_here(system_id)
        if elsewhere and self._changes is not None:
            await self._changes.publish(unbind_notice(system_id))
        return here + len(elsewhere)

    async def kick_session(self, session_id: str) -> dict[str, Any] | None:
        """Unbind the one session `session_id` (as `sessions` lists it), on whichever
        node holds it; the session as it was listed, or None if no live node has it."""
        here = self._session_here(session_id)
        if here is not None:
            here.request_unbind()
            return {"id": session_id, "node": self.node, "system_id": here.system_id,
                    "peer": here.peer, "bind_type": here.bind_type}
        if not self.shared or self._changes is None:
            return None
        for row in await self.sessions():
            if row["id"] == session_id and row["node"] != self.node:
                await self._changes.publish(kick_notice(session_id))
                return {k: row[k] for k in ("id", "node", "system_id", "peer", "bind_type")}
        return None

    def _session_here(self, session_id: str) -> BoundSession | None:
        for session, known in self._ids.items():
            if known == session_id:
                return session
        return None

    def _unbind_here(self, system_id: str) -> int:
        sessions = self._local.bound(system_id)
        for session in sessions:
            session.request_unbind()
        return len(sessions)

    def _heard(self, payload: str) -> None:
        if payload.startswith(KICK_PREFIX):
            session = self._session_here(payload[len(KICK_PREFIX):])
            if session is not None:
                log.info("unbinding session %s of %s, as another node asked",
                         payload[len(KICK_PREFIX):], session.system_id)
                session.request_unbind()
            return
        if payload.startswith(UNBIND_PREFIX):
            unbound = self._unbind_here(payload[len(UNBIND_PREFIX):])
            if unbound:
                log.info("unbound %d sessions of %s, as another node asked",
                         unbound, payload[len(UNBIND_PREFIX):])


def _now() -> datetime:
    return datetime.now(UTC)
