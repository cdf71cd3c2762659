"""The composition root: one gateway node built from one `Settings`.

Every component is constructed here, once, with the few collaborators it uses; none of
them imports this module (only the command line does). `start()` does what needs the
event loop and the database (migrations, loading the accounts, opening ports);
`stop()` unbinds everyone and commits all in-flight work. A test can run a whole
gateway in-process on free ports and stop it cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from auth.throttle import BindGuard, BindLimits
from config.settings import Settings
from gateway.accounts import AccountDirectory
from gateway.admin.context import AdminContext
from gateway.admin.server import AdminServer
from gateway.delivery.deliveries import Deliveries
from gateway.delivery.inbound import Inbound
from gateway.delivery.outbox import Outbox, outbox_node
from gateway.delivery.outcomes import Outcomes
from gateway.delivery.retention import RetentionJob
from gateway.ids import MessageIdGenerator
from gateway.mail import Mailer
from gateway.metrics import GatewayMetrics, MetricsServer
from gateway.sessions.auth import Authenticator
from gateway.sessions.listeners import Listeners
from gateway.sessions.outbind import Outbinder
from gateway.sessions.presence import Presence
from gateway.sessions.registry import SessionRegistry
from gateway.sessions.session import CustomerSession, SessionServices
from gateway.sessions.shared_throttle import SharedThrottle
from gateway.submit.operations import Operations
from gateway.submit.pipeline import Submitter
from gateway.upstream.base import Connector, HandOvers
from gateway.upstream.build import connector_factory, initial_delivery
from gateway.upstream.control import UpstreamControl
from gateway.upstream.router import Router
from gateway.upstream.stats import UpstreamCollector
from gateway.web.app import Listening, WebContext, build_app
from gateway.web.server import WebServer
from pdu.link import LinkConfig, Role
from store import tables
from store.accounts import AccountStore
from store.alerts import AlertStore
from store.audit import AuditStore
from store.changes import ChangeFeed
from store.customers import CustomerStore
from store.engine import make_engine, migrate, require_schema_at_head, revisions_text, schema_state
from store.history import HistoryStore
from store.inbound import InboundNumbers
from store.ledger import LedgerStore
from store.messages import MessageStore
from store.nodes import NodeStore
from store.outbox import OutboxStore
from store.rates import RateStore
from store.senders import SenderStore
from store.stop_list import StopListStore
from store.upstreams import UpstreamStore
from store.writer import NewMessage, StoreWriter

log = logging.getLogger(__name__)

# deliver_sm the gateway keeps outstanding per customer session.
DELIVER_WINDOW = 10
# /readyz: a store slower than this to answer `SELECT 1` is reported not ready.
READINESS_STORE_TIMEOUT = 2.0


@dataclass
class Endpoints:
    """Where a started gateway listens (ports resolved when 0 was asked for)."""

    smpp: tuple[str, int] | None = None
    tls: tuple[str, int] | None = None
    metrics: tuple[str, int] | None = None
    web: tuple[str, int] | None = None
    admin_socket: str = ""
    extra: dict = field(default_factory=dict)


class Gateway:
    def __init__(self, settings: Settings) -> None:
        s = settings
        self.settings = s
        self.endpoints = Endpoints()
        self.metrics = GatewayMetrics()
        self.engine = make_engine(s.effective_database_url, sqlite_synchronous=s.sqlite_synchronous)
        engine = self.engine

        # The store: repositories, and the one writer of accepted messages.
        self.account_store = AccountStore(engine)
        rates, ledger = RateStore(engine), LedgerStore(engine)
        stop_list, audit = StopListStore(engine), AuditStore(engine)
        self.messages = MessageStore(engine)
        self.outbox_store = OutboxStore(engine)
        self.alert_store = AlertStore(engine)
        self.inbound_numbers = InboundNumbers(engine)
        self.writer = StoreWriter(
            s.effective_database_url, node=outbox_node(s.node_id),
            claim_lease=timedelta(seconds=s.outbox_claim_lease),
            sqlite_synchronous=s.sqlite_synchronous, max_batch=s.batch_max_size,
            on_commit=self.metrics.committed,
        )

        # Accounts in memory, what the hot path reads.
        self.mailer = Mailer(s)
        # What the nodes on one PostgreSQL tell each other (nothing on SQLite).
        self.changes = ChangeFeed(engine)
        self.accounts = AccountDirectory(
            s, accounts=self.account_store, rates=rates, ledger=ledger, stop_list=stop_list,
            audit=audit, metrics=self.metrics, mailer=self.mailer,
            changes=self.changes, balance_source=self.writer,
        )
        # Every commit tells the directory the balances it left (other nodes' included).
        self.writer.on_balances = self.accounts.balances_committed
        self.ids = MessageIdGenerator(s.node_id)
        self.handovers = HandOvers()
        batch = s.batch_max_size

        # Delivery: receipts and MOs to the customers, outcomes, what upstreams send.
        # The registry, the deliveries and outbind name each other through callbacks.
        self.sessions = SessionRegistry(
            on_receiver_bound=lambda account_id: self.deliveries.receiver_bound(account_id),
            max_connections=s.max_connections, max_connections_per_ip=s.max_connections_per_ip,
        )
        # This node among the others on the store: heartbeat, binds counted everywhere.
        self.presence = Presence(
            NodeStore(engine), self.sessions, node=outbox_node(s.node_id), node_id=s.node_id,
            shared=self.accounts.shared, heartbeat_interval=s.node_heartbeat_interval,
            ttl=s.node_ttl, changes=self.changes,
        )
        self.deliveries = Deliveries(
            self.writer, self.messages, self.alert_store, self.sessions, self.metrics,
            want_outbind=lambda account_id: self.outbinder.want(account_id),
            retry_interval=s.dlr_retry_interval, node=outbox_node(s.node_id),
            lease=timedelta(seconds=s.delivery_claim_lease), changes=self.changes,
        )
        self.outcomes = Outcomes(
            self.writer, self.accounts, self.deliveries, self.ids,
            alert_ttl=timedelta(seconds=s.dlr_max_age),
        )
        self.inbound = Inbound(
            self.writer, self.messages, self.inbound_numbers, self.alert_store, self.handovers,
            self.accounts, self.outcomes, self.deliveries, self.ids, self.metrics,
            batch_size=batch,
        )

        # Upstreams and the outbox that feeds them. What runs is what the store holds
        # (the configuration fills an empty store); operators change it at run time.
        self.connectors: dict[str, Connector] = {}
        self.router = Router([])
        self.upstreams = UpstreamControl(
            UpstreamStore(engine), initial_delivery(s),
            connector_factory(self.inbound.on_deliver, self.inbound.receipt, self.handovers),
            self.connectors, self.router, self.changes, on_started=self._upstream_started,
            drain=s.response_timeout, node_id=s.node_id,
        )
        self.metrics.registry.register(UpstreamCollector(lambda: list(self.connectors.values())))
        self.outbox = Outbox(
            self.writer, self.outbox_store, self.connectors, self.router, self.accounts, self.outcomes,
            self.metrics, node_id=s.node_id, retry_min=s.outbox_retry_min,
            retry_max=s.outbox_retry_max, claim_lease=timedelta(seconds=s.outbox_claim_lease),
        )

        # The submit path.
        validity = timedelta(seconds=s.default_validity), timedelta(seconds=s.max_validity)
        self.submitter = Submitter(
            self.accounts, self.router, self.ids, self.writer, self.outcomes, self.metrics,
            on_committed=self.outbox.committed, default_validity=validity[0],
            max_validity=validity[1],
        )
        self.operations = Operations(
            self.messages, self.outbox_store, self.accounts, self.outcomes, self.metrics,
            on_changed=self.outbox.notify, default_validity=validity[0],
            max_validity=validity[1],
        )

        # Customer sessions.
        self.authenticator = Authenticator(
            self.accounts, self.metrics, uniform_failure=s.uniform_bind_failure,
            limits=_bind_limits(s),
            checks_pending=s.bind_checks_pending,
        )
        # Failed binds counted on every node (nothing to share on SQLite).
        self.shared_throttle = SharedThrottle(self.authenticator.guard, self.changes,
                                              node=outbox_node(s.node_id))
        self.authenticator.on_failure = self.shared_throttle.failed
        services = SessionServices(
            link_config=LinkConfig(
                role=Role.SMSC, max_pdu_size=s.max_pdu_size, window_in=s.default_window,
                window_out=DELIVER_WINDOW, response_timeout=s.response_timeout,
                enquire_link_interval=s.enquire_link_interval, bind_timeout=s.bind_timeout,
                max_age=s.session_max_age, max_unsent_bytes=s.max_unsent_bytes,
            ),
            throughput=s.default_throughput, authenticator=self.authenticator,
            registry=self.sessions, presence=self.presence, submits=self.submitter, operations=self.operations,
            deliveries=self.deliveries, metrics=self.metrics,
            commit_pressure=lambda: self.writer.pending / batch,
        )
        self.outbinder = Outbinder(
            self.accounts, self.sessions, self.messages, self.alert_store,
            session_factory=lambda account: CustomerSession(services, outbind_for=account),
            connect_timeout=s.response_timeout,
        )
        self.listeners = Listeners(s, lambda tls: CustomerSession(services, tls=tls))

        # The operator's surface.
        self.admin_context = AdminContext(
            settings=s, accounts=self.account_store, senders=SenderStore(engine),
            stop_list=stop_list, ledger=ledger, audit=audit, rates=rates,
            history=HistoryStore(engine), directory=self.accounts, sessions=self.presence,
            mailer=self.mailer, customers=CustomerStore(engine),
            inbound_numbers=self.inbound_numbers, upstreams=self.upstreams,
        )
        self.admin = AdminServer(self.admin_context, s.effective_admin_socket)
        # The customer area, over the same operations; built once the listeners are up
        # (it shows where they are).
        self.web_server: WebServer | None = None
        self.metrics_server = (
            MetricsServer(self.metrics, s.metrics_host, s.metrics_port, self._readiness)
            if s.metrics_port >= 0 else None
        )
        self.retention = RetentionJob(engine, s)
        self._gauges()
        self._started = False

    def _gauges(self) -> None:
        """What the scrape reads of the components, at scrape time."""
        add = self.metrics.gauges.add
        add("smppgw_store_writer_queue", "Hot-path writes waiting for the next commit", [],
            lambda: [(self.writer.pending,)])
        add("smppgw_connections_open", "Customer SMPP connections open, bound or not", [],
            lambda: [(len(self.sessions.connections),)])
        add("smppgw_outbox_in_flight",
            "Messages handed to an upstream connector, its answer not yet received", [],
            lambda: [(self.outbox.in_flight,)])
        add("smppgw_receipts_awaited",
            "Messages handed to upstreams whose receipt is awaited in memory", [],
            lambda: [(len(self.handovers),)])
        add("smppgw_deliveries_in_flight",
            "Receipts and MOs sent to customers, their deliver_sm_resp not yet in", [],
            lambda: [(self.deliveries.in_flight,)])
        add("smppgw_upstream_link_up", "1 while an upstream connection is bound",
            ["upstream", "bind"],
            lambda: [(name, bind, int(up)) for name, c in self.connectors.items()
                     for bind, up in c.link_states()])
        # From the store (every node's, on a shared PostgreSQL), refreshed when scraped.
        counted: dict[str, Any] = {"outbox": 0, "deliveries": []}

        async def count_in_store() -> None:
            counted["outbox"] = await self.outbox_store.waiting()
            # Every kind and receiver shown, at 0 when nothing waits: a dashboard's series
            # must not vanish when the queue empties.
            waiting = {(kind, receiver): 0 for kind in tables.DELIVERY_KINDS
                       for receiver in ("bound", "away")}
            for account_id, kind, n in await self.messages.waiting_deliveries():
                receiver = "bound" if self.sessions.receiver_for(account_id) else "away"
                waiting[kind, receiver] = waiting.get((kind, receiver), 0) + n
            counted["deliveries"] = [(kind, receiver, n)
                                     for (kind, receiver), n in sorted(waiting.items())]

        self.metrics.gauges.add_refresher(count_in_store)
        add("smppgw_outbox_waiting",
            "MT messages in the store that no upstream has taken yet (due or scheduled)", [],
            lambda: [(counted["outbox"],)])
        add("smppgw_deliveries_waiting",
            "Receipts (dlr) and MOs in the store not yet acknowledged by the customer, by"
            " whether a receiver of the account is bound here (away: waiting for a bind)",
            ["kind", "receiver"], lambda: counted["deliveries"])

    async def _readiness(self) -> tuple[bool, dict[str, str]]:
        """What /readyz answers: the node takes traffic when it is started (not yet
        stopping), its SMPP listeners are open and its store answers a query quickly."""
        checks = {"store": "ok", "listeners": "ok"}
        if not self._started:
            checks["listeners"] = "not started, or stopping"
        elif self.listeners.plain is None and self.listeners.tls is None:
            checks["listeners"] = "no SMPP listener open"
        try:
            async with asyncio.timeout(READINESS_STORE_TIMEOUT):
                async with self.engine.connect() as conn:
                    await conn.execute(select(1))
        except TimeoutError:
            checks["store"] = f"no answer within {READINESS_STORE_TIMEOUT:g}s"
        except Exception as exc:  # noqa: BLE001 - any failure to reach the store is the answer
            # The driver's own error, first line: SQLAlchemy appends the SQL and a link.
            cause = getattr(exc, "orig", None) or exc
            checks["store"] = f"unreachable: {cause}".splitlines()[0][:200]
        return all(v == "ok" for v in checks.values()), checks

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> Endpoints:
        await self._prepare_schema()
        await self.accounts.load()
        self.accounts.follow(self.settings.directory_reload_interval)
        await self._floor_message_ids()
        await self.writer.start()
        self.deliveries.start()
        await self._start_upstreams()
        await self.presence.start()
        self.shared_throttle.start()
        await self.listeners.start()
        self.endpoints.smpp, self.endpoints.tls = self.listeners.plain, self.listeners.tls
        if self.endpoints.smpp is not None:
            host, port = self.endpoints.smpp
            await self.presence.listening(f"{host}:{port}")
        await self.admin.start()
        self.endpoints.admin_socket = str(self.settings.effective_admin_socket)
        if self.metrics_server is not None:
            self.endpoints.metrics = await self.metrics_server.start()
        if self.settings.web_port >= 0:
            self.web_server = self._web_server()
            self.endpoints.web = await self.web_server.start()
        self.retention.start()
        self._started = True
        return self.endpoints

    async def _prepare_schema(self) -> None:
        """Migrate the store (auto_migrate: SQLite by default), or refuse to start, with
        what to run, unless its schema is the one this code needs (SchemaNotAtHead)."""
        if self.settings.effective_auto_migrate:
            upgrade = await migrate(self.engine)
            if upgrade.applied:
                log.info("schema upgraded from %s to %s",
                         revisions_text(upgrade.before), revisions_text(upgrade.after))
            return
        require_schema_at_head(await schema_state(self.engine))

    def _web_server(self) -> WebServer:
        s = self.settings
        smpp_port = self.endpoints.smpp[1] if self.endpoints.smpp else None
        tls_port = self.endpoints.tls[1] if self.endpoints.tls else None
        app = build_app(WebContext(
            customers=self.admin_context.customers, admin=self.admin_context,
            guard=BindGuard(_bind_limits(s)), listening=Listening(s.smpp_host, smpp_port, tls_port),
            secure=s.tls_enabled, session_ttl=timedelta(seconds=s.web_session_ttl),
        ))
        return WebServer(app, s.web_host, s.web_port,
                         certfile=s.tls_cert if s.tls_enabled else None,
                         keyfile=s.tls_key if s.tls_enabled else None)

    async def _floor_message_ids(self) -> None:
        async with self.engine.connect() as conn:
            top = (await conn.execute(select(func.max(tables.messages.c.id)))).scalar()
        if top:
            self.ids.floor_at(int(top))

    async def _start_upstreams(self) -> None:
        """Connectors, then the outbox, which finds accepted messages left by a crash."""
        await self.upstreams.start()
        await self.outbox.start()

    async def _upstream_started(self, connector: Connector) -> None:
        """A connector started (at start, or by an operator): the outbox hears when it
        comes up, and an in-process upstream reports again what it had taken before."""
        connector.on_up = self.outbox.notify
        self.outbox.notify()
        if connector.in_process:
            # An in-process upstream forgot what it had taken: have it report again.
            rows = await self.outbox_store.enroute_with(connector.name)
            for row in rows:
                connector.resume(NewMessage.from_row(row), row["upstream_id"])  # type: ignore[attr-defined]
            if rows:
                log.info("%s: re-driving %d messages taken before the restart",
                         connector.name, len(rows))

    async def stop(self) -> None:
        """Stop accepting, unbind every session, and commit all in-flight work."""
        if not self._started:
            return
        self._started = False
        if self.web_server is not None:
            await self.web_server.stop()
        await self.retention.stop()
        self.listeners.close()
        connections = self.sessions.connections
        for session in list(connections):
            session.request_unbind()  # type: ignore[attr-defined]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.response_timeout
        while connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for session in list(connections):
            session.close("the gateway is stopping")  # type: ignore[attr-defined]
        await self.presence.stop()
        await self.outbox.stop()
        await self.upstreams.stop()
        await self.outbinder.stop()
        await self.inbound.drain()
        await self.deliveries.stop()
        # Last of the hot path: everything the others queued is committed.
        await self.writer.stop()
        await self.admin.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self.accounts.drain()
        await self.shared_throttle.stop()
        await self.accounts.unfollow()
        await self.engine.dispose()
        self.authenticator.close()


def _bind_limits(s: Settings) -> BindLimits:
    """Failed tries allowed per key: the same for SMPP binds and web panel logins."""
    return BindLimits(
        window=s.bind_fail_window, cooldown=s.bind_cooldown, per_pair=s.bind_fail_limit_pair,
        per_address=s.bind_fail_limit_ip, per_account=s.bind_fail_limit_account,
    )
