"""The submit path: from a decoded submit_sm to a durable, debited message.

Checks run in memory (account, window, addresses, price, credit); the message and
its debit then go to the write-behind batcher, and submit_sm_resp is written from
the batcher's callback, only after the commit (ARCHITECTURE principle 3). Only then
is the message handed to the upstream.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING

from pdu.codec import GenericNack, Pdu, SubmitSm
from pdu.status import CommandStatus
from pdu.tlv import Tag
from store.batcher import NewMessage
from store.errors import InsufficientCredit

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.session import SmppSession

log = logging.getLogger(__name__)

# Until the rate table lands every message costs one credit (in minor units).
FLAT_PRICE_MINOR = 100
# Insufficient credit has no status of its own in SMPP 3.4; ESME_RSUBMITFAIL is the
# standard one every client understands (a vendor value would drop aiosmpplib).
NO_CREDIT_STATUS = CommandStatus.ESME_RSUBMITFAIL


class Submitter:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    def submit_sm(self, session: SmppSession, pdu: SubmitSm) -> None:
        gw = self.gw
        account = session.account
        if session.outstanding_submits >= gw.settings.default_window:
            session.respond(pdu, CommandStatus.ESME_RTHROTTLED)
            return
        status = self._check_addresses(pdu)
        if status:
            session.respond(pdu, status)
            return
        body = pdu.short_message
        if not body:
            body = pdu.get_tlv(Tag.MESSAGE_PAYLOAD) or b""
        cost = FLAT_PRICE_MINOR
        if not gw.accounts.reserve(account, cost):
            gw.metrics.messages.labels("MT", "no_credit").inc()
            session.respond(pdu, NO_CREDIT_STATUS)
            return
        msg = NewMessage(
            id=gw.ids.next_id(),
            account_id=account.id,
            direction="MT",
            source_addr=pdu.source_addr,
            source_ton=pdu.source_addr_ton,
            source_npi=pdu.source_addr_npi,
            dest_addr=pdu.destination_addr,
            dest_ton=pdu.dest_addr_ton,
            dest_npi=pdu.dest_addr_npi,
            esm_class=pdu.esm_class,
            registered_delivery=pdu.registered_delivery,
            data_coding=pdu.data_coding,
            body=body,
            segments=1,
            cost=cost,
            status="ACCEPTED",
            created_at=datetime.now(UTC),
        )
        session.outstanding_submits += 1
        future = gw.batcher.enqueue(msg)
        future.add_done_callback(partial(self._committed, session, pdu, account, msg))

    def _committed(self, session: SmppSession, pdu: Pdu, account, msg: NewMessage, future) -> None:
        gw = self.gw
        session.outstanding_submits -= 1
        exc = future.exception() if not future.cancelled() else RuntimeError("cancelled")
        if exc is None:
            gw.accounts.settle(account, msg.cost)
            gw.metrics.credits_debited.inc(msg.cost / 100)
            gw.metrics.messages.labels("MT", "accepted").inc()
            session.respond(pdu, 0, message_id=str(msg.id))
            gw.upstream.send(msg)
            return
        gw.accounts.release(account, msg.cost)
        if isinstance(exc, InsufficientCredit):
            gw.metrics.messages.labels("MT", "no_credit").inc()
            session.respond(pdu, NO_CREDIT_STATUS)
        else:
            log.error("commit of message %s failed: %r", msg.id, exc)
            gw.metrics.messages.labels("MT", "error").inc()
            session.respond(pdu, CommandStatus.ESME_RSYSERR)

    @staticmethod
    def _check_addresses(pdu: SubmitSm) -> int:
        if not pdu.source_addr:
            return CommandStatus.ESME_RINVSRCADR
        dest = pdu.destination_addr
        if not dest or not dest.isdigit():
            return CommandStatus.ESME_RINVDSTADR
        return CommandStatus.ESME_ROK

    def other_request(self, session: SmppSession, pdu: Pdu) -> None:
        # submit_multi, data_sm, query_sm, cancel_sm and replace_sm arrive with the
        # protocol surface issue; until then they get generic_nack, as the modelled
        # provider answers them.
        session._send_pdu(
            GenericNack(sequence_number=pdu.sequence_number, command_status=CommandStatus.ESME_RINVCMDID)
        )
