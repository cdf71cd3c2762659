"""The submit path: from a decoded submit_sm (data_sm, submit_multi) to a durable,
debited message.

Checks run in memory (flow limits, addresses, sender, flags, times, coding, segments,
price, credit); the message and its debit then go to the write-behind batcher, and
the response is written from the batcher's callback, only after the commit
(ARCHITECTURE principle 3). Only then is the message handed on towards the upstream.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from gateway.validation import CheckedSubmit, SubmitRejected, check_destination, check_submit
from pdu.codec import (
    DataSm,
    GenericNack,
    Pdu,
    SmeDest,
    SubmitMulti,
    SubmitSm,
    UnsuccessSme,
    addresses,
)
from pdu.receipt import MessageState
from pdu.status import CommandStatus
from store.batcher import NewMessage
from store.errors import InsufficientCredit

if TYPE_CHECKING:
    from gateway.accounts import Account
    from gateway.app import Gateway
    from gateway.session import SmppSession

log = logging.getLogger(__name__)

# Insufficient credit has no status of its own in SMPP 3.4; ESME_RSUBMITFAIL is the
# standard one every client understands (a vendor value would drop aiosmpplib).
NO_CREDIT_STATUS = CommandStatus.ESME_RSUBMITFAIL
# The provider's DLR error for a recipient who sent STOP (blacklisted).
STOP_LIST_ERROR = 53


class Submitter:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        s = gateway.settings
        self._max_validity = timedelta(seconds=s.dlr_max_age)

    # --- limits and checks shared by every submitting operation --------------------

    def _admit(self, session: SmppSession, pdu: Pdu, count: int = 1) -> bool:
        """Window and messages-per-second limits of the connection."""
        if session.outstanding_submits >= session.window or not session.rate.take(count):
            self.gw.metrics.messages.labels("MT", "throttled").inc()
            session.respond(pdu, CommandStatus.ESME_RTHROTTLED)
            return False
        return True

    def _check(self, account: Account, pdu: SubmitSm) -> CheckedSubmit:
        checked = check_submit(
            pdu,
            gsm_packed=account.gsm_packed,
            max_segments=account.max_segments,
            now=datetime.now(UTC),
            max_validity=self._max_validity,
        )
        if not account.sender_status(pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi):
            raise SubmitRejected(
                CommandStatus.ESME_RINVSRCADR, f"sender {pdu.source_addr!r} is not enabled"
            )
        return checked

    def _check_route(self, account: Account, destination: str) -> None:
        # Refused here rather than accepted and dropped: no upstream serves it.
        if self.gw.router.route_for(account.system_id, destination) is None:
            raise SubmitRejected(CommandStatus.ESME_RINVDSTADR, f"no route to {destination}")

    def _message(self, account: Account, pdu: SubmitSm, checked: CheckedSubmit, cost: int,
                 dest: SmeDest | None = None) -> NewMessage:
        return NewMessage(
            id=self.gw.ids.next_id(),
            account_id=account.id,
            direction="MT",
            source_addr=pdu.source_addr,
            source_ton=pdu.source_addr_ton,
            source_npi=pdu.source_addr_npi,
            dest_addr=dest.addr if dest else pdu.destination_addr,
            dest_ton=dest.ton if dest else pdu.dest_addr_ton,
            dest_npi=dest.npi if dest else pdu.dest_addr_npi,
            esm_class=pdu.esm_class,
            registered_delivery=pdu.registered_delivery,
            data_coding=pdu.data_coding,
            # Stored even for accounts that keep no bodies: the outbox sends from the
            # row, and clears the body once an upstream has taken the message.
            body=checked.body,
            segments=checked.segments,
            cost=cost,
            status="ACCEPTED",
            created_at=datetime.now(UTC),
            schedule_at=checked.schedule_at,
            expires_at=checked.expires_at,
        )

    # --- submit_sm -------------------------------------------------------------------

    def submit_sm(self, session: SmppSession, pdu: SubmitSm) -> None:
        account = session.account
        if not self._admit(session, pdu):
            return
        try:
            checked = self._check(account, pdu)
            self._check_route(account, pdu.destination_addr)
        except SubmitRejected as exc:
            self._reject(session, pdu, exc)
            return
        self._accept(session, pdu, account, checked, pdu.destination_addr)

    def _accept(self, session, pdu, account, checked: CheckedSubmit, destination: str) -> None:
        gw = self.gw
        if account.is_stop_listed(destination):
            self._stop_listed(session, pdu, account, checked, destination)
            return
        cost = checked.segments * gw.accounts.price(account, destination)
        if not gw.accounts.reserve(account, cost):
            gw.metrics.messages.labels("MT", "no_credit").inc()
            session.respond(pdu, NO_CREDIT_STATUS)
            return
        msg = self._message(account, pdu, checked, cost)
        session.outstanding_submits += 1
        future = gw.batcher.enqueue(msg)
        future.add_done_callback(
            partial(self._committed, session, pdu, account, msg)
        )

    def _stop_listed(self, session, pdu, account, checked: CheckedSubmit, destination: str) -> None:
        """The recipient sent STOP: refuse, or (the default) accept without charge and
        answer with a failed receipt carrying error 53, as the provider does."""
        if account.stop_mode == "refuse":
            self._reject(session, pdu, SubmitRejected(
                CommandStatus.ESME_RINVDSTADR, f"{destination} is on the STOP list"))
            return
        msg = self._message(account, pdu, checked, 0)
        # Stored already ended, so the outbox never picks it up.
        msg.status = "REJECTED"
        session.outstanding_submits += 1
        future = self.gw.batcher.enqueue(msg)
        future.add_done_callback(partial(self._stop_committed, session, pdu, msg))

    def _stop_committed(self, session, pdu, msg: NewMessage, future) -> None:
        session.outstanding_submits -= 1
        if future.cancelled() or future.exception() is not None:
            session.respond(pdu, CommandStatus.ESME_RSYSERR)
            return
        self.gw.metrics.messages.labels("MT", "stop_listed").inc()
        session.respond(pdu, 0, message_id=str(msg.id))
        self.gw.dispatcher.outcome(msg, MessageState.REJECTED, STOP_LIST_ERROR, datetime.now(UTC))

    def _reject(self, session: SmppSession, pdu: Pdu, exc: SubmitRejected) -> None:
        log.debug("%s: refused %s: %s", session.peer, pdu.name, exc.reason)
        self.gw.metrics.messages.labels("MT", "invalid").inc()
        session.respond(pdu, exc.status)

    def _committed(self, session, pdu, account, msg: NewMessage, future) -> None:
        gw = self.gw
        session.outstanding_submits -= 1
        exc = future.exception() if not future.cancelled() else asyncio.CancelledError()
        if exc is None:
            gw.accounts.settle(account, msg.cost)
            gw.accounts.after_debit(account)
            gw.metrics.credits_debited.inc(msg.cost / 100)
            gw.metrics.messages.labels("MT", "accepted").inc()
            session.respond(pdu, 0, message_id=str(msg.id))
            self.gw.outbox.committed(msg)
            return
        gw.accounts.release(account, msg.cost)
        if isinstance(exc, InsufficientCredit):
            gw.metrics.messages.labels("MT", "no_credit").inc()
            session.respond(pdu, NO_CREDIT_STATUS)
        else:
            log.error("commit of message %s failed: %r", msg.id, exc)
            gw.metrics.messages.labels("MT", "error").inc()
            session.respond(pdu, CommandStatus.ESME_RSYSERR)

    # --- data_sm: the same message, its text in message_payload ----------------------

    def data_sm(self, session: SmppSession, pdu: DataSm) -> None:
        as_submit = SubmitSm(
            sequence_number=pdu.sequence_number,
            service_type=pdu.service_type,
            **addresses(pdu),
            esm_class=pdu.esm_class,
            registered_delivery=pdu.registered_delivery,
            data_coding=pdu.data_coding,
            tlvs=pdu.tlvs,
        )
        if not self._admit(session, pdu):
            return
        account = session.account
        try:
            checked = self._check(account, as_submit)
            self._check_route(account, pdu.destination_addr)
        except SubmitRejected as exc:
            self._reject(session, pdu, exc)
            return
        # Answer as data_sm_resp: keep the original request for the response type.
        self._accept(session, pdu, account, checked, pdu.destination_addr)

    # --- submit_multi ----------------------------------------------------------------

    def submit_multi(self, session: SmppSession, pdu: SubmitMulti) -> None:
        """One message per SME destination, all answered by one submit_multi_resp.

        The response's message_id is the first accepted destination's; each
        destination's receipt carries its own id. Distribution lists are not offered.
        """
        account = session.account
        if not self._admit(session, pdu, len(pdu.dest_addresses)):
            return
        unsuccess: list[UnsuccessSme] = []
        accepted: list[SmeDest] = []
        template = SubmitSm(
            source_addr_ton=pdu.source_addr_ton, source_addr_npi=pdu.source_addr_npi,
            source_addr=pdu.source_addr, dest_addr_ton=1, dest_addr_npi=1,
            destination_addr="10000000", esm_class=pdu.esm_class,
            schedule_delivery_time=pdu.schedule_delivery_time,
            validity_period=pdu.validity_period, registered_delivery=pdu.registered_delivery,
            replace_if_present_flag=pdu.replace_if_present_flag, data_coding=pdu.data_coding,
            priority_flag=pdu.priority_flag, short_message=pdu.short_message, tlvs=pdu.tlvs,
        )
        try:
            checked = self._check(account, template)
        except SubmitRejected as exc:
            self._reject(session, pdu, exc)
            return
        for dest in pdu.dest_addresses:
            if not isinstance(dest, SmeDest):
                unsuccess.append(UnsuccessSme(0, 0, dest.name, CommandStatus.ESME_RCNTSUBDL))
                continue
            try:
                check_destination(dest.ton, dest.npi, dest.addr)
                self._check_route(account, dest.addr)
            except SubmitRejected as exc:
                unsuccess.append(UnsuccessSme(dest.ton, dest.npi, dest.addr, exc.status))
                continue
            accepted.append(dest)
        costs = [checked.segments * self.gw.accounts.price(account, d.addr) for d in accepted]
        if not accepted:
            session.respond(pdu, CommandStatus.ESME_RINVNUMDESTS, unsuccess_smes=unsuccess)
            return
        if not self.gw.accounts.reserve(account, sum(costs)):
            session.respond(pdu, NO_CREDIT_STATUS)
            return
        msgs = [self._message(account, template, checked, c, d) for d, c in zip(accepted, costs)]
        session.outstanding_submits += 1
        futures = [self.gw.batcher.enqueue(m) for m in msgs]
        gathered = asyncio.gather(*futures, return_exceptions=True)
        gathered.add_done_callback(
            partial(self._multi_committed, session, pdu, account, msgs, unsuccess)
        )

    def _multi_committed(self, session, pdu, account, msgs, unsuccess, gathered) -> None:
        gw = self.gw
        session.outstanding_submits -= 1
        first_id = None
        for msg, result in zip(msgs, gathered.result()):
            if isinstance(result, BaseException):
                gw.accounts.release(account, msg.cost)
                status = (
                    NO_CREDIT_STATUS if isinstance(result, InsufficientCredit)
                    else CommandStatus.ESME_RSYSERR
                )
                unsuccess.append(UnsuccessSme(msg.dest_ton, msg.dest_npi, msg.dest_addr, status))
                continue
            gw.accounts.settle(account, msg.cost)
            gw.metrics.credits_debited.inc(msg.cost / 100)
            gw.metrics.messages.labels("MT", "accepted").inc()
            first_id = first_id or str(msg.id)
            self.gw.outbox.committed(msg)
        gw.accounts.after_debit(account)
        if first_id is None:
            session.respond(pdu, CommandStatus.ESME_RSUBMITFAIL, unsuccess_smes=unsuccess)
        else:
            session.respond(pdu, 0, message_id=first_id, unsuccess_smes=unsuccess)

    # --- everything else a transmitter may send ----------------------------------------

    def other_request(self, session: SmppSession, pdu: Pdu) -> None:
        handler = self.gw.operations.get(pdu.command_id) if self.gw.operations else None
        if handler is not None:
            asyncio.get_running_loop().create_task(self._run_operation(handler, session, pdu))
            return
        session.send_pdu(
            GenericNack(
                sequence_number=pdu.sequence_number, command_status=CommandStatus.ESME_RINVCMDID
            )
        )

    async def _run_operation(self, handler, session: SmppSession, pdu: Pdu) -> None:
        try:
            response = await handler(self.gw, session.account, pdu)
        except Exception:
            log.exception("%s failed", pdu.name)
            session.respond(pdu, CommandStatus.ESME_RSYSERR)
            return
        session.send_pdu(response)
