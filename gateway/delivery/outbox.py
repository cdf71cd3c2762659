"""The store-and-forward worker: accepted messages from the store to an upstream.

A message just committed is sent from memory (the store writer wrote it claimed for
this node); others are claimed from the store in batches (store.outbox). Each goes to
the first connector of its route that is up, and every answer becomes a store writer
operation: accepted -> ENROUTE with the upstream id, temporary error -> retry with
back-off, permanent error -> REJECTED with a failed DLR, validity past -> EXPIRED.
Nothing is held only in memory: a crash leaves messages ACCEPTED, and their claims
run out or are released at the next start.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from gateway.upstream.backoff import backoff_delay
from gateway.upstream.base import Connector, SubmitResult
from gateway.upstream.router import Router
from pdu.receipt import MessageState
from store.outbox import OutboxStore
from store.writer import NewMessage, Then, claimable

if TYPE_CHECKING:
    from gateway.accounts import AccountDirectory
    from gateway.delivery.outcomes import Outcomes
    from gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

# How long a claim holds unless the settings say otherwise (outbox_claim_lease).
CLAIM_LEASE = timedelta(seconds=60)
POLL_INTERVAL = 0.5  # how often the store is looked at when nobody says there is work
MAX_CLAIM = 1000
# When no connector of a route is up, look again this soon (not counted as an attempt).
NO_CONNECTOR_DELAY = 1.0
EXPIRY_CHECK_INTERVAL = 5.0  # while no connector is up


def outbox_node(node_id: int) -> str:
    """The name this node's outbox claims messages under."""
    return f"node-{node_id}"


class HandOverWriter(Protocol):
    """The store writer's operations the outbox uses."""

    def handed(
        self, message_id: int, upstream: str, upstream_id: str | None, sent_at: datetime,
        *, parts: tuple[str, ...] = (), forget_body: bool = False, then: Then | None = None,
    ) -> asyncio.Future[None] | None: ...

    def retry(
        self, message_id: int, next_attempt_at: datetime, error: str, *, counts: bool,
        upstream: str | None = None, parts: tuple[str, ...] = (), then: Then | None = None,
    ) -> asyncio.Future[None] | None: ...


def _recorded(_: object, error: BaseException | None) -> None:
    """The end of a hand-over's or a retry's write. The writer tries such bookkeeping
    again until it stops; if it is lost even then, the claim's lease runs out and the
    message is sent again (at least once towards the upstream)."""
    if error is not None:
        log.error("outbox: a hand-over could not be recorded: %r", error)


class Outbox:
    def __init__(
        self,
        writer: HandOverWriter,
        store: OutboxStore,
        connectors: dict[str, Connector],
        router: Router,
        directory: AccountDirectory,
        outcomes: Outcomes,
        metrics: GatewayMetrics,
        *,
        node_id: int,
        retry_min: float,
        retry_max: float,
        claim_lease: timedelta = CLAIM_LEASE,
    ) -> None:
        self._writer = writer
        self._lease = claim_lease
        self._directory = directory
        self._outcomes = outcomes
        self._metrics = metrics
        self.connectors = connectors
        self.router = router
        self.store = store
        self.node = outbox_node(node_id)
        self._retry_min, self._retry_max = retry_min, retry_max
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._next_expiry_check = 0.0

    # --- what the submit path calls ----------------------------------------------

    @property
    def in_flight(self) -> int:
        """Messages handed to a connector whose answer has not come yet."""
        return self._in_flight

    def notify(self) -> None:
        """There may be new work: a commit of accepted messages, a connector came up."""
        self._wake.set()

    # --- life cycle ----------------------------------------------------------------

    async def start(self) -> None:
        released = await self.store.release_node(self.node, datetime.now(UTC))
        if released:
            log.info("released %d outbox claims left by a previous run", released)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                claimed = await self._cycle()
            except Exception:
                log.exception("outbox cycle failed")
                claimed = 0
            if claimed:
                await asyncio.sleep(0)  # let answers and other sessions run between batches
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_INTERVAL)
            except TimeoutError:
                pass

    async def _cycle(self) -> int:
        capacity = sum(c.capacity for c in self.connectors.values() if c.is_up)
        now = datetime.now(UTC)
        if capacity <= 0:
            # No upstream to send to, but validity still runs out: end those messages.
            loop = asyncio.get_running_loop()
            if loop.time() < self._next_expiry_check:
                return 0
            self._next_expiry_check = loop.time() + EXPIRY_CHECK_INTERVAL
            rows = await self.store.claim(self.node, now, self._lease, MAX_CLAIM, only_expired=True)
            for row in rows:
                self._dispatch(row, now)
            return 0
        rows = await self.store.claim(self.node, now, self._lease, min(capacity, MAX_CLAIM))
        # Segments an earlier attempt got through are not sent again.
        taken = await self.store.taken_parts(r["id"] for r in rows if (r["segments"] or 1) > 1)
        for row in rows:
            self._dispatch(row, now, taken.get(row["id"]))
        return len(rows)

    # --- one message ---------------------------------------------------------------

    def committed(self, msg: NewMessage) -> None:
        """The store writer committed `msg`. One due now was committed already claimed for
        this node, so it is sent from memory; should this node die first, the claim's
        lease runs out (or the next start releases it) and it is claimed from the store
        as usual. A scheduled one waits in the store for a later look."""
        if claimable(msg):
            self._dispatch_message(msg, 0, datetime.now(UTC))
        else:
            self._wake.set()

    def _dispatch(
        self, row: dict[str, Any], now: datetime,
        taken: tuple[str, dict[int, str]] | None = None,
    ) -> None:
        attempts = int(row.get("attempts") or 0)
        self._dispatch_message(NewMessage.from_row(row), attempts, now, taken)

    def _dispatch_message(
        self, msg: NewMessage, attempts: int, now: datetime,
        taken: tuple[str, dict[int, str]] | None = None,
    ) -> None:
        if msg.expires_at is not None and msg.expires_at <= now:
            log.info("message %s expired before an upstream took it", msg.id)
            self._end(msg, MessageState.EXPIRED, 0, "expired")
            return
        account = self._directory.by_id(msg.account_id)
        route = self.router.route_for(account.system_id if account else "", msg.dest_addr)
        if route is None:
            # Routes changed after the message was accepted: nobody will ever carry it.
            log.warning("message %s to %s has no route any more", msg.id, msg.dest_addr)
            self._end(msg, MessageState.UNDELIVERABLE, 0, "no_route")
            return
        done_parts = None
        if taken:
            # Parts already with an upstream tie the rest to that same upstream: the
            # handset joins segments by the reference only one SMSC knows.
            upstream, done_parts = taken
            connector = self.connectors.get(upstream)
            connector = connector if connector is not None and connector.is_up else None
        else:
            connector = self._pick(route.connectors)
        if connector is None:
            self._writer.retry(msg.id, now + timedelta(seconds=NO_CONNECTOR_DELAY),
                               "no_connector_up", counts=False, then=_recorded)
            return
        self._in_flight += 1
        future = connector.send(
            msg, gsm_packed=account.gsm_packed if account else False, done_parts=done_parts
        )
        if future.done():  # an in-process connector answers at once
            self._answered(msg, attempts, connector, future)
        else:
            future.add_done_callback(lambda f: self._answered(msg, attempts, connector, f))

    def _pick(self, names: tuple[str, ...]) -> Connector | None:
        up = [self.connectors[n] for n in names if n in self.connectors and self.connectors[n].is_up]
        for connector in up:
            if connector.capacity > 0:
                return connector
        return up[0] if up else None

    def _answered(
        self, msg: NewMessage, attempts: int, connector: Connector,
        future: asyncio.Future[SubmitResult],
    ) -> None:
        self._in_flight -= 1
        result = future.result()
        metrics = self._metrics
        if result.ok:
            metrics.mt_handed_upstream.inc()
            account = self._directory.by_id(msg.account_id)
            # A split message is found by its segments' ids (message_parts), never by
            # one of them standing for the whole.
            upstream_id = None if result.parts else result.upstream_id
            self._writer.handed(
                msg.id, connector.name, upstream_id, datetime.now(UTC), parts=result.parts,
                # The body was kept only for the hand-over when the account keeps none.
                forget_body=account is not None and not account.keep_bodies, then=_recorded,
            )
            return
        if result.temporary:
            counts = result.reached_upstream
            delay = backoff_delay(attempts, self._retry_min, self._retry_max) if counts else 0.2
            metrics.mt_upstream_retries.inc()
            now = datetime.now(UTC)
            if msg.expires_at is not None:
                # Never wait past the validity: the next look ends it as EXPIRED on time.
                delay = max(0.0, min(delay, (msg.expires_at - now).total_seconds()))
            log.info("%s: message %s: %s; retry in %.1fs", connector.name, msg.id,
                     result.reason, delay)
            taken = any(result.parts)
            self._writer.retry(
                msg.id, now + timedelta(seconds=delay), result.reason, counts=counts,
                upstream=connector.name if taken else None,
                parts=result.parts if taken else (), then=_recorded,
            )
            asyncio.get_running_loop().call_later(delay, self.notify)
            return
        log.warning("%s: message %s refused: %s", connector.name, msg.id, result.reason)
        # The receipt's err: field has three digits; the spec's statuses all fit.
        self._end(msg, MessageState.REJECTED, min(result.status, 999), "upstream_refused")

    def _end(self, msg: NewMessage, state: int, error: int, cause: str) -> None:
        self._metrics.mt_ended(state, cause)
        self._outcomes.add(msg, state, error, datetime.now(UTC))

