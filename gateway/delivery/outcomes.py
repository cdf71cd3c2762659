"""How messages end: history updated and the customer's receipt queued, in one commit.

An outcome comes from an upstream receipt (gateway.delivery.inbound) or is decided
here in the gateway (expired, refused, cancelled, STOP-listed). The final state and the
receipt that reports it are committed together, so a crash cannot leave a DELIVERED
message whose receipt was never queued; only then is the receipt handed to a receiver.
A failure on an absent subscriber whose submit asked for set_dpf is remembered for
alert_notification in the same commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from gateway.delivery.coalescer import Coalescer
from gateway.delivery.deliveries import PendingDelivery
from pdu.codec import encode_body
from pdu.receipt import (
    FINAL_STATES,
    MessageState,
    is_absent_subscriber,
    receipt_deliver_sm,
    wants_receipt,
)
from pdu.text import decode_short_message
from pdu.tlv import Tag, TlvError, decode_tlvs
from store.batcher import NewMessage

if TYPE_CHECKING:
    from store.messages import MessageStore

# Characters of the message a receipt quotes (SMPP 3.4 Appendix B).
QUOTED = 20
_ALERTABLE_STATES = frozenset({MessageState.UNDELIVERABLE, MessageState.EXPIRED})


@dataclass(slots=True)
class Outcome:
    msg: NewMessage
    state: int
    error: int
    done_at: datetime
    network_error: bytes | None = None
    # Segments delivered, for a message the gateway split (None: all or none, by state).
    delivered: int | None = None
    # Loop time the upstream's receipt was read (0: decided here), for DLR latency.
    received_at: float = 0.0


class AccountPolicy(Protocol):
    def vendor_tlvs(self, account_id: int) -> bool: ...
    def delivery_ttl(self, account_id: int) -> timedelta: ...


class Router(Protocol):
    def route(self, delivery: PendingDelivery) -> bool: ...


def quoted_text(msg: NewMessage) -> str:
    try:
        return decode_short_message(msg.body or b"", msg.data_coding)[:QUOTED]
    except ValueError:
        return ""


def asked_set_dpf(msg: NewMessage) -> bool:
    if not msg.tlvs:
        return False
    try:
        tlvs = decode_tlvs(msg.tlvs, 0, len(msg.tlvs))
    except TlvError:
        return False
    return any(tag == Tag.SET_DPF and value == b"\x01" for tag, value in tlvs)


def wants_alert(o: Outcome) -> bool:
    """The message failed on an absent subscriber and its submit asked for set_dpf."""
    return (
        o.state in _ALERTABLE_STATES and is_absent_subscriber(o.error, o.network_error)
        and asked_set_dpf(o.msg)
    )


def receipt_body(o: Outcome, *, vendor_tlvs: bool) -> bytes:
    """One receipt per message the client holds: the id it was given (a submit_multi's
    for every destination), and for a message the gateway split, its segments counted
    in sub/dlvrd (a client's own part is one segment)."""
    msg = o.msg
    sub = max(msg.segments or 1, 1)
    return encode_body(receipt_deliver_sm(
        message_id=msg.client_id, state=o.state, err=o.error, submit_date=msg.created_at,
        done_date=o.done_at, text=quoted_text(msg),
        mobile=(msg.dest_ton, msg.dest_npi, msg.dest_addr),
        esme=(msg.source_ton, msg.source_npi, msg.source_addr),
        sub=sub, dlvrd=sub if o.state == MessageState.DELIVERED else (o.delivered or 0),
        network_error=o.network_error,
        # The provider's own id of this one message (a submit_multi row's).
        outgoing_id=str(msg.id) if vendor_tlvs else None,
    ))


class Outcomes:
    def __init__(
        self, messages: MessageStore, policy: AccountPolicy, deliveries: Router, *,
        alert_ttl: timedelta, batch_size: int,
    ) -> None:
        self._messages = messages
        self._policy = policy
        self._deliveries = deliveries
        self._alert_ttl = alert_ttl
        self._pending: Coalescer[tuple[Outcome, asyncio.Future[None]]] = Coalescer(
            "outcomes", self._flush, max_batch=batch_size
        )

    def add(self, msg: NewMessage, state: int, error: int, done_at: datetime,
            network_error: bytes | None = None, *, received_at: float = 0.0,
            ) -> asyncio.Future[None]:
        """An outcome, recorded with others in the next commit; the future resolves once
        it is durable (and its receipt, if any, is on its way)."""
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        outcome = Outcome(msg, state, error, done_at, network_error, received_at=received_at)
        self._pending.add((outcome, durable))
        return durable

    async def _flush(self, batch: list[tuple[Outcome, asyncio.Future[None]]]) -> None:
        await self.record([outcome for outcome, _ in batch])
        for _, durable in batch:
            if not durable.done():
                durable.set_result(None)

    async def drain(self) -> None:
        await self._pending.drain()

    async def record(self, batch: list[Outcome]) -> None:
        """Update history and queue the receipts in one transaction, then push them."""
        updates = [(o.msg.id, MessageState(o.state).name, o.error, o.done_at) for o in batch]
        rows, alerts, received = [], [], []
        for o in batch:
            account_id = o.msg.account_id
            if o.state in FINAL_STATES and wants_receipt(o.msg.registered_delivery, o.state):
                rows.append({
                    "account_id": account_id, "message_id": o.msg.id, "kind": "dlr",
                    "body": receipt_body(o, vendor_tlvs=self._policy.vendor_tlvs(account_id)),
                    "created_at": o.done_at, "next_attempt_at": o.done_at,
                    "expires_at": o.done_at + self._policy.delivery_ttl(account_id),
                })
                received.append(o.received_at)
            if wants_alert(o):
                msg = o.msg
                alerts.append({
                    "account_id": account_id,
                    "ms_addr": msg.dest_addr, "ms_ton": msg.dest_ton, "ms_npi": msg.dest_npi,
                    "esme_addr": msg.source_addr, "esme_ton": msg.source_ton,
                    "esme_npi": msg.source_npi,
                    "created_at": o.done_at, "expires_at": o.done_at + self._alert_ttl,
                })
        ids = await self._messages.record_outcomes(updates, rows, alerts)
        for row, delivery_id, received_at in zip(rows, ids, received, strict=True):
            self._deliveries.route(
                PendingDelivery(delivery_id, row["account_id"], "dlr", row["body"], received_at)
            )
