"""What one load is: its configuration, the counters all its sessions share, its result.

`LoadConfig` says what to send and how (windowed, paced or idle); `Load` holds the
message budget and every counter, matches delivery receipts to the message_ids of
submit_sm_resp, and says when the run is over; `LoadResult` is what the run reports.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from pdu.codec import HEADER_SIZE, SubmitSm, encode
from pdu.fields import RECEIPT_MASK

# Pseudo-statuses for submits that never got an answer, named in the results.
LOST_ON_DISCONNECT = -1
RESPONSE_TIMEOUT = -2


@dataclass
class LoadConfig:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = ""
    # Several accounts spread idle sessions (scenario 4) across per-account limits.
    credentials: list[tuple[str, str]] = field(default_factory=list)
    sessions: int = 4
    window: int = 100
    messages: int = 10_000
    # Messages per second over all sessions; None sends as fast as the window allows.
    rate: float | None = None
    registered_delivery: int = 0
    # After the last submit_sm_resp, how long to wait for missing DLRs.
    dlr_timeout: float = 60.0
    # Idle mode: hold the bound sessions this long, sending enquire_link.
    idle_seconds: float = 0.0
    enquire_interval: float = 5.0
    # Connections and binds in flight at once, so a bind storm stays within bind_timeout.
    connect_concurrency: int = 64
    # Hard bound on the whole run (binding, sending, draining): it always stops.
    time_limit: float = 600.0
    source_addr: str = "bench"
    destination_addr: str = "33601020304"
    short_message: bytes = b"Benchmark message: your code is 123456"

    def accounts(self) -> list[tuple[str, str]]:
        return self.credentials or [(self.system_id, self.password)]


@dataclass
class LoadResult:
    mode: str
    sessions_requested: int
    sessions_bound: int
    bind_statuses: dict[str, int]
    bind_seconds: float
    messages_requested: int
    submitted: int
    responses: int
    statuses: dict[str, int]
    elapsed_seconds: float
    # From the first submit to the last submit_sm_resp: what the rates divide by.
    send_seconds: float
    messages_per_second: float
    accepted_per_second: float
    submit_latency_ms: dict[str, float]
    dlrs_expected: int = 0
    dlrs_received: int = 0
    dlrs_matched: int = 0
    dlrs_duplicate: int = 0
    dlrs_unmatched: int = 0
    dlr_stats: dict[str, int] = field(default_factory=dict)
    dlr_latency_ms: dict[str, float] = field(default_factory=dict)
    dlr_complete_seconds: float = 0.0
    other_deliver_sm: int = 0
    enquire_links_sent: int = 0
    enquire_link_resps: int = 0
    enquire_link_latency_ms: dict[str, float] = field(default_factory=dict)
    server_enquire_links: int = 0
    target_rate: float | None = None
    max_backlog: int = 0
    timed_out: bool = False
    disconnects: int = 0
    loop: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds (nearest rank), from values in seconds."""
    if not values:
        return {"count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return round(ordered[min(n - 1, int(q * n))] * 1000, 3)

    return {"count": n, "p50": rank(0.50), "p99": rank(0.99), "max": round(ordered[-1] * 1000, 3)}


def submit_template(config: LoadConfig) -> bytes:
    """One submit_sm encoded by the project codec; its body is sent as it is."""
    pdu = SubmitSm(
        sequence_number=0,
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr=config.source_addr,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=config.destination_addr,
        registered_delivery=config.registered_delivery,
        short_message=config.short_message,
    )
    return encode(pdu)


class Load:
    """State shared by all sessions of one run: the message budget and the counters."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.submit_body = submit_template(config)[HEADER_SIZE:]
        self.remaining = config.messages
        self.submitted = 0
        self.responses = 0
        self.statuses: Counter[int] = Counter()
        self.bind_statuses: Counter[str] = Counter()
        self.submit_latencies: list[float] = []
        self.track_dlrs = bool(config.registered_delivery & RECEIPT_MASK)
        self.accepted = 0
        self.awaiting_dlr: dict[str, float] = {}
        self.early_dlr: dict[str, float] = {}
        self.dlr_done: set[str] = set()
        self.dlrs_received = 0
        self.dlrs_duplicate = 0
        self.dlr_stats: Counter[str] = Counter()
        self.dlr_latencies: list[float] = []
        self.last_dlr_at = 0.0
        self.other_deliver_sm = 0
        self.enquire_sent = 0
        self.enquire_latencies: list[float] = []
        self.server_enquire_links = 0
        self.disconnects = 0
        self.last_response_at = 0.0
        # Every submit answered; then `finished` once every DLR is in as well.
        self.answered = self.loop.create_future()
        self.finished = self.loop.create_future()

    def take(self, wanted: int) -> int:
        got = min(wanted, self.remaining)
        self.remaining -= got
        return got

    def message_accepted(self, message_id: str, sent_at: float) -> None:
        """A submit_sm_resp with ESME_ROK when DLRs are tracked: await its receipt."""
        arrived = self.early_dlr.pop(message_id, None)
        if arrived is not None:
            # The DLR overtook its submit_sm_resp (it came on another session).
            self.dlr_latencies.append(arrived - sent_at)
            self.dlr_done.add(message_id)
        else:
            self.awaiting_dlr[message_id] = sent_at

    def dlr(self, message_id: str, stat: str, now: float) -> None:
        self.dlrs_received += 1
        self.last_dlr_at = now
        self.dlr_stats[stat or "?"] += 1
        sent_at = self.awaiting_dlr.pop(message_id, None)
        if sent_at is not None:
            self.dlr_latencies.append(now - sent_at)
            self.dlr_done.add(message_id)
        elif message_id in self.dlr_done or message_id in self.early_dlr:
            self.dlrs_duplicate += 1
        else:
            self.early_dlr[message_id] = now

    def unanswered(self, status: int, count: int) -> None:
        """Submits that will never be answered: counted, so the run can end."""
        self.statuses[status] += count
        self.responses += count
        self.check_finished()

    def check_finished(self) -> None:
        if self.finished.done() or self.config.idle_seconds > 0:
            return
        if self.remaining or self.responses < self.submitted:
            return
        if not self.answered.done():
            self.answered.set_result(None)
        if self.track_dlrs and len(self.dlr_done) < self.accepted:
            return
        self.finished.set_result(None)
