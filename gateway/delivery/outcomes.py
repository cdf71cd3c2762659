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
from functools import partial
from typing import Protocol

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
from store.writer import AlertRow, DeliveryRow, NewMessage, Then

# Characters of the message a receipt quotes (SMPP 3.4 Appendix B).
QUOTED = 20
_ALERTABLE_STATES = frozenset({MessageState.UNDELIVERABLE, MessageState.EXPIRED})
# The history's status of each message state (MessageState(n).name, without the enum
# call per outcome).
_STATUS_NAMES = {int(s): s.name for s in MessageState}


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
    def new_row(
        self, delivery_id: int, account_id: int, message_id: int | None, kind: str,
        body: bytes, created_at: datetime, expires_at: datetime,
    ) -> DeliveryRow: ...

    def committed(self, row: DeliveryRow, received_at: float = 0.0) -> None: ...


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


class OutcomeWriter(Protocol):
    def outcome(
        self, message_id: int, status: str, error_code: int, done_at: datetime | None, *,
        delivery: DeliveryRow | None = None, alert: AlertRow | None = None,
        then: Then | None = None,
    ) -> asyncio.Future[None] | None: ...


class IdSource(Protocol):
    def next_id(self) -> int: ...


class Outcomes:
    def __init__(
        self, writer: OutcomeWriter, policy: AccountPolicy, deliveries: Router,
        ids: IdSource, *, alert_ttl: timedelta,
    ) -> None:
        self._writer = writer
        self._policy = policy
        self._deliveries = deliveries
        self._ids = ids
        self._alert_ttl = alert_ttl

    def add(self, msg: NewMessage, state: int, error: int, done_at: datetime,
            network_error: bytes | None = None, *, received_at: float = 0.0,
            delivered: int | None = None, then: Then | None = None) -> None:
        """The message ended as `state`: written with its receipt (if the submit asked
        for one) in the store writer's next commit; the receipt goes to a receiver once
        that commit is durable, which is when `then(None, error)` is called."""
        o = Outcome(msg, state, error, done_at, network_error, delivered, received_at)
        account_id = msg.account_id
        delivery = None
        if state in FINAL_STATES and wants_receipt(msg.registered_delivery, state):
            delivery = self._deliveries.new_row(
                self._ids.next_id(), account_id, msg.id, "dlr",
                receipt_body(o, vendor_tlvs=self._policy.vendor_tlvs(account_id)),
                done_at, done_at + self._policy.delivery_ttl(account_id),
            )
        alert = None
        if wants_alert(o):
            alert = AlertRow(
                account_id=account_id, ms_addr=msg.dest_addr, ms_ton=msg.dest_ton,
                ms_npi=msg.dest_npi, esme_addr=msg.source_addr, esme_ton=msg.source_ton,
                esme_npi=msg.source_npi, created_at=done_at,
                expires_at=done_at + self._alert_ttl,
            )
        if delivery is not None:
            then = partial(self._route, delivery, received_at, then)
        self._writer.outcome(msg.id, _STATUS_NAMES[state], error, done_at,
                             delivery=delivery, alert=alert, then=then or _nothing)

    def _route(self, delivery: DeliveryRow, received_at: float, then: Then | None, _: object,
               error: BaseException | None) -> None:
        # Not sent unless it is in the store: its acknowledgement must find its row.
        if error is None:
            self._deliveries.committed(delivery, received_at)
        if then is not None:
            then(None, error)

    async def record(self, batch: list[Outcome]) -> None:
        """Several outcomes at once (receipts matched through the store); returns when
        all are durable."""
        loop = asyncio.get_running_loop()
        durable = []
        for o in batch:
            future: asyncio.Future[None] = loop.create_future()
            self.add(o.msg, o.state, o.error, o.done_at, o.network_error,
                     received_at=o.received_at, delivered=o.delivered,
                     then=partial(_settle_future, future))
            durable.append(future)
        await asyncio.gather(*durable)


def _nothing(_: object, error: BaseException | None) -> None:
    """An outcome nobody waits for: the writer retries its bookkeeping by itself."""


def _settle_future(future: asyncio.Future[None], _: object, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
