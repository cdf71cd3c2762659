"""What a connector is to the outbox and the dispatcher, and how upstream errors are read.

A connector takes NewMessage rows (`send`) and resolves a future with a `SubmitResult`
once the upstream answered every submit_sm of the message (one, or one per segment when
the gateway splits it), or the attempt failed; inbound deliver_sm (and data_sm, and
alert_notification) go to an `on_deliver` callback with an `ack` to call once they are
durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from gateway.upstream.stats import LinkStats
from pdu.codec import AlertNotification, DeliverSm
from pdu.status import CommandStatus, status_name
from store.writer import NewMessage

# Answers after which the same message may well go through later.
TEMPORARY_STATUSES = frozenset(
    {
        CommandStatus.ESME_RTHROTTLED,
        CommandStatus.ESME_RMSGQFUL,
        CommandStatus.ESME_RSYSERR,
        CommandStatus.ESME_RX_T_APPN,
        CommandStatus.ESME_RINVBNDSTS,
        CommandStatus.ESME_RUNKNOWNERR,
    }
)

# Pseudo statuses for failures that never got an answer (negative: never on the wire).
CONNECTION_LOST = -1
TIMEOUT = -2
NOT_SENT = -3
_PSEUDO = {CONNECTION_LOST: "connection_lost", TIMEOUT: "timeout", NOT_SENT: "not_sent"}

Ack = Callable[[int], None]
# An in-process upstream's receipt, already structured: (connector, upstream id,
# message_state, err, network_error_code). Nothing is formatted to be parsed back.
ReceiptCallback = Callable[[str, str, int, int, "bytes | None"], None]
# A receipt or MO (data_sm arrives converted to DeliverSm), or an alert_notification,
# whose ack is a no-op: SMPP 3.4 gives it no response.
DeliverCallback = Callable[[str, DeliverSm | AlertNotification, Ack], None]


@dataclass(frozen=True, slots=True)
class PartRef:
    """Which segment of which message an upstream id names (the gateway split it)."""

    message_id: int
    part_no: int
    parts: int


@dataclass(frozen=True, slots=True)
class SubmitResult:
    status: int
    upstream_id: str = ""
    # Split by the gateway: each segment's upstream id in order, "" where the upstream
    # did not take it (yet). Empty for a message sent in one submit_sm.
    parts: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def temporary(self) -> bool:
        return self.status < 0 or self.status in TEMPORARY_STATUSES

    @property
    def reason(self) -> str:
        return _PSEUDO.get(self.status) or status_name(self.status)

    @property
    def reached_upstream(self) -> bool:
        """False when the message never left: the attempt should not count."""
        return self.status != NOT_SENT


class HandOvers:
    """Messages handed to upstreams whose outcome is not known yet, by upstream id.

    A receipt is matched here, in memory, without reading back the row just written;
    the entry leaves with the final outcome. The store stays the fallback: after a
    restart, for receipts that come later than the entries are kept (`max_entries`,
    oldest first), and for the segments of a message the gateway split, whose states
    are gathered in the store.
    """

    def __init__(self, max_entries: int = 500_000) -> None:
        self._entries: dict[tuple[str, str], NewMessage | PartRef] = {}
        self._max = max_entries

    def record(self, connector: str, upstream_id: str, ref: NewMessage | PartRef) -> None:
        entries = self._entries
        entries[(connector, upstream_id)] = ref
        if len(entries) > self._max:
            # Dicts keep insertion order: the oldest hand-over goes to the store fallback.
            del entries[next(iter(entries))]

    def lookup(self, connector: str, upstream_id: str) -> NewMessage | PartRef | None:
        return self._entries.get((connector, upstream_id))

    def take(self, connector: str, upstream_id: str) -> NewMessage | PartRef | None:
        """The entry, removed: its final outcome is being recorded."""
        return self._entries.pop((connector, upstream_id), None)

    def __len__(self) -> int:
        return len(self._entries)


class Connector:
    """The interface the outbox sees; SmppConnector and SimulatorConnector implement it."""

    name: str = ""
    in_process: bool = False

    def __init__(self, handovers: HandOvers) -> None:
        self.handovers = handovers
        self.on_up: Callable[[], None] = lambda: None
        self.stats = LinkStats()

    @property
    def is_up(self) -> bool:
        raise NotImplementedError

    @property
    def in_flight(self) -> int:
        """Requests written to the upstream whose answer is awaited."""
        return 0

    def describe(self) -> dict[str, object]:
        """What `smppgw admin upstream list` shows of the running connector."""
        stats = self.stats
        return {
            "state": stats.state, "since": stats.since.isoformat(timespec="seconds"),
            "last_error": stats.last_error or None,
            "last_error_at": (stats.last_error_at.isoformat(timespec="seconds")
                              if stats.last_error_at else None),
            "reconnects": stats.reconnects, "in_flight": self.in_flight,
            "rate": round(stats.rate, 1),
        }

    @property
    def capacity(self) -> int:
        """How many more messages it would take now without queueing long."""
        raise NotImplementedError

    def link_states(self) -> list[tuple[str, bool]]:
        """(bind, up) of each connection it keeps (for the link-state gauge)."""
        return [("in_process", self.is_up)]

    def send(
        self, msg: NewMessage, *, gsm_packed: bool = False, done_parts: dict[int, str] | None = None
    ) -> asyncio.Future[SubmitResult]:
        """Send `msg`; `gsm_packed` says how its GSM body is stored (for splitting), and
        `done_parts` (part number -> upstream id) are segments an earlier attempt got
        through, not to be sent again."""
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self, drain: float | None = None) -> None:
        """Stop; with `drain` (seconds), first take nothing new and wait up to that
        long for the answers to what was written."""
        raise NotImplementedError
