"""Change notices between the nodes of one PostgreSQL store: what changed, never the data.

A node that changes the directory (an account, its credentials, IPs, senders, STOP list,
settings, the rates) says so with `publish`; every node, itself included, hears it
through `ChangeFeed.listen` and re-reads what the notice names from the store, which
stays the truth. PostgreSQL delivers a NOTIFY only to sessions listening when it is
committed, so a listener that lost its connection hears ``RELOAD_ALL`` once it is back:
whatever it missed, it reads again. On SQLite (one node) nothing is sent or heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from store.engine import asyncpg_dsn

log = logging.getLogger(__name__)

CHANNEL = "smppgw_directory"
# Payloads: "account:<system_id>", "rates", "deliver:<account id>,...",
# "unbind:<system_id>", "kick:<session id>", "bindfail:<JSON>", and, from a listener to
# itself, RELOAD_ALL.
RELOAD_ALL = "*"
_MAX_PAYLOAD = 7999  # PostgreSQL refuses longer NOTIFY payloads


def account_notice(system_id: str) -> str:
    return f"account:{system_id}"


RATES_CHANGED = "rates"
DELIVER_PREFIX = "deliver:"


def deliver_notice(account_ids: Iterable[int]) -> str:
    """Receipts or MOs wait in the store for these accounts: the node holding one of
    their receivers takes them."""
    return DELIVER_PREFIX + ",".join(str(a) for a in sorted(account_ids))


UNBIND_PREFIX = "unbind:"
# "bindfail:" + JSON {"node": name, "failed": [[system_id, address, listed], ...]}
BIND_FAILURES_PREFIX = "bindfail:"


def unbind_notice(system_id: str) -> str:
    """Every node unbinds the account's sessions (suspended, or its password rotated)."""
    return UNBIND_PREFIX + system_id


KICK_PREFIX = "kick:"


def kick_notice(session_id: str) -> str:
    """The node holding the session `session_id` ("<node>/<number>") unbinds it."""
    return KICK_PREFIX + session_id


def deliver_accounts(payload: str) -> list[int]:
    """The account ids of a deliver_notice (none if it is some other notice)."""
    if not payload.startswith(DELIVER_PREFIX):
        return []
    return [int(a) for a in payload[len(DELIVER_PREFIX):].split(",") if a.isdigit()]


class ChangeFeed:
    """Publish and hear directory changes on `engine`'s database (PostgreSQL only)."""

    def __init__(self, engine: AsyncEngine, *, retry_max: float = 5.0) -> None:
        self._engine = engine
        self.shared = engine.dialect.name == "postgresql"
        self._retry_max = retry_max
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[str], None]] = []
        self.connected = asyncio.Event()

    async def publish(self, payload: str) -> None:
        """Tell every node (this one too) that `payload` changed. A failure is logged,
        not raised: the change is committed, and the nodes' periodic reload will see it."""
        if not self.shared:
            return
        try:
            async with self._engine.begin() as conn:
                await conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"),
                                   {"channel": CHANNEL, "payload": payload[:_MAX_PAYLOAD]})
        except (OSError, sa.exc.SQLAlchemyError) as exc:
            log.warning("could not tell the other nodes that %s changed: %s", payload, exc)

    def listen(self, on_change: Callable[[str], None]) -> None:
        """Call `on_change(payload)` for every notice, in the event loop, until `close`;
        RELOAD_ALL each time the listening connection is (re)established after a loss.
        Several listeners share one connection."""
        if not self.shared:
            return
        self._listeners.append(on_change)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._listen(self._tell), name="smppgw-change-feed")

    def _tell(self, payload: str) -> None:
        for on_change in list(self._listeners):
            try:
                on_change(payload)
            except Exception:  # one listener's bug must not keep the others from hearing
                log.exception("a listener of directory changes failed on %r", payload)

    async def close(self) -> None:
        task, self._task = self._task, None
        self._listeners.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self, on_change: Callable[[str], None]) -> None:
        import asyncpg

        dsn = asyncpg_dsn(self._engine.url)
        delay = 0.2
        first = True
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(dsn, timeout=10)
                lost = asyncio.get_running_loop().create_future()
                conn.add_termination_listener(
                    lambda _c, lost=lost: lost.done() or lost.set_result(None))
                await conn.add_listener(
                    CHANNEL, lambda _c, _pid, _channel, payload: on_change(payload))
                self.connected.set()
                if not first:
                    log.info("listening for directory changes again")
                    on_change(RELOAD_ALL)
                first = False
                delay = 0.2
                await lost
                log.warning("lost the connection that hears directory changes; reconnecting")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("cannot listen for directory changes (%s); retrying in %.1f s",
                            exc, delay)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), 2)
            first = False
            await asyncio.sleep(delay)
            delay = min(self._retry_max, delay * 2)
