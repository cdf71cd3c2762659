"""DLRs (and later MOs) on their way back to the customer's RX/TRX session.

An upstream outcome updates the message's history row and, when the submit asked
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
from pdu.codec import DeliverSm, encode_body
from pdu.receipt import Receipt, format_receipt, stat_for_state
from pdu.text import decode_short_message
from pdu.tlv import Tag, cstr_tlv, int_tlv
from store.batcher import NewMessage

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger(__name__)

ESM_CLASS_DELIVERY_RECEIPT = 0x04
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


def build_dlr_body(msg: NewMessage, state: int, error: int, done_at: datetime) -> bytes:
    """The deliver_sm body of a receipt, in the format clients.md says all accept."""
    message_id = str(msg.id)
    text = format_receipt(
        Receipt(
            message_id=message_id,
            sub=1,
            dlvrd=1 if state == 2 else 0,
            submit_date=msg.created_at,
            done_date=done_at,
            stat=stat_for_state(state),
            err=error,
            text=receipt_text(msg),
        )
    )
    pdu = DeliverSm(
        source_addr_ton=msg.dest_ton,
        source_addr_npi=msg.dest_npi,
        source_addr=msg.dest_addr,
        dest_addr_ton=msg.source_ton,
        dest_addr_npi=msg.source_npi,
        destination_addr=msg.source_addr,
        esm_class=ESM_CLASS_DELIVERY_RECEIPT,
        short_message=text,
        tlvs=[
            cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, message_id),
            int_tlv(Tag.MESSAGE_STATE, state),
        ],
    )
    return encode_body(pdu)


class Dispatcher:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        s = gateway.settings
        self._outcomes: Coalescer[Outcome] = Coalescer(
            "outcomes", self._flush_outcomes, max_batch=s.batch_max_size
        )
        self._acks: Coalescer[int] = Coalescer(
            "delivery-acks", self._flush_acks, max_batch=s.batch_max_size
        )
        self._retries: Coalescer[int] = Coalescer("delivery-retries", self._flush_retries)
        # Deliveries handed to a session, or acknowledged but not yet marked in the
        # store: a reload from the store must not send them again.
        self._in_flight: set[int] = set()
        self._sweeper: asyncio.Task | None = None

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for c in (self._outcomes, self._acks, self._retries):
            await c.drain()

    # --- from the upstream ---------------------------------------------------------

    def outcome(self, msg: NewMessage, state: int, error: int, done_at: datetime) -> None:
        self._outcomes.add(Outcome(msg, state, error, done_at))

    async def _flush_outcomes(self, batch: list[Outcome]) -> None:
        updates = [(o.msg.id, STATUS_BY_STATE[o.state], o.error, o.done_at) for o in batch]
        expires = timedelta(seconds=self.gw.settings.dlr_max_age)
        rows = []
        for o in batch:
            if wants_receipt(o.msg.registered_delivery, o.state):
                rows.append(
                    {
                        "account_id": o.msg.account_id,
                        "message_id": o.msg.id,
                        "kind": "dlr",
                        "body": build_dlr_body(o.msg, o.state, o.error, o.done_at),
                        "created_at": o.done_at,
                        "next_attempt_at": o.done_at,
                        "expires_at": o.done_at + expires,
                    }
                )
        ids = await self.gw.messages.record_outcomes(updates, rows)
        for row, delivery_id in zip(rows, ids):
            self._route(PendingDelivery(delivery_id, row["account_id"], "dlr", row["body"]))

    # --- to the customer -----------------------------------------------------------

    def _route(self, delivery: PendingDelivery) -> bool:
        session = self.gw.receiver_for(delivery.account_id)
        if session is None:
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
        self._in_flight.difference_update(ids)

    async def _flush_retries(self, ids: list[int]) -> None:
        later = datetime.now(UTC) + timedelta(seconds=self.gw.settings.dlr_retry_interval)
        for delivery_id in ids:
            await self.gw.messages.reschedule(delivery_id, later)
        self._in_flight.difference_update(ids)

    async def resume_account(self, account_id: int) -> int:
        """Send what waits in the store for an account that has just bound a receiver."""
        now = datetime.now(UTC)
        rows = await self.gw.messages.due_deliveries(account_id, now, 1000)
        sent = 0
        for row in rows:
            if row["id"] in self._in_flight:
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
            try:
                expired = await self.gw.messages.expire_deliveries(datetime.now(UTC))
                if expired:
                    log.warning("%d deliveries expired undelivered", expired)
                    self.gw.metrics.deliveries.labels("any", "expired").inc(expired)
                for account_id in self.gw.accounts_with_receivers():
                    await self.resume_account(account_id)
            except Exception:
                log.exception("delivery sweep failed")
