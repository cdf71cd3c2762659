"""The token bucket behind messages-per-second limits (gateway/sessions/limits)."""

from __future__ import annotations

import pytest

from gateway.sessions.limits import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate():
    clock = Clock()
    bucket = TokenBucket(rate=20, burst=20, clock=clock)
    assert sum(bucket.take() for _ in range(30)) == 20  # the burst
    clock.now += 0.5
    assert sum(bucket.take() for _ in range(30)) == 10  # half a second at 20/s
    clock.now += 60
    assert sum(bucket.take() for _ in range(30)) == 20  # refills no further than the burst


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        TokenBucket(rate=0)
