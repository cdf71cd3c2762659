"""Per-connection flow limits: a token bucket for messages per second.

The bucket holds at most `burst` tokens and refills at `rate` per second, so a
client may send a short burst above its rate and is then held to the rate; what it
sends beyond gets ESME_RTHROTTLED. The clock is injected so tests need no sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._clock = clock
        self._tokens = self.burst
        self._last = clock()

    def charge(self, n: float) -> bool:
        """Take `n` tokens if the bucket could ever hold them now (at least min(n, burst)),
        going into debt for the rest: one PDU that costs more than a burst (a long
        submit_multi list) is let through, and what follows waits for the refill."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= min(n, self.burst):
            self._tokens = tokens - n
            return True
        self._tokens = tokens
        return False

    def take(self, n: float = 1.0) -> bool:
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= n:
            self._tokens = tokens - n
            return True
        self._tokens = tokens
        return False
