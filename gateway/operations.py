"""query_sm, cancel_sm and replace_sm: questions and changes about messages already accepted.

query_sm answers from history. cancel_sm and replace_sm act only on messages still
waiting in the outbox (ACCEPTED and not being handed to an upstream right now); a
message that already left answers ESME_RCANCELFAIL / ESME_RREPLACEFAIL, as SMPP 3.4
4.9 and 4.10 say. Each function takes the request PDU and returns the response PDU;
the session writes it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.outbox import message_from_row
from pdu.codec import CancelSm, Pdu, QuerySm, ReplaceSm, response_for
from pdu.receipt import MessageState
from pdu.status import CommandStatus

if TYPE_CHECKING:
    from gateway.accounts import Account
    from gateway.app import Gateway

# Our history status -> SMPP message_state (5.2.28). A message waiting in our outbox is
# ENROUTE for the customer: SMPP's ACCEPTED means "read by customer service".
STATE_BY_STATUS = {
    "ACCEPTED": MessageState.ENROUTE,
    "ENROUTE": MessageState.ENROUTE,
    "DELIVERED": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTED": MessageState.REJECTED,
}


def smpp_absolute_time(moment: datetime) -> str:
    """YYMMDDhhmmss000+ in UTC (tenths 0, offset 00 quarter-hours)."""
    return moment.astimezone(UTC).strftime("%y%m%d%H%M%S") + "000+"


def _our_id(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 20 else None


async def _owned_row(gw: Gateway, account: Account, message_id: int) -> dict[str, Any] | None:
    row = await gw.messages.get(message_id)
    if row is None or row["account_id"] != account.id or row["direction"] != "MT":
        # Another account's message is answered as unknown: ids must not be probed.
        return None
    return row


async def query_sm(gw: Gateway, account: Account, pdu: QuerySm) -> Pdu:
    message_id = _our_id(pdu.message_id)
    if message_id is None:
        return response_for(pdu, CommandStatus.ESME_RINVMSGID)
    row = await _owned_row(gw, account, message_id)
    if row is None or (pdu.source_addr and pdu.source_addr != row["source_addr"]):
        return response_for(pdu, CommandStatus.ESME_RQUERYFAIL)
    state = STATE_BY_STATUS.get(row["status"], MessageState.UNKNOWN)
    final = state != MessageState.ENROUTE and row["done_at"] is not None
    return response_for(
        pdu,
        0,
        message_id=pdu.message_id,
        final_date=smpp_absolute_time(row["done_at"]) if final else "",
        message_state=int(state),
        error_code=min(int(row["error_code"] or 0), 255),
    )


async def cancel_sm(gw: Gateway, account: Account, pdu: CancelSm) -> Pdu:
    """Cancel one message (message_id) or all from source_addr to destination_addr."""
    now = datetime.now(UTC)
    match: dict[str, Any] = {}
    if pdu.message_id:
        message_id = _our_id(pdu.message_id)
        if message_id is None:
            return response_for(pdu, CommandStatus.ESME_RINVMSGID)
        match["message_id"] = message_id
    elif not pdu.destination_addr:
        # Without a message_id the spec needs both addresses to know what to cancel.
        return response_for(pdu, CommandStatus.ESME_RCANCELFAIL)
    if pdu.source_addr:
        match["source_addr"] = pdu.source_addr
    if pdu.destination_addr:
        match["dest_addr"] = pdu.destination_addr
    cancelled = await gw.outbox.store.cancel(account.id, now, **match)
    if not cancelled:
        return response_for(pdu, CommandStatus.ESME_RCANCELFAIL)
    gw.metrics.messages.labels("MT", "cancelled").inc(len(cancelled))
    # A customer that asked for receipts hears of the cancellation as DELETED; what
    # the messages cost was refunded with the cancellation, in the store.
    for row in (await gw.messages.get_many(cancelled)).values():
        account.balance += int(row["cost"] or 0)
        gw.dispatcher.outcome(message_from_row(row), MessageState.DELETED, 0, now)
    return response_for(pdu, 0)


async def replace_sm(gw: Gateway, account: Account, pdu: ReplaceSm) -> Pdu:
    from pdu.smpptime import InvalidSmppTime, parse_smpp_time

    message_id = _our_id(pdu.message_id)
    if message_id is None:
        return response_for(pdu, CommandStatus.ESME_RINVMSGID)
    now = datetime.now(UTC)
    row = await _owned_row(gw, account, message_id)
    if row is None or (pdu.source_addr and pdu.source_addr != row["source_addr"]):
        return response_for(pdu, CommandStatus.ESME_RREPLACEFAIL)
    values: dict[str, Any] = {
        "body": pdu.short_message,
        "registered_delivery": pdu.registered_delivery,
    }
    try:
        if pdu.schedule_delivery_time:
            values["schedule_at"] = parse_smpp_time(pdu.schedule_delivery_time, now)
    except InvalidSmppTime:
        return response_for(pdu, CommandStatus.ESME_RINVSCHED)
    try:
        if pdu.validity_period:
            values["expires_at"] = parse_smpp_time(pdu.validity_period, now)
    except InvalidSmppTime:
        return response_for(pdu, CommandStatus.ESME_RINVEXPIRY)
    if not await gw.outbox.store.replace(account.id, message_id, now, values):
        return response_for(pdu, CommandStatus.ESME_RREPLACEFAIL)
    gw.metrics.messages.labels("MT", "replaced").inc()
    gw.outbox.notify()
    return response_for(pdu, 0)
