"""query_sm, cancel_sm and replace_sm: questions and changes about messages already accepted.

query_sm answers from history. cancel_sm and replace_sm act only on messages still
waiting in the outbox (ACCEPTED and not being handed to an upstream right now); a
message that already left answers ESME_RCANCELFAIL / ESME_RREPLACEFAIL, as SMPP 3.4
4.9 and 4.10 say. replace_sm passes every check submit_sm does and is re-priced in the
same transaction. Each function takes the request PDU and returns the response PDU.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from gateway.submit.validation import (
    SubmitRejected,
    check_flags,
    check_times,
    count_message_segments,
    message_body,
)
from pdu.codec import CancelSm, CommandId, Pdu, QuerySm, ReplaceSm, SubmitSm, response_for
from pdu.receipt import MessageState
from pdu.smpptime import format_smpp_time
from pdu.status import CommandStatus
from store.errors import InsufficientCredit
from store.writer import NewMessage

if TYPE_CHECKING:
    from gateway.accounts import Account, AccountDirectory
    from gateway.metrics import GatewayMetrics
    from store.messages import MessageStore
    from store.outbox import OutboxStore

log = logging.getLogger(__name__)


class Client(Protocol):
    account: Account

    def respond(self, request: Pdu, status: int = 0, **body: Any) -> Pdu: ...


class OutcomeSink(Protocol):
    def add(self, msg: NewMessage, state: int, error: int, done_at: datetime) -> None: ...


def state_of(status: str) -> MessageState:
    """SMPP message_state (5.2.28) of a history status (a MessageState name). A message
    waiting in our outbox is ENROUTE for the customer: SMPP's ACCEPTED means "read by
    customer service"."""
    if status == "ACCEPTED":
        return MessageState.ENROUTE
    return MessageState.__members__.get(status, MessageState.UNKNOWN)


def _our_id(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) <= 20 else None


class Operations:
    """query_sm, cancel_sm and replace_sm for a bound transmitter."""

    def __init__(
        self,
        messages: MessageStore,
        outbox: OutboxStore,
        directory: AccountDirectory,
        outcomes: OutcomeSink,
        metrics: GatewayMetrics,
        *,
        on_changed: Callable[[], None],
        default_validity: timedelta,
        max_validity: timedelta,
    ) -> None:
        self._messages = messages
        self._outbox = outbox
        self._directory = directory
        self._outcomes = outcomes
        self._metrics = metrics
        self._on_changed = on_changed
        self._default_validity = default_validity
        self._max_validity = max_validity
        self._handlers = {
            CommandId.QUERY_SM: self.query_sm,
            CommandId.CANCEL_SM: self.cancel_sm,
            CommandId.REPLACE_SM: self.replace_sm,
        }
        self._running: set[asyncio.Task[None]] = set()

    def handle(self, session: Client, pdu: Pdu) -> None:
        """Answer in a task: each looks at the store."""
        handler = self._handlers.get(pdu.command_id)
        if handler is None:  # the link lets only these through
            session.respond(pdu, CommandStatus.ESME_RINVCMDID)
            return
        task = asyncio.get_running_loop().create_task(self._run(handler, session, pdu))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, handler: Any, session: Client, pdu: Pdu) -> None:
        try:
            response = await handler(session.account, pdu)
        except Exception:
            log.exception("%s failed", pdu.name)
            session.respond(pdu, CommandStatus.ESME_RSYSERR)
            return
        fields = {f: getattr(response, f) for f, *_ in response.FIELDS}
        session.respond(pdu, response.command_status, **fields)

    async def _owned_row(self, account: Account, message_id: int) -> dict[str, Any] | None:
        row = await self._messages.get(message_id)
        if row is None or row["account_id"] != account.id or row["direction"] != "MT":
            # Another account's message is answered as unknown: ids must not be probed.
            return None
        return row

    async def query_sm(self, account: Account, pdu: QuerySm) -> Pdu:
        message_id = _our_id(pdu.message_id)
        if message_id is None:
            return response_for(pdu, CommandStatus.ESME_RINVMSGID)
        row = await self._owned_row(account, message_id)
        if row is None or (pdu.source_addr and pdu.source_addr != row["source_addr"]):
            return response_for(pdu, CommandStatus.ESME_RQUERYFAIL)
        state = state_of(row["status"])
        final = state != MessageState.ENROUTE and row["done_at"] is not None
        return response_for(
            pdu,
            0,
            message_id=pdu.message_id,
            final_date=format_smpp_time(row["done_at"]) if final else "",
            message_state=int(state),
            error_code=min(int(row["error_code"] or 0), 255),
        )


    async def cancel_sm(self, account: Account, pdu: CancelSm) -> Pdu:
        """Cancel one message (message_id; every destination of a submit_multi) or all
        from source_addr to destination_addr."""
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
            match["dest_addr"] = pdu.destination_addr.removeprefix("+")
        cancelled = await self._outbox.cancel(account.id, now, **match)
        if not cancelled:
            return response_for(pdu, CommandStatus.ESME_RCANCELFAIL)
        self._metrics.mt_ended(MessageState.DELETED, "cancelled", len(cancelled))
        # A customer that asked for receipts hears of the cancellation as DELETED; what
        # the messages cost was refunded with the cancellation, in the store.
        for row in cancelled:
            self._directory.credited(account, int(row["cost"] or 0))
            self._outcomes.add(NewMessage.from_row(row), MessageState.DELETED, 0, now)
        return response_for(pdu, 0)


    async def replace_sm(self, account: Account, pdu: ReplaceSm) -> Pdu:
        """Replace a waiting message's text, schedule, validity and receipt request.

        The new text gets every check a submit_sm gets for the message's data_coding and
        the account's packing and segment limit; empty schedule or validity keep the old
        ones (SMPP 3.4 4.10.1). The message is re-priced: extra segments are debited,
        fewer refunded, in the transaction that replaces it.
        """
        message_id = _our_id(pdu.message_id)
        if message_id is None:
            return response_for(pdu, CommandStatus.ESME_RINVMSGID)
        now = datetime.now(UTC)
        row = await self._owned_row(account, message_id)
        if row is None or row["status"] != "ACCEPTED" or (
            pdu.source_addr and pdu.source_addr != row["source_addr"]
        ):
            return response_for(pdu, CommandStatus.ESME_RREPLACEFAIL)
        # The stored message with the replacement's fields: what submit_sm would check.
        as_submit = SubmitSm(
            esm_class=row["esm_class"], data_coding=row["data_coding"],
            registered_delivery=pdu.registered_delivery,
            schedule_delivery_time=pdu.schedule_delivery_time,
            validity_period=pdu.validity_period, short_message=pdu.short_message, tlvs=pdu.tlvs,
        )
        try:
            check_flags(as_submit)
            schedule_at, expires_at = check_times(
                as_submit, now, self._default_validity, self._max_validity
            )
            body = message_body(as_submit)
            segments = count_message_segments(
                as_submit, body, gsm_packed=account.gsm_packed, max_segments=account.max_segments
            )
        except SubmitRejected as exc:
            return response_for(pdu, exc.status)
        values: dict[str, Any] = {
            "body": body,
            "segments": segments,
            "registered_delivery": pdu.registered_delivery,
            "cost": segments * self._directory.price(account, row["dest_addr"]),
        }
        if pdu.schedule_delivery_time:
            values["schedule_at"] = schedule_at
        if pdu.validity_period:
            values["expires_at"] = expires_at
        old_cost = int(row["cost"])
        delta = values["cost"] - old_cost
        if delta > 0 and not self._directory.reserve(account, delta):
            return response_for(pdu, CommandStatus.ESME_RREPLACEFAIL)
        try:
            replaced = await self._outbox.replace(
                account.id, message_id, now, values, old_cost=old_cost
            )
        except InsufficientCredit:
            replaced = False
        except BaseException:
            if delta > 0:
                self._directory.release(account, delta)
            raise
        if delta > 0:
            if replaced:
                self._directory.settle(account, delta)
            else:
                self._directory.release(account, delta)
        elif delta < 0 and replaced:
            self._directory.credited(account, -delta)
        if not replaced:
            return response_for(pdu, CommandStatus.ESME_RREPLACEFAIL)
        self._on_changed()
        return response_for(pdu, 0)
