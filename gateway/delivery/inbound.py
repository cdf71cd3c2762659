"""What upstreams send back: receipts, MOs and alert_notification.

Upstream deliver_sm (and data_sm, taken as one) arrive in batches. A receipt is mapped
to our message, or to the segment of one the gateway split, by the upstream id (the
hand-overs not yet committed first, then the store) and becomes an outcome; a split
message ends when all its segments have. An MO goes to the account that owns the
destination number, into history and the delivery queue; one saying STOP lists its
sender. Both are answered upstream only after the commit. An alert_notification
reaches the accounts that asked for it (set_dpf on a message that failed for the
subscriber's absence).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Protocol

from gateway.delivery.coalescer import Coalescer
from gateway.delivery.outcomes import Outcome
from gateway.upstream.base import Ack, HandOvers, PartRef
from pdu.codec import AlertNotification, DeliverSm, encode_body
from pdu.receipt import (
    FINAL_STATES,
    InvalidReceipt,
    MessageState,
    combine_states,
    is_receipt,
    mo_deliver_sm,
    read_receipt,
)
from pdu.status import CommandStatus
from pdu.text import decode_short_message
from pdu.tlv import Tag
from store.writer import NewMessage

if TYPE_CHECKING:
    from gateway.accounts import AccountDirectory
    from gateway.delivery.deliveries import Deliveries
    from gateway.delivery.outcomes import Outcomes
    from gateway.metrics import GatewayMetrics
    from store.alerts import AlertStore
    from store.inbound import InboundNumbers
    from store.messages import MessageStore
    from store.writer import StoreWriter

log = logging.getLogger(__name__)

FINAL_STATUSES = frozenset(s.name for s in FINAL_STATES)
_KNOWN_STATES = frozenset(int(s) for s in MessageState)
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "ARRET", "ARRÊT"})


def _ack_when_durable(ack: Ack, _: object, error: BaseException | None) -> None:
    # Not acknowledged if the outcome could not be made durable: the upstream repeats it.
    if error is None:
        ack(0)


def is_stop_request(body: bytes, data_coding: int) -> bool:
    """An MO whose whole text is a STOP keyword (any case, surrounding spaces)."""
    try:
        text = decode_short_message(body, data_coding, strict=False)
    except ValueError:
        return False
    return text.strip().upper() in STOP_WORDS


@dataclass(slots=True)
class Delivered:
    """A deliver_sm from an upstream, with the callback that answers it."""

    connector: str
    pdu: DeliverSm
    ack: Ack
    received_at: float


@dataclass(slots=True)
class UpstreamReceipt:
    """What a receipt says, from an SMPP upstream's deliver_sm or an in-process upstream,
    waiting to be matched through the store (not in memory any more, or a segment)."""

    connector: str
    upstream_id: str
    state: int
    err: int
    network_error: bytes | None
    ack: Ack
    ref: PartRef | None = None


def _no_ack(status: int) -> None:
    pass


class IdSource(Protocol):
    def next_id(self) -> int: ...


class Inbound:
    def __init__(
        self,
        writer: StoreWriter,
        messages: MessageStore,
        numbers: InboundNumbers,
        alerts: AlertStore,
        handovers: HandOvers,
        directory: AccountDirectory,
        outcomes: Outcomes,
        deliveries: Deliveries,
        ids: IdSource,
        metrics: GatewayMetrics,
        *,
        batch_size: int,
    ) -> None:
        self._writer = writer
        self._messages = messages
        self._numbers = numbers
        self._alert_store = alerts
        self._handovers = handovers
        self._directory = directory
        self._outcomes = outcomes
        self._deliveries = deliveries
        self._ids = ids
        self._metrics = metrics
        self._inbound: Coalescer[Delivered] = Coalescer(
            "upstream-inbound", self._flush, max_batch=batch_size
        )
        self._unmatched: Coalescer[UpstreamReceipt] = Coalescer(
            "upstream-receipts-unmatched", self._match_in_store, max_batch=batch_size
        )
        self._alerts: Coalescer[AlertNotification] = Coalescer("upstream-alerts",
                                                              self._flush_alerts)

    def on_deliver(self, connector: str, pdu: DeliverSm | AlertNotification, ack: Ack) -> None:
        """An upstream's deliver_sm (or data_sm as one); `ack` is answered once what it
        says is committed. An alert_notification has no answer."""
        if isinstance(pdu, AlertNotification):
            self._alerts.add(pdu)
            return
        self._inbound.add(Delivered(connector, pdu, ack, asyncio.get_running_loop().time()))

    async def drain(self) -> None:
        for coalescer in (self._inbound, self._unmatched, self._alerts):
            await coalescer.drain()

    async def _flush(self, batch: list[Delivered]) -> None:
        mos = []
        for item in batch:
            if is_receipt(item.pdu.esm_class):
                self._read_receipt(item)
            else:
                mos.append(item)
        if mos:
            # Only after the commit: an upstream that got deliver_sm_resp will not send
            # the MO again.
            for item, status in await self._mos(mos):
                item.ack(status)

    # --- receipts ----------------------------------------------------------------------

    def _read_receipt(self, item: Delivered) -> None:
        try:
            upstream_id, state, err, net = read_receipt(item.pdu)
        except (InvalidReceipt, ValueError) as exc:
            log.warning("%s: unreadable receipt, acknowledged and dropped: %s",
                        item.connector, exc)
            self._metrics.deliveries.labels("upstream_dlr", "unreadable").inc()
            item.ack(0)
            return
        self.receipt(item.connector, upstream_id, state, err, net, item.ack,
                     received_at=item.received_at)

    def receipt(
        self, connector: str, upstream_id: str, state: int, err: int,
        network_error: bytes | None, ack: Ack = _no_ack, *, received_at: float = 0.0,
    ) -> None:
        """What an upstream's receipt says. Matched in memory (the message handed over,
        no read-back), else through the store; `ack` is called once the outcome is
        committed (an intermediate receipt is acknowledged at once)."""
        if state not in FINAL_STATES:
            if state not in _KNOWN_STATES:
                self._metrics.deliveries.labels("upstream_dlr", "duplicate").inc()
            ack(0)
            return
        entry = self._handovers.take(connector, upstream_id)
        if isinstance(entry, NewMessage):
            self._metrics.deliveries.labels("upstream_dlr", "matched").inc()
            self._metrics.mt_ended(state, "upstream_receipt")
            self._outcomes.add(
                entry, state, err, datetime.now(UTC), network_error,
                received_at=received_at or asyncio.get_running_loop().time(),
                then=None if ack is _no_ack else partial(_ack_when_durable, ack),
            )
            return
        self._unmatched.add(UpstreamReceipt(connector, upstream_id, state, err,
                                            network_error, ack, entry))

    async def _match_in_store(self, batch: list[UpstreamReceipt]) -> None:
        """Receipts not matched in memory: after a restart, later than the memory keeps
        them, repeated ones, and segments of a message the gateway split."""
        metrics = self._metrics
        refs = await self._our_refs(batch)
        whole = {ref.message_id if isinstance(ref, PartRef) else ref for ref in refs.values()}
        rows = await self._messages.get_many(whole)
        outcomes: list[Outcome] = []
        seen: set[int] = set()
        parts: dict[tuple[int, int], tuple[int, int, int, int, int, datetime]] = {}
        now = datetime.now(UTC)
        for item in batch:
            ref = refs.get((item.connector, item.upstream_id))
            mid = ref.message_id if isinstance(ref, PartRef) else ref
            row = rows.get(mid) if mid is not None else None
            if row is None:
                log.warning("%s: receipt for unknown message %s", item.connector,
                            item.upstream_id)
                metrics.deliveries.labels("upstream_dlr", "unknown_id").inc()
                continue
            if row["status"] in FINAL_STATUSES or mid in seen:
                # A repeated receipt (the upstream did not see our answer): already told.
                metrics.deliveries.labels("upstream_dlr", "duplicate").inc()
                continue
            metrics.deliveries.labels("upstream_dlr", "matched").inc()
            if isinstance(ref, PartRef):
                parts[(mid, ref.part_no)] = (mid, ref.part_no, ref.parts, item.state,
                                             item.err, now)
                continue
            seen.add(mid)
            outcomes.append(Outcome(NewMessage.from_row(row), item.state, item.err, now,
                                    item.network_error))
        if parts:
            outcomes += await self._segments_final(list(parts.values()), rows, now)
        if outcomes:
            for o in outcomes:
                metrics.mt_ended(o.state, "upstream_receipt")
            await self._outcomes.record(outcomes)
        for item in batch:
            item.ack(0)

    async def _our_refs(
        self, batch: list[UpstreamReceipt]
    ) -> dict[tuple[str, str], int | PartRef]:
        """Map upstream ids to our messages (or their segments): the segment a connector
        recorded, else the store, whole messages then parts."""
        refs: dict[tuple[str, str], int | PartRef] = {}
        missing: dict[str, set[str]] = {}
        for item in batch:
            if item.ref is not None:
                refs[(item.connector, item.upstream_id)] = item.ref
            else:
                missing.setdefault(item.connector, set()).add(item.upstream_id)
        for name, upstream_ids in missing.items():
            found = await self._messages.by_upstream_many(name, upstream_ids)
            for upstream_id, row in found.items():
                refs[(name, upstream_id)] = int(row["id"])
            split = await self._messages.parts_by_upstream_many(name, upstream_ids - set(found))
            for upstream_id, (message_id, part_no, total) in split.items():
                refs[(name, upstream_id)] = PartRef(message_id, part_no, total)
        return refs

    async def _segments_final(
        self, updates: list[tuple[int, int, int, int, int, datetime]],
        rows: dict[int, dict], now: datetime,
    ) -> list[Outcome]:
        """Record segments' receipts; a message whose segments are all final gets one
        outcome: DELIVERED if every one was, else the worst, counting the delivered."""
        parts = await self._messages.record_part_states(updates)
        expected = {mid: total for mid, _, total, *_ in updates}
        outcomes = []
        for mid, states in parts.items():
            final = [(s, e or 0) for _, s, e in states if s in FINAL_STATES]
            if len(final) < expected[mid]:
                continue
            state, err, delivered = combine_states(final)
            outcomes.append(Outcome(NewMessage.from_row(rows[mid]), int(state), err, now,
                                    delivered=delivered))
        return outcomes

    # --- MOs -----------------------------------------------------------------------------

    async def _mos(self, batch: list[Delivered]) -> list[tuple[Delivered, int]]:
        directory = self._directory
        owners = await self._numbers.owners({i.pdu.destination_addr for i in batch})
        now = datetime.now(UTC)
        written, acks = [], []
        stops: list[tuple[int, str]] = []
        for item in batch:
            pdu = item.pdu
            account_id = owners.get(pdu.destination_addr)
            if account_id is None:
                log.warning("%s: MO to %s, which no account owns; refused",
                            item.connector, pdu.destination_addr)
                self._metrics.mo_refused.labels("no_owner").inc()
                acks.append((item, CommandStatus.ESME_RINVDSTADR))
                continue
            mo_id = self._ids.next_id()
            body = pdu.short_message or pdu.get_tlv(Tag.MESSAGE_PAYLOAD) or b""
            mo = NewMessage(
                id=mo_id, account_id=account_id, direction="MO", source_addr=pdu.source_addr,
                source_ton=pdu.source_addr_ton, source_npi=pdu.source_addr_npi,
                dest_addr=pdu.destination_addr, dest_ton=pdu.dest_addr_ton,
                dest_npi=pdu.dest_addr_npi, esm_class=pdu.esm_class, registered_delivery=0,
                data_coding=pdu.data_coding, body=body, segments=1, cost=0,
                status="DELIVERED", created_at=now,
            )
            incoming = str(mo_id) if directory.vendor_tlvs(account_id) else None
            delivery = self._deliveries.new_row(
                self._ids.next_id(), account_id, mo_id, "mo",
                encode_body(mo_deliver_sm(pdu, incoming_id=incoming)), now,
                now + directory.delivery_ttl(account_id),
            )
            written.append((self._writer.inbound(mo, delivery, upstream=item.connector),
                            delivery))
            acks.append((item, 0))
            if is_stop_request(body, pdu.data_coding):
                stops.append((account_id, pdu.source_addr))
        # Acknowledged upstream only once in the store: never lost, never recorded twice.
        await asyncio.gather(*(durable for durable, _ in written))
        for account_id, sender in stops:
            # The recipient said STOP: the account may not message them again.
            account = directory.by_id(account_id)
            if account is not None:
                await directory.stop_list_add(account, sender, "STOP received by SMS")
        self._metrics.mo_received.inc(len(written))
        for _, delivery in written:
            self._deliveries.committed(delivery)
        return acks

    # --- alert_notification --------------------------------------------------------------

    async def _flush_alerts(self, batch: list[AlertNotification]) -> None:
        """Upstreams say these subscribers are reachable again: tell every account that
        asked, now if a receiver is bound, else at its next bind."""
        now = datetime.now(UTC)
        for alert in batch:
            for row in await self._alert_store.subscriber_back(alert.source_addr, now):
                self._metrics.deliveries.labels("alert", "received").inc()
                await self._deliveries.send_alerts(row["account_id"], [row])


