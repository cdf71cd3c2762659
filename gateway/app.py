"""The running gateway: wires the store, the account directory, the listeners, the
upstream, the dispatcher, the admin socket and the metrics endpoint together.

`Gateway` is created from one `Settings` object and owns everything it starts, so a
test can run a whole gateway in-process on free ports and stop it cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from auth.passwords import verify_password
from auth.throttle import BindThrottle
from config.settings import Settings
from gateway import operations
from gateway.accounts import Account, AccountDirectory
from gateway.admin import AdminServer
from gateway.dispatcher import Dispatcher
from gateway.ids import MessageIdGenerator
from gateway.metrics import GatewayMetrics, MetricsServer
from gateway.outbind import Outbinder
from gateway.outbox import CLAIM_LEASE, Outbox, outbox_node
from gateway.retention import RetentionJob
from gateway.states import RECEIVING_STATES
from gateway.submit import Submitter
from gateway.upstream.build import build_delivery
from pdu.codec import CommandId, Pdu
from pdu.status import CommandStatus
from store import tables
from store.accounts import AccountStore
from store.batcher import NewMessage, WriteBehindBatcher
from store.engine import make_engine, migrate
from store.inbound import InboundNumbers
from store.messages import MessageStore

if TYPE_CHECKING:
    from gateway.session import SmppSession

log = logging.getLogger(__name__)


@dataclass
class Endpoints:
    """Where a started gateway listens (ports resolved when 0 was asked for)."""

    smpp: tuple[str, int] | None = None
    tls: tuple[str, int] | None = None
    metrics: tuple[str, int] | None = None
    admin_socket: str = ""
    extra: dict = field(default_factory=dict)


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.sessions: set[SmppSession] = set()
        self._receivers: dict[int, list[SmppSession]] = {}
        self._bound: dict[int, set[SmppSession]] = {}
        self.throttle = BindThrottle()
        # Argon2 verification costs ~19 MiB and ~17 ms each: two at a time, in their own
        # threads, so a storm of binds neither balloons memory nor starves other work.
        self._auth_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")
        self.ids = MessageIdGenerator(settings.node_id)
        self.endpoints = Endpoints()
        self._servers: list[asyncio.base_events.Server] = []
        self._metrics_server: MetricsServer | None = None
        self.admin: AdminServer | None = None
        self._started = False
        self._keeper: asyncio.Task | None = None
        self.retention: RetentionJob | None = None
        # query_sm / cancel_sm / replace_sm handlers by command_id: async (gw, account, pdu).
        self.operations: dict = {}

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> Endpoints:
        s = self.settings
        url = s.effective_database_url
        await migrate(url)
        self.engine = make_engine(url, sqlite_synchronous=s.sqlite_synchronous)
        self.account_store = AccountStore(self.engine)
        self.messages = MessageStore(self.engine)
        self.accounts = AccountDirectory(self.account_store, s)
        await self.accounts.load()
        await self._floor_message_ids()
        self.batcher = WriteBehindBatcher(
            self.engine, max_batch=s.batch_max_size, max_delay=s.batch_max_delay_ms / 1000,
            claim_for=(outbox_node(s.node_id), CLAIM_LEASE),
        )
        await self.batcher.start()
        self.dispatcher = Dispatcher(self)
        self.dispatcher.start()
        self.outbinder = Outbinder(self)
        self.inbound = InboundNumbers(self.engine)
        self.connectors, self.router = build_delivery(s, self.dispatcher.on_deliver)
        self.dispatcher.connectors = self.connectors
        self.outbox = Outbox(self, self.connectors, self.router)
        # The submit path's `gw.upstream.send(msg)` now only wakes the outbox.
        self.upstream = self.outbox
        self.submitter = Submitter(self)
        self.operations.update(
            {
                CommandId.QUERY_SM: operations.query_sm,
                CommandId.CANCEL_SM: operations.cancel_sm,
                CommandId.REPLACE_SM: operations.replace_sm,
            }
        )
        await self._start_delivery()
        await self._listen()
        self.admin = AdminServer(self, s.effective_admin_socket)
        await self.admin.start()
        self.endpoints.admin_socket = str(s.effective_admin_socket)
        if s.metrics_port >= 0:
            self._metrics_server = MetricsServer(self.metrics, s.metrics_host, s.metrics_port)
            self.endpoints.metrics = await self._metrics_server.start()
        self._keeper = asyncio.get_running_loop().create_task(self._keep_sessions())
        self.retention = RetentionJob(self.engine, s)
        self.retention.start()
        self._started = True
        return self.endpoints

    async def _keep_sessions(self) -> None:
        """Once a second: enquire_link on idle sessions, drop dead ones, age limits."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for session in list(self.sessions):
                try:
                    session.keep(now)
                except Exception:
                    log.exception("%s: session care failed", session.peer)

    async def _listen(self) -> None:
        from gateway.session import SmppSession

        s = self.settings
        loop = asyncio.get_running_loop()
        if s.smpp_port is not None and s.smpp_port >= 0:
            server = await loop.create_server(
                lambda: SmppSession(self), s.smpp_host, s.smpp_port, backlog=1024
            )
            self._servers.append(server)
            self.endpoints.smpp = server.sockets[0].getsockname()[:2]
        if s.tls_port is not None:
            context = make_tls_context(s)
            server = await loop.create_server(
                lambda: SmppSession(self, tls=True), s.smpp_host, s.tls_port, ssl=context,
                backlog=1024,
            )
            self._servers.append(server)
            self.endpoints.tls = server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        """Stop accepting, unbind every session, and commit all in-flight work."""
        if not self._started:
            return
        self._started = False
        if self._keeper is not None:
            self._keeper.cancel()
        if self.retention is not None:
            await self.retention.stop()
        for server in self._servers:
            server.close()
        for session in list(self.sessions):
            session.request_unbind()
        deadline = asyncio.get_running_loop().time() + self.settings.response_timeout
        while self.sessions and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            session.close()
        await self.batcher.stop()
        await self.outbox.stop()
        for connector in self.connectors.values():
            await connector.stop()
        await self.outbinder.stop()
        await self.dispatcher.stop()
        if self.admin is not None:
            await self.admin.stop()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
        await self.engine.dispose()
        self._auth_pool.shutdown(wait=False)

    async def _floor_message_ids(self) -> None:
        async with self.engine.connect() as conn:
            top = (await conn.execute(select(func.max(tables.messages.c.id)))).scalar()
        if top:
            self.ids.floor_at(int(top))

    async def _start_delivery(self) -> None:
        """Connectors, then the outbox, which finds accepted messages left by a crash."""
        for connector in self.connectors.values():
            await connector.start()
            if connector.in_process:
                # An in-process upstream forgot what it had taken: have it report again.
                rows = await self.outbox.store.enroute_with(connector.name)
                for row in rows:
                    connector.resume(NewMessage.from_row(row), row["upstream_id"])  # type: ignore[attr-defined]
                if rows:
                    log.info("%s: re-driving %d messages taken before the restart",
                             connector.name, len(rows))
        await self.outbox.start()

    # --- sessions --------------------------------------------------------------------

    async def authenticate(
        self, bind: Pdu, peer_ip: str, *, outbind_for: Account | None = None
    ) -> tuple[int, Account | None]:
        """Check a bind against system_id, source IP and password; never writes.

        On a connection the gateway dialled for outbind only that account may bind,
        and its address list does not apply: the gateway chose the peer.
        """
        system_id = bind.system_id
        keys = (f"ip:{peer_ip}", f"sid:{system_id}")
        if any(self.throttle.is_blocked(k) for k in keys):
            self.metrics.bind_failures.labels("throttled").inc()
            return CommandStatus.ESME_RBINDTHROTTLED, None
        account = self.accounts.get(system_id)
        if account is None or (outbind_for is not None and account is not outbind_for):
            return self._bind_failed(keys, "unknown_system_id", CommandStatus.ESME_RINVSYSID)
        if not account.active:
            return self._bind_failed(keys, "suspended", CommandStatus.ESME_RBINDFAIL)
        if outbind_for is None and not account.allow.allows(peer_ip):
            return self._bind_failed(keys, "ip_not_allowed", CommandStatus.ESME_RBINDFAIL)
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(
            self._auth_pool, verify_password, account.password_hash, bind.password
        )
        if not ok:
            return self._bind_failed(keys, "bad_password", CommandStatus.ESME_RINVPASWD)
        for key in keys:
            self.throttle.record_success(key)
        return CommandStatus.ESME_ROK, account

    def _bind_failed(self, keys: tuple[str, ...], reason: str, status: int) -> tuple[int, None]:
        for key in keys:
            self.throttle.record_failure(key)
        self.metrics.bind_failures.labels(reason).inc()
        if self.settings.uniform_bind_failure:
            status = CommandStatus.ESME_RBINDFAIL
        return status, None

    def on_session_bound(self, session: SmppSession) -> None:
        self._bound.setdefault(session.account.id, set()).add(session)
        if session.state in RECEIVING_STATES:
            self._receivers.setdefault(session.account.id, []).append(session)
            account_id = session.account.id
            asyncio.get_running_loop().create_task(self._resume(account_id))

    async def _resume(self, account_id: int) -> None:
        try:
            await self.dispatcher.resume_account(account_id)
        except Exception:
            log.exception("resuming deliveries for account %s failed", account_id)

    def on_session_unbound(self, session: SmppSession) -> None:
        if session.account is None:
            return
        bound = self._bound.get(session.account.id)
        if bound is not None:
            bound.discard(session)
            if not bound:
                del self._bound[session.account.id]
        receivers = self._receivers.get(session.account.id)
        if receivers and session in receivers:
            receivers.remove(session)
            if not receivers:
                del self._receivers[session.account.id]

    def bind_slot_free(self, account: Account, state) -> bool:
        """The account's bind limit: at most `bind_limit` sessions able to transmit and
        `bind_limit` able to receive (a transceiver counts as both)."""
        from gateway.states import TRANSMITTING_STATES

        tx = rx = 0
        for session in self.bound_sessions(account.system_id):
            if session.state in TRANSMITTING_STATES:
                tx += 1
            if session.state in RECEIVING_STATES:
                rx += 1
        limit = account.bind_limit
        wants_tx = state in TRANSMITTING_STATES
        wants_rx = state in RECEIVING_STATES
        return not ((wants_tx and tx >= limit) or (wants_rx and rx >= limit))

    def congestion(self, session: SmppSession) -> int:
        """SMPP 5.0 congestion_state for a session, 0 (idle) to 100 (congested): the
        fuller of its own window and of the next group commit, so a client sees load
        rising before it is throttled."""
        window = session.outstanding_submits / max(session.window, 1)
        commits = self.batcher.pending / max(self.settings.batch_max_size, 1)
        return min(100, round(100 * max(window, commits)))

    def receiver_for(self, account_id: int) -> SmppSession | None:
        """The least-loaded RX/TRX session of an account, if any is bound."""
        candidates = [s for s in self._receivers.get(account_id, ()) if s.can_receive]
        if not candidates:
            return None
        return min(candidates, key=lambda s: s.delivery_load)

    def accounts_with_receivers(self) -> list[int]:
        return list(self._receivers)

    def bound_sessions(self, system_id: str | None = None) -> list[SmppSession]:
        if system_id is None:
            return [s for group in self._bound.values() for s in group]
        account = self.accounts.get(system_id)
        return list(self._bound.get(account.id, ())) if account is not None else []


def make_tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if settings.tls_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return context
