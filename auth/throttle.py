"""Bind-failure throttling: failed binds counted per key, and the keys a bind is judged by.

A guesser controls its address and the (system_id, address) pairs it tries, so failures
count against those; an account-wide ceiling, much higher, counts only binds from the
account's own listed addresses, so no stranger can lock an owner out. A bind reserves
its keys before its password is checked, so concurrent binds cannot all slip under a
limit. Pure code with an injectable clock.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _KeyState:
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0
    last_seen: float = 0.0
    pending: int = 0  # binds reserved on this key whose outcome is not known yet


class BindThrottle:
    """Block a key for ``cooldown`` seconds after ``max_failures`` failures within ``window``.

    Failures reported while a key is blocked do not extend its cooldown: a client that
    keeps retrying with a corrected password gets back in once the cooldown ends, and
    the gateway need not (and should not) verify passwords of throttled binds anyway.
    A reservation (`reserve`) counts as a failure until it is released, so a key admits
    at most ``max_failures`` binds in flight. Memory is bounded: idle keys expire, and
    past ``max_keys`` the least recently used key is forgotten.
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
        # Ordered by last use, oldest first, so expiry and eviction pop from the front.
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

    def admits(self, key: Hashable) -> bool:
        """True if one more bind for ``key`` may be checked now: it is not blocked, and
        its failures plus the binds in flight on it stay under ``max_failures``."""
        now = self._clock()
        self._expire(now)
        state = self._keys.get(key)
        if state is None:
            return True
        if state.blocked_until > now:
            return False
        self._drop_old_failures(state, now)
        return len(state.failures) + state.pending < self.max_failures

    def blocked(self, key: Hashable) -> bool:
        """True if ``key`` is in its cooldown (not merely full of binds in flight)."""
        state = self._keys.get(key)
        return state is not None and state.blocked_until > self._clock()

    def reserve(self, key: Hashable) -> None:
        """Count one bind in flight on ``key`` until `release`."""
        self._touch(key, self._clock()).pending += 1

    def release(self, key: Hashable, *, failed: bool) -> bool:
        """End one reservation of ``key``; a failed bind is recorded as a failure.
        Returns True if that failure has just blocked the key."""
        state = self._keys.get(key)
        if state is not None and state.pending:
            state.pending -= 1
        if failed:
            return self.record_failure(key)
        if state is not None and not (state.pending or state.failures or state.blocked_until):
            del self._keys[key]
        return False

    def record_failure(self, key: Hashable) -> bool:
        """Count one failed bind for ``key``; block it if that reaches ``max_failures``.
        Returns True if this failure has just blocked the key."""
        now = self._clock()
        state = self._touch(key, now)
        if state.blocked_until > now:
            return False
        if state.blocked_until:
            # The block has run out: start from a clean slate.
            state.failures.clear()
            state.blocked_until = 0.0
        self._drop_old_failures(state, now)
        state.failures.append(now)
        if len(state.failures) < self.max_failures:
            return False
        state.blocked_until = now + self.cooldown
        state.failures.clear()
        return True

    def record_success(self, key: Hashable) -> None:
        """Forget the failures (and any block) of ``key`` after a successful bind."""
        state = self._keys.get(key)
        if state is None:
            return
        if not state.pending:
            del self._keys[key]
            return
        # Other binds on the key are still in flight: keep counting them.
        state.failures.clear()
        state.blocked_until = 0.0

    def __len__(self) -> int:
        """Number of keys currently tracked (for metrics and tests)."""
        return len(self._keys)

    def _touch(self, key: Hashable, now: float) -> _KeyState:
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
        return state

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


@dataclass(frozen=True, slots=True)
class BindLimits:
    """Failed binds allowed per key within ``window`` seconds; a key past its limit is
    refused for ``cooldown`` seconds."""

    window: float = 60.0
    cooldown: float = 60.0
    per_pair: int = 5  # one system_id from one address
    per_address: int = 20  # every system_id from one address
    per_account: int = 200  # one account from all of its listed addresses together


def guesser_address(ip: str) -> str:
    """The address failures are counted against: IPv4 as is (also when mapped into
    IPv6), IPv6 by its /64, which one host or one LAN usually holds whole."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class BindAttempt:
    """The reservations of one admitted bind; resolve it exactly once."""

    __slots__ = ("_account", "_address", "_guard", "_open", "_pair", "proven")

    def __init__(self, guard: BindGuard, pair: tuple[str, str], address: str,
                 account: str | None, proven: bool) -> None:
        self._guard, self._pair, self._address, self._account = guard, pair, address, account
        self.proven = proven  # this (system_id, address) pair has bound before
        self._open = True

    @property
    def counted_account(self) -> bool:
        """Whether this bind counts against its account (it came from a listed address)."""
        return self._account is not None

    def failed(self) -> list[str]:
        """The bind failed: count it. Returns which keys this has just blocked
        ("pair", "address", "account"), for the log."""
        if not self._close():
            return []
        guard = self._guard
        guard.forget_proven(self._pair)
        blocked = []
        if guard.pairs.release(self._pair, failed=True):
            blocked.append("pair")
        if guard.addresses.release(self._address, failed=True):
            blocked.append("address")
        if self._account is not None and guard.accounts.release(self._account, failed=True):
            blocked.append("account")
        return blocked

    def succeeded(self) -> None:
        """The bind succeeded: the pair starts afresh; what the address and the account
        counted stays (a guesser's good bind of its own account does not wipe them)."""
        if not self._close():
            return
        guard = self._guard
        guard.pairs.release(self._pair, failed=False)
        guard.pairs.record_success(self._pair)
        guard.addresses.release(self._address, failed=False)
        if self._account is not None:
            guard.accounts.release(self._account, failed=False)
        guard.remember_proven(self._pair)

    def abandoned(self) -> None:
        """The bind was never judged (refused for load, or cancelled): count nothing."""
        if not self._close():
            return
        guard = self._guard
        guard.pairs.release(self._pair, failed=False)
        guard.addresses.release(self._address, failed=False)
        if self._account is not None:
            guard.accounts.release(self._account, failed=False)

    def _close(self) -> bool:
        was_open, self._open = self._open, False
        return was_open


class BindGuard:
    """Judges a bind by three throttles: its (system_id, address) pair, its address, and
    (only from an address on the account's list) its account.

    A bind is admitted only if every key admits it, and then reserves each key until it
    is resolved. The guard also remembers pairs that have bound successfully, so the
    gateway can serve their password checks first when a flood fills the queue.
    """

    def __init__(
        self,
        limits: BindLimits = BindLimits(),
        clock: Callable[[], float] = time.monotonic,
        *,
        max_keys: int = 100_000,
    ) -> None:
        def throttle(limit: int) -> BindThrottle:
            return BindThrottle(limit, limits.window, limits.cooldown, clock, max_keys=max_keys)

        self.limits = limits
        self.pairs = throttle(limits.per_pair)
        self.addresses = throttle(limits.per_address)
        self.accounts = throttle(limits.per_account)
        self._max_keys = max_keys
        # Pairs that bound successfully, least recently first; a failure forgets one.
        self._proven: OrderedDict[tuple[str, str], None] = OrderedDict()

    def admit(self, system_id: str, ip: str, *, listed: bool) -> BindAttempt | None:
        """Reserve a bind of ``system_id`` from ``ip``, or None if it is throttled.
        ``listed``: the address is on the account's list (so it counts against the
        account); False for an unknown system_id, which has no list."""
        address = guesser_address(ip)
        pair = (system_id, address)
        account = system_id if listed else None
        if not (self.pairs.admits(pair) and self.addresses.admits(address)):
            return None
        if account is not None and not self.accounts.admits(account):
            return None
        self.pairs.reserve(pair)
        self.addresses.reserve(address)
        if account is not None:
            self.accounts.reserve(account)
        return BindAttempt(self, pair, address, account, pair in self._proven)

    def failed_elsewhere(self, system_id: str, ip: str, *, listed: bool) -> None:
        """A bind judged on another gateway node failed: count it here too, so that
        a guesser spreading its tries over the nodes meets the same limits."""
        address = guesser_address(ip)
        self.forget_proven((system_id, address))
        self.pairs.record_failure((system_id, address))
        self.addresses.record_failure(address)
        if listed:
            self.accounts.record_failure(system_id)

    def blocked(self, system_id: str, ip: str, *, listed: bool) -> bool:
        """True if a key of this bind is in its cooldown. A bind that `admit` refused
        while none is, was refused only for the binds in flight on its keys: it may
        wait for one of them to be judged and ask again."""
        address = guesser_address(ip)
        return (self.pairs.blocked((system_id, address)) or self.addresses.blocked(address)
                or (listed and self.accounts.blocked(system_id)))

    def remember_proven(self, pair: tuple[str, str]) -> None:
        proven = self._proven
        proven[pair] = None
        proven.move_to_end(pair)
        if len(proven) > self._max_keys:
            proven.popitem(last=False)

    def forget_proven(self, pair: tuple[str, str]) -> None:
        self._proven.pop(pair, None)
