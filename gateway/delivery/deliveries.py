"""Receipts, MOs and alerts on their way to the customer's bound receivers.

A delivery is a ready deliver_sm body whose row waits in the store's `deliveries`
queue. It goes to the least-loaded receiver (RX/TRX) of its account; it leaves the queue
when the ESME answers deliver_sm_resp with status 0; a refusal or a lost connection
leaves it pending for the next bind or the periodic sweep, until it expires (7 days by
default). No receiver bound: the account's outbind address is dialled, if it has one.

Several nodes on one store: a node gives a delivery to a receiver only while it holds
it (deliveries.claimed_by, for `lease`), so it is given once whatever the number of
receivers on the nodes. A delivery produced where the account has a receiver is written
held by that node and sent from memory; one produced elsewhere is written free, and a
notice (store.changes) wakes the nodes, which take it if they have a receiver. A node
that dies holding deliveries leaves them to the others when the lease ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from pdu.codec import AlertNotification, Pdu
from pdu.tlv import Tag, int_tlv
from store.changes import deliver_accounts, deliver_notice
from store.writer import DeliveryRow

if TYPE_CHECKING:
    from gateway.metrics import GatewayMetrics
    from store.alerts import AlertStore
    from store.changes import ChangeFeed
    from store.messages import MessageStore
    from store.writer import Then

log = logging.getLogger(__name__)

# Longer than any store read of due deliveries can take.
SETTLED_MEMORY = 120.0
MS_AVAILABLE = 0  # ms_availability_status (SMPP 3.4 5.3.2.30)


@dataclass(slots=True)
class PendingDelivery:
    id: int
    account_id: int
    kind: str  # dlr | mo
    body: bytes
    # Loop time the upstream's receipt was read (0: unknown, e.g. read back from the
    # store after a restart), for the DLR latency histogram.
    received_at: float = 0.0


class Receiver(Protocol):
    def deliver(self, delivery: PendingDelivery) -> None: ...
    def alert(self, pdu: Pdu) -> None: ...


class Receivers(Protocol):
    def receiver_for(self, account_id: int) -> Receiver | None: ...
    def accounts_with_receivers(self) -> list[int]: ...


class AckWriter(Protocol):
    def delivered(
        self, delivery_id: int, *, then: Then | None = None
    ) -> asyncio.Future[None] | None: ...
    def reschedule(
        self, delivery_id: int, next_attempt_at: datetime, *, then: Then | None = None
    ) -> asyncio.Future[None] | None: ...


class Deliveries:
    def __init__(
        self,
        writer: AckWriter,
        messages: MessageStore,
        alerts: AlertStore,
        receivers: Receivers,
        metrics: GatewayMetrics,
        *,
        want_outbind: Callable[[int], None],
        retry_interval: float,
        node: str = "node-0",
        lease: timedelta = timedelta(seconds=60),
        changes: ChangeFeed | None = None,
    ) -> None:
        self._writer = writer
        self._messages = messages
        self._alerts = alerts
        self._receivers = receivers
        self._metrics = metrics
        self._want_outbind = want_outbind
        self._retry_interval = retry_interval
        # Deliveries handed to a session, or acknowledged but not yet marked in the
        # store: a reload from the store must not send them again.
        self._in_flight: set[int] = set()
        self._settled: dict[int, float] = {}  # delivery id -> loop time its state committed
        self._sweeper: asyncio.Task[None] | None = None
        self._resuming: set[asyncio.Task[Any]] = set()
        self.node = node
        self.lease = lease
        self._changes = changes
        # Accounts whose resume is running, and those to resume once more after it.
        self._resume_running: set[int] = set()
        self._resume_again: set[int] = set()
        # Accounts whose free deliveries the other nodes are to hear of, this loop turn.
        self._to_wake: set[int] = set()

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
        if self._changes is not None:
            self._changes.listen(self._heard)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        for task in list(self._resuming):
            task.cancel()
        await asyncio.gather(*self._resuming, return_exceptions=True)

    @property
    def in_flight(self) -> int:
        """Deliveries with a session, or acknowledged and not yet marked in the store."""
        return len(self._in_flight)

    # --- new deliveries: held here, or left to the node with a receiver -----------------

    def new_row(
        self, delivery_id: int, account_id: int, message_id: int | None, kind: str,
        body: bytes, created_at: datetime, expires_at: datetime,
    ) -> DeliveryRow:
        """The row of a new receipt or MO: held by this node when a receiver of the
        account is bound here (given from memory once committed), else free."""
        held = self._receivers.receiver_for(account_id) is not None
        return DeliveryRow(
            id=delivery_id, account_id=account_id, message_id=message_id, kind=kind,
            body=body, created_at=created_at,
            next_attempt_at=datetime.now(UTC) + self.lease if held else created_at,
            expires_at=expires_at, claimed=held,
        )

    def committed(self, row: DeliveryRow, received_at: float = 0.0) -> None:
        """A new delivery's row is durable: give it to a receiver if this node holds it;
        otherwise wake whichever node has a receiver (this one included)."""
        if row.claimed:
            self.route(PendingDelivery(row.id, row.account_id, row.kind, row.body,
                                       received_at))
        else:
            self.wake(row.account_id)

    def wake(self, account_id: int) -> None:
        """Free deliveries of the account wait in the store: a receiver bound here takes
        them now; the other nodes are told (one notice per loop turn for all)."""
        if self._receivers.receiver_for(account_id) is not None:
            self.receiver_bound(account_id)
        if self._changes is None or not self._changes.shared:
            return
        if not self._to_wake:
            asyncio.get_running_loop().call_soon(self._send_wakes)
        self._to_wake.add(account_id)

    def _send_wakes(self) -> None:
        accounts, self._to_wake = self._to_wake, set()
        if accounts and self._changes is not None:
            self._spawn(self._changes.publish(deliver_notice(accounts)))

    def _heard(self, payload: str) -> None:
        for account_id in deliver_accounts(payload):
            if self._receivers.receiver_for(account_id) is not None:
                self.receiver_bound(account_id)

    # --- to a receiver -------------------------------------------------------------

    def route(self, delivery: PendingDelivery) -> bool:
        """Give a delivery to a bound receiver of its account; False if none is bound
        (it stays in the store, and outbind is tried)."""
        session = self._receivers.receiver_for(delivery.account_id)
        if session is None:
            # Let go of it at once: another node may have a receiver of the account.
            self._writer.reschedule(delivery.id, datetime.now(UTC),
                                    then=partial(self._let_go, delivery))
            self._want_outbind(delivery.account_id)
            return False
        self._in_flight.add(delivery.id)
        session.deliver(delivery)
        return True

    def acknowledged(self, delivery: PendingDelivery, status: int) -> None:
        if status == 0:
            self._metrics.deliveries.labels(delivery.kind, "delivered").inc()
            if delivery.received_at:
                self._metrics.dlr_latency.observe(
                    asyncio.get_running_loop().time() - delivery.received_at
                )
            self._writer.delivered(delivery.id, then=partial(self._settle, delivery.id))
        else:
            self._metrics.deliveries.labels(delivery.kind, "refused").inc()
            later = datetime.now(UTC) + timedelta(seconds=self._retry_interval)
            self._writer.reschedule(delivery.id, later, then=partial(self._settle, delivery.id))

    def returned(self, deliveries: Iterable[PendingDelivery]) -> None:
        """A session went away with these unacknowledged: try another, else the store."""
        for delivery in deliveries:
            self._in_flight.discard(delivery.id)
            self.route(delivery)

    def _let_go(self, delivery: PendingDelivery, _: object,
                error: BaseException | None) -> None:
        self._in_flight.discard(delivery.id)
        if error is None:
            self.wake(delivery.account_id)

    def _settle(self, delivery_id: int, _: object, error: BaseException | None) -> None:
        # A store read that started before this commit may still list it as due;
        # remembering when it settled lets resume() ignore such a stale row.
        self._in_flight.discard(delivery_id)
        self._settled[delivery_id] = asyncio.get_running_loop().time()

    # --- what waited in the store ------------------------------------------------------

    def receiver_bound(self, account_id: int) -> None:
        """A receiver of the account just bound (or deliveries for it are said to wait):
        send it what waits. One resume per account at a time; asked again meanwhile, it
        runs once more after."""
        if account_id in self._resume_running:
            self._resume_again.add(account_id)
            return
        self._resume_running.add(account_id)
        self._spawn(self._resume_logged(account_id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._resuming.add(task)
        task.add_done_callback(self._resuming.discard)

    async def _resume_logged(self, account_id: int) -> None:
        try:
            while True:
                self._resume_again.discard(account_id)
                try:
                    await self.resume(account_id)
                except Exception:
                    log.exception("resuming deliveries for account %s failed", account_id)
                if account_id not in self._resume_again:
                    return
        finally:
            self._resume_running.discard(account_id)

    async def resume(self, account_id: int) -> int:
        """Send what waits in the store for an account that has a receiver bound."""
        now = datetime.now(UTC)
        await self.send_alerts(account_id, await self._alerts.alerted(account_id, now))
        if self._receivers.receiver_for(account_id) is None:
            return 0  # nothing is taken that could not be given now
        started = asyncio.get_running_loop().time()
        rows = await self._messages.claim_deliveries(account_id, self.node, now, self.lease,
                                                     1000)
        sent = 0
        for row in rows:
            if row["id"] in self._in_flight or self._settled.get(row["id"], -1.0) >= started:
                continue
            delivery = PendingDelivery(row["id"], account_id, row["kind"], bytes(row["body"]))
            # The receiver may have gone meanwhile: route() lets go of each then.
            if self.route(delivery):
                sent += 1
        return sent

    async def _sweep_forever(self) -> None:
        interval = self._retry_interval
        while True:
            await asyncio.sleep(interval)
            horizon = asyncio.get_running_loop().time() - SETTLED_MEMORY
            self._settled = {k: t for k, t in self._settled.items() if t >= horizon}
            try:
                await self.sweep()
            except Exception:
                log.exception("delivery sweep failed")

    async def sweep(self) -> None:
        """Expire what is too old, send what is due to bound receivers, dial outbind
        for accounts that have something due and no receiver."""
        now = datetime.now(UTC)
        await self._alerts.purge_expired(now)
        expired = await self._messages.expire_deliveries(now)
        if expired:
            log.warning("%d deliveries expired undelivered", expired)
            self._metrics.deliveries.labels("any", "expired").inc(expired)
        for account_id in self._receivers.accounts_with_receivers():
            await self.resume(account_id)
        for account_id in await self._messages.accounts_waiting(now):
            if self._receivers.receiver_for(account_id) is None:
                self._want_outbind(account_id)

    # --- alert_notification (SMPP 3.4 section 4.12) ------------------------------------

    async def send_alerts(self, account_id: int, rows: list[dict[str, Any]]) -> None:
        """alert_notification for these requests to a bound receiver of the account; they
        wait for its next bind when none is bound."""
        session = self._receivers.receiver_for(account_id)
        if session is None or not rows:
            return
        for row in rows:
            session.alert(AlertNotification(
                source_addr_ton=row["ms_ton"], source_addr_npi=row["ms_npi"],
                source_addr=row["ms_addr"], esme_addr_ton=row["esme_ton"],
                esme_addr_npi=row["esme_npi"], esme_addr=row["esme_addr"],
                tlvs=[int_tlv(Tag.MS_AVAILABILITY_STATUS, MS_AVAILABLE)],
            ))
            self._metrics.deliveries.labels("alert", "delivered").inc()
        await self._alerts.sent(row["id"] for row in rows)
