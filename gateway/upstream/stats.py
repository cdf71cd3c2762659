"""What an operator sees of each upstream link: its state and since when, the last error,
reconnects, submit round trips and the recent submit rate (`LinkStats`, one per
connector), and the Prometheus families made of them at scrape time
(`UpstreamCollector`: smppgw_upstream_up, _in_flight, _reconnects_total,
_submit_seconds). Nothing here is on a lock; the event loop is one thread.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

# Link states, as `upstream list` shows them.
CONNECTING = "connecting"  # started, not bound yet
UP = "up"
DOWN = "down"  # was bound or tried to, reconnecting
STOPPED = "stopped"  # an operator stopped it (or the gateway is stopping)
FAILED = "failed"  # its task ended on an error it could not recover from
ELSEWHERE = "other nodes"  # runs only on the nodes its `nodes` names, not this one

# Seconds from a submit_sm written to its submit_sm_resp read.
ROUND_TRIP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                      5.0, 10.0)
# The submit rate is counted over this many one-second slots.
RATE_SECONDS = 10


class LinkStats:
    def __init__(self) -> None:
        self.state = CONNECTING
        self.since = datetime.now(UTC)
        self.last_error = ""
        self.last_error_at: datetime | None = None
        self.reconnects = 0
        self.round_trips = [0] * (len(ROUND_TRIP_BUCKETS) + 1)
        self.round_trip_sum = 0.0
        self._slots = [0] * RATE_SECONDS
        self._slot_second = 0

    def set_state(self, state: str, error: str | None = None) -> None:
        if state != self.state:
            self.state = state
            self.since = datetime.now(UTC)
        if error:
            self.last_error = error
            self.last_error_at = datetime.now(UTC)

    def round_trip(self, seconds: float) -> None:
        self.round_trips[bisect.bisect_left(ROUND_TRIP_BUCKETS, seconds)] += 1
        self.round_trip_sum += seconds
        self.submitted()

    def submitted(self) -> None:
        """A submit answered (by itself: the in-process simulator has no round trip)."""
        second = int(time.monotonic())
        self._advance(second)
        self._slots[second % RATE_SECONDS] += 1

    def _advance(self, second: int) -> None:
        if second == self._slot_second:
            return
        gap = min(second - self._slot_second, RATE_SECONDS)
        for s in range(1, gap + 1):
            self._slots[(self._slot_second + s) % RATE_SECONDS] = 0
        self._slot_second = second

    @property
    def rate(self) -> float:
        """Submits answered per second, over the last RATE_SECONDS full seconds."""
        second = int(time.monotonic())
        self._advance(second)
        current = self._slots[second % RATE_SECONDS]
        return (sum(self._slots) - current) / (RATE_SECONDS - 1)


class _Link(Protocol):
    """What the collector reads of a connector (gateway.upstream.base.Connector)."""

    name: str
    stats: LinkStats

    @property
    def is_up(self) -> bool: ...

    @property
    def in_flight(self) -> int: ...


class UpstreamCollector:
    """The upstream families of a scrape, read from the connectors running now."""

    def __init__(self, connectors: Callable[[], Iterable[_Link]]) -> None:
        self._connectors = connectors

    def collect(self) -> list:
        up = GaugeMetricFamily("smppgw_upstream_up",
                               "1 while the upstream takes messages (bound), else 0",
                               labels=["upstream"])
        in_flight = GaugeMetricFamily(
            "smppgw_upstream_in_flight",
            "submit_sm written to the upstream whose submit_sm_resp is awaited",
            labels=["upstream"])
        reconnects = CounterMetricFamily(
            "smppgw_upstream_reconnects",
            "Times a link to the upstream was lost or refused and tried again",
            labels=["upstream"])
        round_trips = HistogramMetricFamily(
            "smppgw_upstream_submit_seconds",
            "From a submit_sm written to the upstream to its submit_sm_resp",
            labels=["upstream"])
        bounds = [*map(str, ROUND_TRIP_BUCKETS), "+Inf"]
        for connector in self._connectors():
            name, stats = connector.name, connector.stats
            up.add_metric([name], 1.0 if connector.is_up else 0.0)
            in_flight.add_metric([name], connector.in_flight)
            reconnects.add_metric([name], stats.reconnects)
            cumulative, running = [], 0
            for bound, n in zip(bounds, stats.round_trips, strict=True):
                running += n
                cumulative.append((bound, running))
            round_trips.add_metric([name], cumulative, stats.round_trip_sum)
        return [up, in_flight, reconnects, round_trips]
