"""Bind-failure throttling: too many failed binds for one key block that key for a while.

The gateway asks with two keys per bind, the peer IP and the system_id, so neither a
single host guessing many accounts nor many hosts guessing one account gets far; a
blocked bind is answered ESME_RBINDTHROTTLED. Pure code with an injectable clock.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _KeyState:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0
    last_seen: float = 0.0


class BindThrottle:
    """Block a key for ``cooldown`` seconds after ``max_failures`` failures within ``window``.

    Failures reported while a key is blocked do not extend its cooldown: a client that
    keeps retrying with a corrected password gets back in once the cooldown ends, and
    the gateway need not (and should not) verify passwords of throttled binds anyway.
    Memory is bounded: idle keys expire, and past ``max_keys`` the least recently
    failed key is forgotten.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window: float = 60.0,
        cooldown: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = 100_000,
    ) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, got {max_failures}")
        if not window > 0:
            raise ValueError(f"window must be positive, got {window}")
        if not cooldown >= 0:
            raise ValueError(f"cooldown must not be negative, got {cooldown}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.max_failures = max_failures
        self.window = window
        self.cooldown = cooldown
        self.max_keys = max_keys
        self._clock = clock
        # Ordered by last failure, oldest first, so expiry and eviction pop from the front.
        self._keys: OrderedDict[Hashable, _KeyState] = OrderedDict()
        # A key is worth keeping while a failure may still count or a block still holds.
        self._retention = max(window, cooldown)

    def is_blocked(self, key: Hashable) -> bool:
        """True if binds for ``key`` must be refused now."""
        return self.retry_after(key) > 0.0

    def retry_after(self, key: Hashable) -> float:
        """Seconds until ``key`` is unblocked; 0.0 if it is not blocked."""
        now = self._clock()
        self._expire(now)
        state = self._keys.get(key)
        if state is None:
            return 0.0
        return max(0.0, state.blocked_until - now)

    def failures(self, key: Hashable) -> int:
        """How many failures of ``key`` currently count towards a block."""
        now = self._clock()
        self._expire(now)
        state = self._keys.get(key)
        if state is None:
            return 0
        self._drop_old_failures(state, now)
        return len(state.failures)

    def record_failure(self, key: Hashable) -> None:
        """Count one failed bind for ``key``; block it if that reaches ``max_failures``."""
        now = self._clock()
        self._expire(now)
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState()
            if len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        # Kept in step with the move to the end so the dict stays ordered by last_seen.
        state.last_seen = now
        if state.blocked_until > now:
            return
        if state.blocked_until:
            # The block has run out: start from a clean slate.
            state.failures.clear()
            state.blocked_until = 0.0
        self._drop_old_failures(state, now)
        state.failures.append(now)
        if len(state.failures) >= self.max_failures:
            state.blocked_until = now + self.cooldown
            state.failures.clear()

    def record_success(self, key: Hashable) -> None:
        """Forget the failures of ``key`` after a successful bind."""
        self._keys.pop(key, None)

    def __len__(self) -> int:
        """Number of keys currently tracked (for metrics and tests)."""
        return len(self._keys)

    def _drop_old_failures(self, state: _KeyState, now: float) -> None:
        horizon = now - self.window
        failures = state.failures
        while failures and failures[0] <= horizon:
            failures.popleft()

    def _expire(self, now: float) -> None:
        horizon = now - self._retention
        keys = self._keys
        while keys:
            key, state = next(iter(keys.items()))
            if state.last_seen > horizon:
                break
            del keys[key]
