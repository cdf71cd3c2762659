"""The SMSC simulator: an upstream that needs no network, and its model of a mobile network.

`SimulatedNetwork` decides what happens to a submitted message (the outcome mix:
delivered, undeliverable, expired, rejected, absent as receipts; throttled or refused as
a submit_sm_resp error) and writes the receipts, MOs and alert_notifications a real SMSC
would send. `SimulatorConnector` runs that model in-process as a connector, so a fresh
install and the tests have an upstream; `gateway.upstream.smsc_sim` runs the same model as a
standalone SMPP server. Receipts go through the same parsing as a real upstream's.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import time
from collections import deque
from datetime import UTC, datetime

from config.upstreams import UpstreamConfig, parse_mix
from gateway.upstream.base import (
    NOT_SENT,
    Connector,
    DeliverCallback,
    HandOvers,
    ReceiptCallback,
    SubmitResult,
)
from gateway.upstream.stats import STOPPED, UP
from pdu.codec import AlertNotification, DataSm, DeliverSm, addresses
from pdu.receipt import MessageState, receipt_deliver_sm
from pdu.status import CommandStatus
from pdu.tlv import Tag, TlvError, as_int, decode_tlvs, int_tlv
from store.writer import NewMessage

# Receipt outcomes and the state they report; the others answer the submit itself.
RECEIPT_STATES = {
    "delivered": MessageState.DELIVERED,
    "undeliverable": MessageState.UNDELIVERABLE,
    "expired": MessageState.EXPIRED,
    "rejected": MessageState.REJECTED,
    # The subscriber is unreachable; with set_dpf the network reports it back later.
    "absent": MessageState.UNDELIVERABLE,
}
SUBMIT_ERRORS = {
    "throttled": CommandStatus.ESME_RTHROTTLED,  # temporary: the gateway retries
    "refused": CommandStatus.ESME_RINVDSTADR,  # permanent: the gateway fails the message
}
# GSM MAP error carried in err: and network_error_code for failures (27 = absent subscriber).
FAILURE_ERROR = 27
# network_error_code's first octet (SMPP 3.4 5.3.2.31): 1 ANSI-136, 2 IS-95, 3 GSM.
NETWORK_TYPE_GSM = 3
MS_AVAILABLE = 0  # ms_availability_status (5.3.2.30)


class SimulatedNetwork:
    def __init__(self, mix: str = "delivered=1", seed: int | None = None) -> None:
        weights = {name: w for name, w in parse_mix(mix).items() if w > 0}
        self._names = list(weights)
        # Cumulative weights for bisect: random.choices rebuilds them on every call.
        self._cumulative = list(itertools.accumulate(weights[n] for n in self._names))
        self._random = random.Random(seed)
        # Unique across restarts of a standalone simulator: start-time prefix + counter.
        self._prefix = f"{int(time.time() * 1000) % 10**10:010d}"
        self._counter = itertools.count(1)

    def outcome(self) -> str:
        if len(self._names) == 1:
            return self._names[0]
        draw = self._random.random() * self._cumulative[-1]
        return self._names[bisect.bisect_right(self._cumulative, draw)]

    def next_id(self) -> str:
        return f"{self._prefix}{next(self._counter):06d}"

    def result(self, outcome: str) -> tuple[int, int, bytes | None]:
        """(message_state, err, network_error_code) that a receipt for `outcome` says."""
        state = RECEIPT_STATES[outcome]
        if state == MessageState.DELIVERED:
            return state, 0, None
        return state, FAILURE_ERROR, bytes((NETWORK_TYPE_GSM,)) + FAILURE_ERROR.to_bytes(2, "big")

    def receipt(
        self,
        upstream_id: str,
        outcome: str,
        *,
        source_addr: str,
        dest_addr: str,
        submitted: datetime,
        text: str = "",
    ) -> DeliverSm:
        """The deliver_sm receipt a real SMSC sends for `outcome`."""
        state, err, network = self.result(outcome)
        return receipt_deliver_sm(
            message_id=upstream_id, state=state, err=err, submit_date=submitted,
            done_date=datetime.now(UTC), text=text, mobile=(1, 1, dest_addr),
            esme=(0, 0, source_addr), network_error=network,
        )

    def mo(self, to: str, text: str | None = None) -> DeliverSm:
        sender = f"336{self._random.randrange(10**8):08d}"
        body = (text or f"MO {next(self._counter)}").encode("ascii")
        return DeliverSm(
            source_addr_ton=1, source_addr_npi=1, source_addr=sender,
            dest_addr_ton=1, dest_addr_npi=1, destination_addr=to, short_message=body,
        )

    def alert(
        self, ms_addr: str, ms_ton: int, ms_npi: int, esme_addr: str, esme_ton: int, esme_npi: int
    ) -> AlertNotification:
        """The alert_notification (SMPP 3.4 4.12) saying the mobile `ms_addr` is reachable.

        It goes to the ESME whose message set the delivery pending flag; source_addr is
        the mobile, esme_addr the address that message came from.
        """
        return AlertNotification(
            source_addr_ton=ms_ton, source_addr_npi=ms_npi, source_addr=ms_addr,
            esme_addr_ton=esme_ton, esme_addr_npi=esme_npi, esme_addr=esme_addr,
            tlvs=[int_tlv(Tag.MS_AVAILABILITY_STATUS, MS_AVAILABLE)],
        )


def as_data_sm(deliver: DeliverSm) -> DataSm:
    """The same receipt or MO as a data_sm: the text moves into message_payload."""
    return DataSm(
        service_type=deliver.service_type, **addresses(deliver), esm_class=deliver.esm_class,
        data_coding=deliver.data_coding,
        tlvs=[*deliver.tlvs, (Tag.MESSAGE_PAYLOAD, deliver.short_message)],
    )


def wants_alert(tlvs: list[tuple[int, bytes]]) -> bool:
    """True when the message asked the SMSC to set the delivery pending flag (set_dpf 1)."""
    return any(tag == Tag.SET_DPF and as_int(value) == 1 for tag, value in tlvs)


def message_tlvs(msg: NewMessage) -> list[tuple[int, bytes]]:
    """The client's optional parameters kept on the row; [] when absent or unreadable."""
    if not msg.tlvs:
        return []
    try:
        return decode_tlvs(msg.tlvs, 0, len(msg.tlvs))
    except TlvError:
        return []


class SimulatorConnector(Connector):
    """The simulator as an in-process connector: always up, answers at once, and reports
    each outcome `latency_ms` later, structured (`report`), as a receipt would say it."""

    in_process = True

    def __init__(
        self, config: UpstreamConfig, on_deliver: DeliverCallback, handovers: HandOvers,
        report: ReceiptCallback,
    ) -> None:
        super().__init__(handovers)
        self.config = config
        self.name = config.name
        self.on_deliver = on_deliver
        self.report = report
        self.network = SimulatedNetwork(config.mix)
        self._latency = config.latency_ms / 1000
        self._alert_after = config.alert_after_ms / 1000
        # (due, upstream id, outcome, message) in due order: every report waits the same
        # latency, so one timer at the head serves them all instead of a timer each.
        self._due: deque[tuple[float, str, str, NewMessage]] = deque()
        self._alerts: list[asyncio.TimerHandle] = []
        self._timer: asyncio.TimerHandle | None = None
        self._mo_task: asyncio.Task[None] | None = None
        self._running = False
        self.received = 0

    @property
    def is_up(self) -> bool:
        return self._running

    @property
    def capacity(self) -> int:
        return 10_000 if self._running else 0

    async def start(self) -> None:
        self._running = True
        self.stats.set_state(UP)
        if self.config.mo_rate > 0 and self.config.mo_to:
            self._mo_task = asyncio.get_running_loop().create_task(self._generate_mo())

    async def stop(self, drain: float | None = None) -> None:
        # It answers at once: nothing is in flight to drain. Outcomes not yet reported are re-driven by `resume` after a restart.
        self._running = False
        self.stats.set_state(STOPPED)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due.clear()
        for handle in self._alerts:
            handle.cancel()
        self._alerts.clear()
        if self._mo_task is not None:
            self._mo_task.cancel()
            await asyncio.gather(self._mo_task, return_exceptions=True)

    def send(
        self, msg: NewMessage, *, gsm_packed: bool = False, done_parts: dict[int, str] | None = None
    ) -> asyncio.Future[SubmitResult]:
        # The model takes a long message whole, as an SMSC fed message_payload does.
        future: asyncio.Future[SubmitResult] = asyncio.get_running_loop().create_future()
        if not self._running:
            future.set_result(SubmitResult(NOT_SENT))
            return future
        self.received += 1
        self.stats.submitted()
        outcome = self.network.outcome()
        if outcome in SUBMIT_ERRORS:
            future.set_result(SubmitResult(SUBMIT_ERRORS[outcome]))
            return future
        upstream_id = self.network.next_id()
        self.handovers.record(self.name, upstream_id, msg)
        future.set_result(SubmitResult(0, upstream_id))
        self._later(upstream_id, outcome, msg)
        return future

    def resume(self, msg: NewMessage, upstream_id: str) -> None:
        """Report the outcome of a message taken before a restart (the model has no disk)."""
        outcome = self.network.outcome()
        self._later(upstream_id, "delivered" if outcome in SUBMIT_ERRORS else outcome, msg)

    def _later(self, upstream_id: str, outcome: str, msg: NewMessage) -> None:
        loop = asyncio.get_running_loop()
        self._due.append((loop.time() + self._latency, upstream_id, outcome, msg))
        if self._timer is None:
            self._timer = loop.call_at(self._due[0][0], self._fire)

    def _fire(self) -> None:
        self._timer = None
        due = self._due
        loop = asyncio.get_running_loop()
        now = loop.time()
        result, report, name = self.network.result, self.report, self.name
        while due and due[0][0] <= now:
            _, upstream_id, outcome, msg = due.popleft()
            state, err, network_error = result(outcome)
            report(name, upstream_id, state, err, network_error)
            if outcome == "absent" and wants_alert(message_tlvs(msg)):
                # Kept only to be cancelled at stop: the ones already run go.
                self._alerts = [h for h in self._alerts if h.when() > now]
                self._alerts.append(loop.call_later(self._alert_after, self._alert, msg))
        if due:
            self._timer = loop.call_at(due[0][0], self._fire)

    def _alert(self, msg: NewMessage) -> None:
        # The inbound side takes alert_notification through the deliver callback; the
        # spec gives it no response, so the ack is ignored.
        pdu = self.network.alert(
            msg.dest_addr, msg.dest_ton, msg.dest_npi,
            msg.source_addr, msg.source_ton, msg.source_npi,
        )
        self.on_deliver(self.name, pdu, _ignore)  # type: ignore[arg-type]

    async def _generate_mo(self) -> None:
        numbers = itertools.cycle(self.config.mo_to)
        while True:
            await asyncio.sleep(1 / self.config.mo_rate)
            self.on_deliver(self.name, self.network.mo(next(numbers)), _ignore)


def _ignore(status: int) -> None:
    pass
