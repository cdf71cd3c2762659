"""DLRs and MOs: from the upstreams into the store, and on to the customer's RX/TRX session.

Upstream deliver_sm arrive in batches: a receipt is mapped to our message (by the
upstream id stored at hand-over) and becomes an outcome; an MO goes to the account that
owns the destination number. Both are answered upstream only after the commit. An
outcome updates the message's history row and, when the submit asked
for a receipt, stores a ready-encoded deliver_sm body in the `deliveries` queue, in
the same transaction. Only then is it pushed to a bound receiver. A delivery leaves
the queue when the ESME answers deliver_sm_resp with status 0; a non-zero answer or
a lost connection leaves it pending for the next bind or the periodic retry, until
it expires (7 days by default).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gateway.coalescer import Coalescer
from gateway.upstream.base import Ack, PartRef
from pdu.codec import AlertNotification, DeliverSm, addresses, encode_body
from pdu.receipt import (
    InvalidReceipt,
    MessageState,
    Receipt,
    combine_states,
    format_receipt,
    parse_receipt,
    stat_for_state,
)
from pdu.status import CommandStatus
from pdu.text import decode_short_message
from pdu.tlv import Tag, as_cstr, as_int, cstr_tlv, decode_tlvs, int_tlv
from store.alerts import AlertStore
from store.batcher import NewMessage

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.upstream.base import Connector

log = logging.getLogger(__name__)

ESM_CLASS_DELIVERY_RECEIPT = 0x04
ESM_INTERMEDIATE = 0x20
ESM_MESSAGE_TYPE = 0x3C  # esm_class bits 2-5
ESM_UDHI = 0x40
# What of an upstream MO the customer gets besides the mandatory fields.
_MO_TLVS_KEPT = frozenset(
    {Tag.MESSAGE_PAYLOAD, Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM,
     Tag.SOURCE_PORT, Tag.DESTINATION_PORT, Tag.USER_MESSAGE_REFERENCE}
)
# Longer than any store read of due deliveries can take.
SETTLED_MEMORY = 120.0
FINAL_STATES = frozenset({2, 3, 4, 5, 7, 8})
FINAL_STATUSES = frozenset({"DELIVERED", "EXPIRED", "DELETED", "UNDELIVERABLE", "UNKNOWN",
                            "REJECTED"})
# registered_delivery bits 0-1 (SMPP 3.4 5.2.17): 1 = receipt on final outcome,
# 2 = receipt on failure only.
RD_RECEIPT_MASK = 0x03
RD_ON_SUCCESS_AND_FAILURE = 0x01
RD_ON_FAILURE = 0x02

STATUS_BY_STATE = {
    1: "ENROUTE",
    2: "DELIVERED",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIVERABLE",
    6: "ACCEPTED",
    7: "UNKNOWN",
    8: "REJECTED",
}


@dataclass(slots=True)
class PendingDelivery:
    id: int
    account_id: int
    kind: str
    body: bytes
    sent_at: float = 0.0


@dataclass(slots=True)
class Outcome:
    msg: NewMessage
    state: int
    error: int
    done_at: datetime
    network_error: bytes | None = None
    # Segments delivered, for a message the gateway split (None: all or none, by state).
    delivered: int | None = None


@dataclass(slots=True)
class Inbound:
    """A deliver_sm from an upstream, with the callback that answers it."""

    connector: str
    pdu: DeliverSm
    ack: Ack


# GSM MAP error 27, absent subscriber: the error an SMSC can later clear with an
# alert_notification (in err: or in network_error_code after the network type).
ABSENT_SUBSCRIBER = 27
_ALERTABLE_STATES = frozenset({MessageState.UNDELIVERABLE, MessageState.EXPIRED})


def wants_alert(o: Outcome) -> bool:
    """The message failed on an absent subscriber and its submit asked for set_dpf."""
    if o.state not in _ALERTABLE_STATES or not o.msg.tlvs:
        return False
    absent = o.error == ABSENT_SUBSCRIBER or (
        o.network_error is not None and len(o.network_error) == 3
        and int.from_bytes(o.network_error[1:], "big") == ABSENT_SUBSCRIBER
    )
    if not absent:
        return False
    tlvs = decode_tlvs(o.msg.tlvs, 0, len(o.msg.tlvs))
    return any(tag == Tag.SET_DPF and value == b"\x01" for tag, value in tlvs)


def wants_receipt(registered_delivery: int, state: int) -> bool:
    asked = registered_delivery & RD_RECEIPT_MASK
    if asked == RD_ON_SUCCESS_AND_FAILURE:
        return True
    return asked == RD_ON_FAILURE and state != 2


def receipt_text(msg: NewMessage) -> str:
    try:
        return decode_short_message(msg.body or b"", msg.data_coding)[:20]
    except ValueError:
        return ""


def build_dlr_body(
    msg: NewMessage,
    state: int,
    error: int,
    done_at: datetime,
    *,
    network_error: bytes | None = None,
    vendor_tlvs: bool = False,
    sub: int = 1,
    dlvrd: int | None = None,
) -> bytes:
    """The deliver_sm body of a receipt, in the format clients.md says all accept.

    The id is the one the client holds (a submit_multi's shared id for every
    destination, told apart by the receipt's source_addr); `sub`/`dlvrd` count the
    segments of a message the gateway split (one receipt for all of them).
    """
    message_id = msg.client_id
    text = format_receipt(
        Receipt(
            message_id=message_id,
            sub=sub,
            dlvrd=dlvrd if dlvrd is not None else int(state == MessageState.DELIVERED),
            submit_date=msg.created_at,
            done_date=done_at,
            stat=stat_for_state(state),
            err=min(error, 999),
            text=receipt_text(msg),
        )
    )
    tlvs = [
        cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, message_id),
        int_tlv(Tag.MESSAGE_STATE, state),
    ]
    if network_error is not None and len(network_error) == 3:
        tlvs.append((Tag.NETWORK_ERROR_CODE, network_error))
    if vendor_tlvs:
        # The provider's own id of this one message (a submit_multi row's, not the group's).
        tlvs.append(cstr_tlv(Tag.OUTGOING_ID, str(msg.id)))
    pdu = DeliverSm(
        source_addr_ton=msg.dest_ton,
        source_addr_npi=msg.dest_npi,
        source_addr=msg.dest_addr,
        dest_addr_ton=msg.source_ton,
        dest_addr_npi=msg.source_npi,
        destination_addr=msg.source_addr,
        esm_class=ESM_CLASS_DELIVERY_RECEIPT,
        short_message=text,
        tlvs=tlvs,
    )
    return encode_body(pdu)


STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "ARRET", "ARRÊT"})


def is_stop_request(body: bytes, data_coding: int) -> bool:
    """An MO whose whole text is a STOP keyword (any case, surrounding spaces)."""
    try:
        text = decode_short_message(body, data_coding, strict=False)
    except ValueError:
        return False
    return text.strip().upper() in STOP_WORDS


def build_mo_body(pdu: DeliverSm, incoming_id: int, *, vendor_tlvs: bool = False) -> bytes:
    """The deliver_sm body of an MO for the customer: the upstream's, with our id."""
    tlvs = [(t, v) for t, v in pdu.tlvs if t in _MO_TLVS_KEPT]
    if vendor_tlvs:
        tlvs.append(cstr_tlv(Tag.INCOMING_ID, str(incoming_id)))
    out = DeliverSm(
        **addresses(pdu),
        esm_class=pdu.esm_class & ESM_UDHI,
        protocol_id=pdu.protocol_id,
        data_coding=pdu.data_coding,
        short_message=pdu.short_message,
        tlvs=tlvs,
    )
    return encode_body(out)


def is_receipt(pdu: DeliverSm) -> bool:
    return pdu.esm_class & ESM_MESSAGE_TYPE in (ESM_CLASS_DELIVERY_RECEIPT, ESM_INTERMEDIATE)


def read_receipt(pdu: DeliverSm) -> tuple[str, int, int, bytes | None]:
    """(upstream id, message_state, err, network_error_code) of an upstream receipt.

    The TLVs win over the text where both exist: they are typed, the text is de facto.
    Raises InvalidReceipt when neither gives an id and a state.
    """
    raw_id = pdu.get_tlv(Tag.RECEIPTED_MESSAGE_ID)
    raw_state = pdu.get_tlv(Tag.MESSAGE_STATE)
    err = 0
    parsed: Receipt | None = None
    try:
        parsed = parse_receipt(pdu.short_message or pdu.get_tlv(Tag.MESSAGE_PAYLOAD) or b"")
        err = parsed.err
    except InvalidReceipt:
        if raw_id is None or raw_state is None:
            raise
    upstream_id = as_cstr(raw_id) if raw_id else parsed.message_id  # type: ignore[union-attr]
    state = as_int(raw_state) if raw_state else int(parsed.message_state)  # type: ignore[union-attr]
    return upstream_id, state, err, pdu.get_tlv(Tag.NETWORK_ERROR_CODE)


class Dispatcher:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        s = gateway.settings
        self._outcomes: Coalescer[Outcome] = Coalescer(
            "outcomes", self._flush_outcomes, max_batch=s.batch_max_size
        )
        self._inbound: Coalescer[Inbound] = Coalescer(
            "upstream-inbound", self._flush_inbound, max_batch=s.batch_max_size
        )
        self._acks: Coalescer[int] = Coalescer(
            "delivery-acks", self._flush_acks, max_batch=s.batch_max_size
        )
        self._retries: Coalescer[int] = Coalescer("delivery-retries", self._flush_retries)
        self._alerts: Coalescer[AlertNotification] = Coalescer("upstream-alerts",
                                                              self._flush_alerts)
        self.alert_store = AlertStore(gateway.engine)
        # Deliveries handed to a session, or acknowledged but not yet marked in the
        # store: a reload from the store must not send them again.
        self._in_flight: set[int] = set()
        self._settled: dict[int, float] = {}  # delivery id -> loop time its state committed
        self._sweeper: asyncio.Task | None = None
        self.connectors: dict[str, Connector] = {}

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for c in (self._inbound, self._alerts, self._outcomes, self._acks, self._retries):
            await c.drain()

    # --- outcomes decided here (expiry, refusal) -----------------------------------

    def outcome(
        self, msg: NewMessage, state: int, error: int, done_at: datetime,
        network_error: bytes | None = None,
    ) -> None:
        self._outcomes.add(Outcome(msg, state, error, done_at, network_error))

    async def _flush_outcomes(self, batch: list[Outcome]) -> None:
        await self._record(batch)

    async def _record(self, batch: list[Outcome]) -> None:
        """Update history and queue the receipts in one transaction, then push them."""
        s = self.gw.settings
        updates = [(o.msg.id, STATUS_BY_STATE[o.state], o.error, o.done_at) for o in batch]
        expires = timedelta(seconds=s.dlr_max_age)
        rows = []
        alerts = []
        for o in batch:
            if o.state in FINAL_STATES and wants_receipt(o.msg.registered_delivery, o.state):
                # One receipt per message the client holds: a message the gateway split
                # counts its segments in sub/dlvrd (a client's own parts are 1 each).
                sub = max(o.msg.segments or 1, 1)
                rows.append(
                    {
                        "account_id": o.msg.account_id,
                        "message_id": o.msg.id,
                        "kind": "dlr",
                        "body": build_dlr_body(
                            o.msg, o.state, o.error, o.done_at,
                            network_error=o.network_error,
                            vendor_tlvs=self._vendor_tlvs(o.msg.account_id),
                            sub=sub,
                            dlvrd=sub if o.state == MessageState.DELIVERED else (o.delivered or 0),
                        ),
                        "created_at": o.done_at,
                        "next_attempt_at": o.done_at,
                        "expires_at": o.done_at + self._retention(o.msg.account_id, expires),
                    }
                )
            if wants_alert(o):
                alerts.append({
                    "account_id": o.msg.account_id,
                    "ms_addr": o.msg.dest_addr, "ms_ton": o.msg.dest_ton,
                    "ms_npi": o.msg.dest_npi,
                    "esme_addr": o.msg.source_addr, "esme_ton": o.msg.source_ton,
                    "esme_npi": o.msg.source_npi,
                    "created_at": o.done_at, "expires_at": o.done_at + expires,
                })
        ids = await self.gw.messages.record_outcomes(updates, rows, alerts)
        for row, delivery_id in zip(rows, ids):
            self._route(PendingDelivery(delivery_id, row["account_id"], "dlr", row["body"]))

    # --- from the upstreams: receipts and MOs ---------------------------------------

    def on_deliver(self, connector: str, pdu: DeliverSm | AlertNotification, ack: Ack) -> None:
        """An upstream's deliver_sm (or data_sm as one); `ack` is answered once what it
        says is committed. An alert_notification has no answer."""
        if isinstance(pdu, AlertNotification):
            self._alerts.add(pdu)
            return
        self._inbound.add(Inbound(connector, pdu, ack))

    async def _flush_inbound(self, batch: list[Inbound]) -> None:
        receipts = [i for i in batch if is_receipt(i.pdu)]
        mos = [i for i in batch if not is_receipt(i.pdu)]
        acks: list[tuple[Inbound, int]] = []
        if receipts:
            acks += await self._receipts(receipts)
        if mos:
            acks += await self._mos(mos)
        # Only now: an upstream that got deliver_sm_resp will not send it again.
        for item, status in acks:
            item.ack(status)

    async def _receipts(self, batch: list[Inbound]) -> list[tuple[Inbound, int]]:
        metrics = self.gw.metrics
        parsed: list[tuple[Inbound, str, int, int, bytes | None]] = []
        acks: list[tuple[Inbound, int]] = []
        for item in batch:
            try:
                upstream_id, state, err, net = read_receipt(item.pdu)
            except (InvalidReceipt, ValueError) as exc:
                log.warning("%s: unreadable receipt, acknowledged and dropped: %s",
                            item.connector, exc)
                metrics.deliveries.labels("upstream_dlr", "unreadable").inc()
                acks.append((item, 0))
                continue
            parsed.append((item, upstream_id, state, err, net))
        refs = await self._our_refs(parsed)
        whole: dict[int, None] = {}
        for ref in refs.values():
            whole[ref.message_id if isinstance(ref, PartRef) else ref] = None
        rows = await self.gw.messages.get_many(whole)
        outcomes: list[Outcome] = []
        seen: set[int] = set()
        part_updates: dict[tuple[int, int], tuple[int, int, int, int, int, datetime]] = {}
        now = datetime.now(UTC)
        for item, upstream_id, state, err, net in parsed:
            acks.append((item, 0))
            ref = refs.get((item.connector, upstream_id))
            mid = ref.message_id if isinstance(ref, PartRef) else ref
            row = rows.get(mid) if mid is not None else None
            if row is None:
                log.warning("%s: receipt for unknown message %s", item.connector, upstream_id)
                metrics.deliveries.labels("upstream_dlr", "unknown_id").inc()
                continue
            if row["status"] in FINAL_STATUSES or mid in seen or state not in STATUS_BY_STATE:
                # A repeated receipt (the upstream did not see our answer): already told.
                metrics.deliveries.labels("upstream_dlr", "duplicate").inc()
                continue
            if state not in FINAL_STATES:
                continue
            metrics.deliveries.labels("upstream_dlr", "matched").inc()
            if isinstance(ref, PartRef):
                part_updates[(mid, ref.part_no)] = (mid, ref.part_no, ref.parts, state, err, now)
                continue
            seen.add(mid)
            outcomes.append(Outcome(NewMessage.from_row(row), state, err, now, net))
        if part_updates:
            outcomes += await self._segments_final(list(part_updates.values()), rows, now)
        if outcomes:
            await self._record(outcomes)
        return acks

    async def _our_refs(
        self, parsed: list[tuple[Inbound, str, int, int, bytes | None]]
    ) -> dict[tuple[str, str], int | PartRef]:
        """Map upstream ids to our messages (or their segments): first the ids whose
        hand-over is not committed yet, then the store, whole messages then parts."""
        refs: dict[tuple[str, str], int | PartRef] = {}
        missing: dict[str, set[str]] = {}
        for item, upstream_id, *_ in parsed:
            connector = self.connectors.get(item.connector)
            ref = connector.recent_ids.get(upstream_id) if connector is not None else None
            if ref is not None:
                refs[(item.connector, upstream_id)] = ref
            else:
                missing.setdefault(item.connector, set()).add(upstream_id)
        for name, upstream_ids in missing.items():
            found = await self.gw.messages.by_upstream_many(name, upstream_ids)
            for upstream_id, row in found.items():
                refs[(name, upstream_id)] = int(row["id"])
            parts = await self.gw.messages.parts_by_upstream_many(name, upstream_ids - set(found))
            for upstream_id, (message_id, part_no, total) in parts.items():
                refs[(name, upstream_id)] = PartRef(message_id, part_no, total)
        return refs

    async def _segments_final(
        self, updates: list[tuple[int, int, int, int, int, datetime]],
        rows: dict[int, dict], now: datetime,
    ) -> list[Outcome]:
        """Record segments' receipts; a message whose segments are all final gets one
        outcome: DELIVERED if every one was, else the worst, counting the delivered."""
        parts = await self.gw.messages.record_part_states(updates)
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

    async def _mos(self, batch: list[Inbound]) -> list[tuple[Inbound, int]]:
        gw = self.gw
        owners = await gw.inbound.owners({i.pdu.destination_addr for i in batch})
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=gw.settings.dlr_max_age)
        history, deliveries, acks = [], [], []
        stops: list[tuple[int, str]] = []
        for item in batch:
            pdu = item.pdu
            account_id = owners.get(pdu.destination_addr)
            if account_id is None:
                log.warning("%s: MO to %s, which no account owns; refused",
                            item.connector, pdu.destination_addr)
                gw.metrics.messages.labels("MO", "no_owner").inc()
                acks.append((item, CommandStatus.ESME_RINVDSTADR))
                continue
            mo_id = gw.ids.next_id()
            body = pdu.short_message or pdu.get_tlv(Tag.MESSAGE_PAYLOAD) or b""
            history.append({
                "id": mo_id, "account_id": account_id, "direction": "MO",
                "source_addr": pdu.source_addr, "source_ton": pdu.source_addr_ton,
                "source_npi": pdu.source_addr_npi, "dest_addr": pdu.destination_addr,
                "dest_ton": pdu.dest_addr_ton, "dest_npi": pdu.dest_addr_npi,
                "esm_class": pdu.esm_class, "registered_delivery": 0,
                "data_coding": pdu.data_coding, "body": body, "segments": 1, "cost": 0,
                "status": "DELIVERED", "upstream": item.connector, "created_at": now,
                "done_at": now,
            })
            deliveries.append({
                "account_id": account_id, "message_id": mo_id, "kind": "mo",
                "body": build_mo_body(pdu, mo_id, vendor_tlvs=self._vendor_tlvs(account_id)),
                "created_at": now, "next_attempt_at": now,
                "expires_at": now + self._retention(account_id, expires - now),
            })
            acks.append((item, 0))
            if is_stop_request(body, pdu.data_coding):
                stops.append((account_id, pdu.source_addr))
        ids = await gw.messages.record_inbound(history, deliveries)
        for account_id, sender in stops:
            # The recipient said STOP: the account may not message them again.
            account = gw.accounts.by_id(account_id)
            if account is not None:
                await gw.accounts.stop_list_add(account, sender, "STOP received by SMS")
        gw.metrics.messages.labels("MO", "received").inc(len(history))
        for row, delivery_id in zip(deliveries, ids):
            self._route(PendingDelivery(delivery_id, row["account_id"], "mo", row["body"]))
        return acks

    def _vendor_tlvs(self, account_id: int) -> bool:
        account = self.gw.accounts.by_id(account_id)
        return account.vendor_tlvs if account is not None else self.gw.settings.vendor_tlvs

    def _retention(self, account_id: int, default: timedelta) -> timedelta:
        """How long a DLR or MO waits for the customer: the account's own setting, within
        the gateway's `dlr_max_age`."""
        account = self.gw.accounts.by_id(account_id)
        days = account.dlr_retention_days if account is not None else None
        return min(timedelta(days=days), default) if days else default

    # --- to the customer -----------------------------------------------------------

    def _route(self, delivery: PendingDelivery) -> bool:
        session = self.gw.receiver_for(delivery.account_id)
        if session is None:
            self.gw.outbinder.want(delivery.account_id)
            return False
        self._in_flight.add(delivery.id)
        session.deliver(delivery)
        return True

    def acknowledged(self, delivery: PendingDelivery, status: int) -> None:
        if status == 0:
            self.gw.metrics.deliveries.labels(delivery.kind, "delivered").inc()
            self._acks.add(delivery.id)
        else:
            self.gw.metrics.deliveries.labels(delivery.kind, "refused").inc()
            self._retries.add(delivery.id)

    def returned(self, deliveries: list[PendingDelivery]) -> None:
        """A session went away with these unacknowledged: try another, else the store."""
        for delivery in deliveries:
            self._in_flight.discard(delivery.id)
            self._route(delivery)

    async def _flush_acks(self, ids: list[int]) -> None:
        await self.gw.messages.mark_delivered(ids)
        self._settle(ids)

    async def _flush_retries(self, ids: list[int]) -> None:
        later = datetime.now(UTC) + timedelta(seconds=self.gw.settings.dlr_retry_interval)
        await self.gw.messages.reschedule_many(ids, later)
        self._settle(ids)

    def _settle(self, ids: list[int]) -> None:
        # A store read that started before this commit may still list these as due;
        # remembering when they settled lets resume_account ignore such a stale row.
        now = asyncio.get_running_loop().time()
        for delivery_id in ids:
            self._in_flight.discard(delivery_id)
            self._settled[delivery_id] = now

    # --- alert_notification (SMPP 3.4 section 4.12) ----------------------------------

    async def _flush_alerts(self, batch: list[AlertNotification]) -> None:
        """Upstreams say these subscribers are reachable again: tell every account that
        asked (set_dpf on a message that failed for their absence), now if a receiver
        is bound, else at its next bind."""
        now = datetime.now(UTC)
        for alert in batch:
            for row in await self.alert_store.subscriber_back(alert.source_addr, now):
                self.gw.metrics.deliveries.labels("alert", "received").inc()
                await self._send_alerts(row["account_id"], [row])

    async def _send_alerts(self, account_id: int, rows: list[dict]) -> None:
        session = self.gw.receiver_for(account_id)
        if session is None or not rows:
            return
        for row in rows:
            session.alert(AlertNotification(
                source_addr_ton=row["ms_ton"], source_addr_npi=row["ms_npi"],
                source_addr=row["ms_addr"], esme_addr_ton=row["esme_ton"],
                esme_addr_npi=row["esme_npi"], esme_addr=row["esme_addr"],
                # ms_availability_status 0: available.
                tlvs=[int_tlv(Tag.MS_AVAILABILITY_STATUS, 0)],
            ))
            self.gw.metrics.deliveries.labels("alert", "delivered").inc()
        await self.alert_store.sent(row["id"] for row in rows)

    async def resume_account(self, account_id: int) -> int:
        """Send what waits in the store for an account that has just bound a receiver."""
        now = datetime.now(UTC)
        await self._send_alerts(account_id, await self.alert_store.alerted(account_id, now))
        started = asyncio.get_running_loop().time()
        rows = await self.gw.messages.due_deliveries(account_id, now, 1000)
        sent = 0
        for row in rows:
            if row["id"] in self._in_flight or self._settled.get(row["id"], -1.0) >= started:
                continue
            delivery = PendingDelivery(row["id"], account_id, row["kind"], bytes(row["body"]))
            if not self._route(delivery):
                break
            sent += 1
        return sent

    async def _sweep_forever(self) -> None:
        interval = self.gw.settings.dlr_retry_interval
        while True:
            await asyncio.sleep(interval)
            horizon = asyncio.get_running_loop().time() - SETTLED_MEMORY
            self._settled = {k: t for k, t in self._settled.items() if t >= horizon}
            try:
                await self.alert_store.purge_expired(datetime.now(UTC))
                expired = await self.gw.messages.expire_deliveries(datetime.now(UTC))
                if expired:
                    log.warning("%d deliveries expired undelivered", expired)
                    self.gw.metrics.deliveries.labels("any", "expired").inc(expired)
                for account_id in self.gw.accounts_with_receivers():
                    await self.resume_account(account_id)
                for account_id in await self.gw.messages.accounts_waiting(datetime.now(UTC)):
                    if self.gw.receiver_for(account_id) is None:
                        self.gw.outbinder.want(account_id)
            except Exception:
                log.exception("delivery sweep failed")
