"""Exponential back-off with jitter, for reconnects and outbox retries."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, low: float, high: float, jitter: float = 0.2) -> float:
    """low * 2**attempt, capped at high, spread by +-jitter so peers do not sync up."""
    base = min(high, low * (2 ** min(attempt, 30)))
    return max(0.0, base * (1 + random.uniform(-jitter, jitter)))
