"""The submit path: from a decoded submit_sm (data_sm, submit_multi) to a durable,
debited message.

Checks run in memory (flow limits, the addressing policy, flags, times, coding,
segments, price, credit); the message and its debit then go to the node's store
writer (store.writer), and the response is written when its future resolves, only after
the commit (ARCHITECTURE principle 3). Only then is the message handed on towards the
upstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from gateway.submit.validation import (
    Address,
    CheckedSubmit,
    SubmitRejected,
    check_submit,
    resolve_destination,
)
from pdu.codec import (
    DataSm,
    Pdu,
    SmeDest,
    SubmitMulti,
    SubmitSm,
    UnsuccessSme,
    addresses,
)
from pdu.receipt import MessageState
from pdu.status import CommandStatus
from pdu.tlv import Tag, encode_tlvs
from store.errors import InsufficientCredit
from store.writer import NewMessage, Then

if TYPE_CHECKING:
    from gateway.accounts import Account, AccountDirectory
    from gateway.ids import MessageIdGenerator
    from gateway.metrics import GatewayMetrics
    from gateway.upstream.router import Router


class RateLimit(Protocol):
    def charge(self, n: float) -> bool: ...


class SmppSession(Protocol):
    """What the pipeline uses of the customer's session."""

    account: Account
    peer: str
    rate: RateLimit
    loop: asyncio.AbstractEventLoop

    @property
    def received_at(self) -> float:
        """Loop time the bytes of the request being handled arrived."""
        ...

    def respond(self, request: Pdu, status: int = 0, **body: Any) -> Pdu: ...


class StoreWriter(Protocol):
    """Where accepted messages and their debits are committed (store.writer)."""

    def accept(
        self, msg: NewMessage, *, replace_present: bool = False,
        then: Then | None = None,
    ) -> asyncio.Future[list[NewMessage]] | None: ...


class OutcomeSink(Protocol):
    def add(self, msg: NewMessage, state: int, error: int, done_at: datetime) -> None: ...

log = logging.getLogger(__name__)

# Insufficient credit has no status of its own in SMPP 3.4; ESME_RSUBMITFAIL is the
# standard one every client understands (a vendor value would drop aiosmpplib).
NO_CREDIT_STATUS = CommandStatus.ESME_RSUBMITFAIL
# The provider's DLR error for a recipient who sent STOP (blacklisted).
STOP_LIST_ERROR = 53
# message_payload travels as the message body; every other optional parameter the
# client set goes upstream with the message as it came.
_BODY_TAGS = frozenset({Tag.MESSAGE_PAYLOAD})


def forwarded_tlvs(pdu: Pdu) -> bytes | None:
    """The client's optional parameters to keep with the message, in wire form."""
    kept = [(t, v) for t, v in pdu.tlvs if t not in _BODY_TAGS]
    return encode_tlvs(kept) if kept else None


class Submitter:
    def __init__(
        self,
        directory: AccountDirectory,
        router: Router,
        ids: MessageIdGenerator,
        writer: StoreWriter,
        outcomes: OutcomeSink,
        metrics: GatewayMetrics,
        *,
        on_committed: Callable[[NewMessage], None],
        default_validity: timedelta,
        max_validity: timedelta,
    ) -> None:
        self._directory = directory
        self._router = router
        self._ids = ids
        self._writer = writer
        self._outcomes = outcomes
        self._metrics = metrics
        self._on_committed = on_committed
        self._default_validity = default_validity
        self._max_validity = max_validity

    # --- limits and checks shared by every submitting operation --------------------

    def _admit(self, session: SmppSession, pdu: Pdu, count: int = 1) -> bool:
        """The messages-per-second limit of the connection (its window is the link's).
        A PDU with several destinations takes all its messages from the rate, going
        into debt rather than being refused for being longer than a burst."""
        if not session.rate.charge(count):
            self._metrics.mt_refused.labels("throttled").inc(count)
            session.respond(pdu, CommandStatus.ESME_RTHROTTLED)
            return False
        return True

    def _check(self, account: Account, pdu: SubmitSm) -> CheckedSubmit:
        return check_submit(
            pdu,
            account.policy,
            now=datetime.now(UTC),
            default_validity=self._default_validity,
            max_validity=self._max_validity,
        )

    def _check_route(self, account: Account, destination: str) -> None:
        # Refused here rather than accepted and dropped: no upstream serves it.
        if self._router.route_for(account.system_id, destination) is None:
            raise SubmitRejected(CommandStatus.ESME_RINVDSTADR, f"no route to {destination}")

    def _message(
        self, account: Account, pdu: Pdu, checked: CheckedSubmit, cost: int,
        dest: Address | None = None, *, status: str = "ACCEPTED", group_id: int | None = None,
    ) -> NewMessage:
        dest = dest or checked.dest
        source = checked.source
        return NewMessage(
            id=self._ids.next_id(),
            account_id=account.id,
            direction="MT",
            source_addr=source.addr,
            source_ton=source.ton,
            source_npi=source.npi,
            dest_addr=dest.addr,
            dest_ton=dest.ton,
            dest_npi=dest.npi,
            esm_class=pdu.esm_class,
            registered_delivery=pdu.registered_delivery,
            data_coding=pdu.data_coding,
            # Stored even for accounts that keep no bodies: the outbox sends from the
            # row, and clears the body once an upstream has taken the message.
            body=checked.body,
            segments=checked.segments,
            cost=cost,
            status=status,
            created_at=datetime.now(UTC),
            schedule_at=checked.schedule_at,
            expires_at=checked.expires_at,
            service_type=pdu.service_type,
            protocol_id=getattr(pdu, "protocol_id", 0),
            priority_flag=getattr(pdu, "priority_flag", 0),
            tlvs=forwarded_tlvs(pdu),
            group_id=group_id,
        )

    def _reject(self, session: SmppSession, pdu: Pdu, exc: SubmitRejected) -> None:
        log.debug("%s: refused %s: %s", session.peer, pdu.name, exc.reason)
        self._metrics.mt_refused.labels("invalid").inc()
        session.respond(pdu, exc.status)

    # --- submit_sm and data_sm -------------------------------------------------------

    def submit_sm(self, session: SmppSession, pdu: SubmitSm) -> None:
        self._submit_one(session, pdu, pdu, replace=pdu.replace_if_present_flag == 1)

    def data_sm(self, session: SmppSession, pdu: DataSm) -> None:
        """The same message as submit_sm, its text in message_payload; answered as
        data_sm_resp (the original request is what the response is built from)."""
        as_submit = SubmitSm(
            sequence_number=pdu.sequence_number,
            service_type=pdu.service_type,
            **addresses(pdu),
            esm_class=pdu.esm_class,
            registered_delivery=pdu.registered_delivery,
            data_coding=pdu.data_coding,
            tlvs=pdu.tlvs,
        )
        self._submit_one(session, pdu, as_submit, replace=False)

    def _submit_one(self, session: SmppSession, pdu: Pdu, submit: SubmitSm, *,
                    replace: bool) -> None:
        account = session.account
        if not self._admit(session, pdu):
            return
        try:
            checked = self._check(account, submit)
            self._check_route(account, checked.dest.addr)
        except SubmitRejected as exc:
            self._reject(session, pdu, exc)
            return
        if account.is_stop_listed(checked.dest.addr):
            if account.stop_mode == "refuse":
                self._reject(session, pdu, SubmitRejected(
                    CommandStatus.ESME_RINVDSTADR, f"{checked.dest.addr} is on the STOP list"))
                return
            # The provider's way: accepted free of charge, answered by a failed receipt.
            msgs = [self._message(account, submit, checked, 0, status="REJECTED")]
            self._commit(session, pdu, account, msgs, [])
            return
        cost = checked.segments * self._directory.price(account, checked.dest.addr)
        if self._directory.reserve(account, cost):
            self._accept_one(session, pdu, account, submit, checked, cost, replace,
                             session.received_at)
            return
        # This node's view may be behind the store (a top-up, another node): the balance
        # is read again before the submit is refused.
        accept = partial(self._accept_one, session, pdu, account, submit, checked, cost,
                         replace, session.received_at)
        self._directory.recheck(account, partial(self._rechecked, session, pdu, account,
                                                 cost, accept))

    def _rechecked(self, session: SmppSession, pdu: Pdu, account: Account, cost: int,
                   then: Callable[[], None]) -> None:
        if self._directory.reserve(account, cost):
            then()
        else:
            self._metrics.mt_refused.labels("no_credit").inc()
            session.respond(pdu, NO_CREDIT_STATUS)

    def _accept_one(self, session, pdu, account, submit, checked, cost, replace,
                    received_at) -> None:
        msg = self._message(account, submit, checked, cost)
        self._writer.accept(msg, replace_present=replace, then=partial(
            self._committed, session, pdu, account, msg, received_at))

    def _committed(self, session, pdu, account, msg: NewMessage, received_at: float,
                   replaced: list[NewMessage] | None, exc: BaseException | None) -> None:
        # Paid or not, the reservation ends; the commit told the directory the balance.
        self._directory.release(account, msg.cost)
        if exc is None:
            self._replaced(replaced)
            self._directory.after_debit(account)
            metrics = self._metrics
            metrics.credits_debited.inc(msg.cost / 100)
            metrics.mt_accepted.inc()
            session.respond(pdu, 0, message_id=str(msg.id))
            metrics.submit_latency.observe(session.loop.time() - received_at)
            self._on_committed(msg)
            return
        if isinstance(exc, InsufficientCredit):
            self._metrics.mt_refused.labels("no_credit").inc()
            session.respond(pdu, NO_CREDIT_STATUS)
        else:
            log.error("commit of message %s failed: %r", msg.id, exc)
            self._metrics.mt_refused.labels("store_error").inc()
            session.respond(pdu, CommandStatus.ESME_RSYSERR)

    def _replaced(self, replaced: list[NewMessage] | None) -> None:
        """replace_if_present_flag took these waiting messages out: refunded in the same
        commit (whose balance the directory was told); a client that asked for receipts
        hears of each as DELETED."""
        now = datetime.now(UTC)
        for old in replaced or ():
            self._metrics.mt_ended(MessageState.DELETED, "replaced")
            self._outcomes.add(old, MessageState.DELETED, 0, now)

    # --- submit_multi (SMPP 3.4 section 4.5) -------------------------------------------

    def submit_multi(self, session: SmppSession, pdu: SubmitMulti) -> None:
        """One message per SME destination, each routed and priced on its own, all under
        the one message_id of submit_multi_resp; every receipt carries that id and is
        told apart by its destination (the receipt's source_addr). Distribution lists
        are not offered (ESME_RCNTSUBDL for each)."""
        account = session.account
        if not self._admit(session, pdu, len(pdu.dest_addresses)):
            return
        template = SubmitSm(
            service_type=pdu.service_type,
            source_addr_ton=pdu.source_addr_ton, source_addr_npi=pdu.source_addr_npi,
            source_addr=pdu.source_addr, dest_addr_ton=1, dest_addr_npi=1,
            destination_addr="10000000", esm_class=pdu.esm_class,
            protocol_id=pdu.protocol_id, priority_flag=pdu.priority_flag,
            schedule_delivery_time=pdu.schedule_delivery_time,
            validity_period=pdu.validity_period, registered_delivery=pdu.registered_delivery,
            replace_if_present_flag=pdu.replace_if_present_flag, data_coding=pdu.data_coding,
            short_message=pdu.short_message, tlvs=pdu.tlvs,
        )
        try:
            checked = self._check(account, template)
        except SubmitRejected as exc:
            self._reject(session, pdu, exc)
            return
        strict = account.policy.strict
        unsuccess: list[UnsuccessSme] = []
        charged: list[tuple[Address, int]] = []
        stopped: list[Address] = []
        for dest in pdu.dest_addresses:
            if not isinstance(dest, SmeDest):
                self._metrics.mt_refused.labels("invalid").inc()
                unsuccess.append(UnsuccessSme(0, 0, dest.name, CommandStatus.ESME_RCNTSUBDL))
                continue
            try:
                address = resolve_destination(dest.ton, dest.npi, dest.addr, strict=strict)
                self._check_route(account, address.addr)
            except SubmitRejected as exc:
                self._metrics.mt_refused.labels("invalid").inc()
                unsuccess.append(UnsuccessSme(dest.ton, dest.npi, dest.addr, exc.status))
                continue
            if account.is_stop_listed(address.addr):
                if account.stop_mode == "refuse":
                    self._metrics.mt_refused.labels("invalid").inc()
                    unsuccess.append(UnsuccessSme(
                        dest.ton, dest.npi, dest.addr, CommandStatus.ESME_RINVDSTADR))
                else:
                    stopped.append(address)
                continue
            charged.append((address, checked.segments * self._directory.price(account,
                                                                               address.addr)))
        if not charged and not stopped:
            session.respond(pdu, CommandStatus.ESME_RINVNUMDESTS, unsuccess_smes=unsuccess)
            return
        total = sum(cost for _, cost in charged)
        accept = partial(self._accept_multi, session, pdu, account, template, checked,
                         charged, stopped, unsuccess)
        if self._directory.reserve(account, total):
            accept()
        else:
            self._directory.recheck(account, partial(self._rechecked, session, pdu, account,
                                                     total, accept))

    def _accept_multi(self, session, pdu, account, template, checked, charged, stopped,
                      unsuccess) -> None:
        group_id = self._ids.next_id()
        msgs = [self._message(account, template, checked, cost, address, group_id=group_id)
                for address, cost in charged]
        msgs += [self._message(account, template, checked, 0, address, status="REJECTED",
                               group_id=group_id) for address in stopped]
        # The first row carries the group's id itself, so query_sm finds it.
        msgs[0].id = group_id
        self._commit(session, pdu, account, msgs, unsuccess)

    def _commit(self, session, pdu, account, msgs: list[NewMessage],
                unsuccess: list[UnsuccessSme]) -> None:
        futures = [self._writer.accept(m) for m in msgs]
        gathered = asyncio.gather(*futures, return_exceptions=True)
        gathered.add_done_callback(
            partial(self._all_committed, session, pdu, account, msgs, unsuccess)
        )

    def _all_committed(self, session, pdu, account, msgs, unsuccess, gathered) -> None:
        now = datetime.now(UTC)
        client_id = None
        for msg, result in zip(msgs, gathered.result()):
            # Paid or not, the reservation ends; the commit told the directory the balance.
            self._directory.release(account, msg.cost)
            if isinstance(result, BaseException):
                no_credit = isinstance(result, InsufficientCredit)
                self._metrics.mt_refused.labels(
                    "no_credit" if no_credit else "store_error").inc()
                status = NO_CREDIT_STATUS if no_credit else CommandStatus.ESME_RSYSERR
                unsuccess.append(UnsuccessSme(msg.dest_ton, msg.dest_npi, msg.dest_addr, status))
                continue
            client_id = msg.client_id
            if msg.status == "REJECTED":
                # STOP-listed: stored already ended, never charged, so the outbox never
                # sees it; the failed receipt carries the provider's error 53.
                # Answered ESME_ROK like any accepted message, and ended at once.
                self._metrics.mt_accepted.inc()
                self._metrics.mt_ended(MessageState.REJECTED, "stop_listed")
                self._outcomes.add(msg, MessageState.REJECTED, STOP_LIST_ERROR, now)
                continue
            self._metrics.credits_debited.inc(msg.cost / 100)
            self._metrics.mt_accepted.inc()
            self._on_committed(msg)
        self._directory.after_debit(account)
        is_multi = isinstance(pdu, SubmitMulti)
        if client_id is None:
            status = unsuccess[0].error_status_code if unsuccess else CommandStatus.ESME_RSYSERR
            if is_multi:
                session.respond(pdu, CommandStatus.ESME_RSUBMITFAIL, unsuccess_smes=unsuccess)
            else:
                session.respond(pdu, status)
        elif is_multi:
            session.respond(pdu, 0, message_id=client_id, unsuccess_smes=unsuccess)
        else:
            session.respond(pdu, 0, message_id=client_id)
