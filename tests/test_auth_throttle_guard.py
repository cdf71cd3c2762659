"""The keys a bind is judged by (auth.throttle.BindGuard) and the reservations that keep
concurrent binds under each limit, driven by a fake clock."""

from __future__ import annotations

import pytest

from auth.throttle import BindGuard, BindLimits, BindThrottle, guesser_address


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def guard(clock: FakeClock, **limits) -> BindGuard:
    values = {"window": 60.0, "cooldown": 30.0, "per_pair": 3, "per_address": 6,
              "per_account": 4} | limits
    return BindGuard(BindLimits(**values), clock)


def fail(g: BindGuard, system_id: str, ip: str, *, listed: bool = True) -> None:
    attempt = g.admit(system_id, ip, listed=listed)
    assert attempt is not None, (system_id, ip)
    attempt.failed()


# --- reservations on one key ----------------------------------------------------------


def test_binds_in_flight_count_until_released(clock):
    throttle = BindThrottle(max_failures=3, clock=clock)
    for _ in range(3):
        assert throttle.admits("k")
        throttle.reserve("k")
    assert not throttle.admits("k")
    throttle.release("k", failed=False)
    assert throttle.admits("k")
    assert throttle.failures("k") == 0


def test_a_failed_reservation_is_a_failure_and_can_block(clock):
    throttle = BindThrottle(max_failures=2, clock=clock)
    throttle.reserve("k")
    throttle.reserve("k")
    assert throttle.release("k", failed=True) is False
    assert throttle.release("k", failed=True) is True  # this one blocked the key
    assert throttle.is_blocked("k")
    assert not throttle.admits("k")


def test_success_clears_failures_but_keeps_other_binds_in_flight(clock):
    throttle = BindThrottle(max_failures=3, clock=clock)
    throttle.record_failure("k")
    throttle.reserve("k")
    throttle.reserve("k")
    throttle.release("k", failed=False)
    throttle.record_success("k")
    assert throttle.failures("k") == 0
    throttle.reserve("k")
    throttle.reserve("k")
    assert not throttle.admits("k")  # the bind still in flight counts


def test_released_idle_keys_are_not_kept(clock):
    throttle = BindThrottle(max_failures=3, clock=clock)
    throttle.reserve("k")
    throttle.release("k", failed=False)
    assert len(throttle) == 0


# --- the guard's keys -----------------------------------------------------------------


def test_failures_from_unlisted_addresses_never_count_against_the_account(clock):
    g = guard(clock)
    for n in range(20):  # far past per_account=4, from addresses not on the list
        fail(g, "acme", f"192.0.2.{n}", listed=False)
    assert g.admit("acme", "10.0.0.1", listed=True) is not None


def test_failures_from_listed_addresses_reach_the_account_ceiling(clock):
    g = guard(clock)
    for n in range(4):
        fail(g, "acme", f"10.0.0.{n}")
    assert g.admit("acme", "10.0.0.99", listed=True) is None
    assert g.admit("acme", "192.0.2.1", listed=False) is not None  # not the account's key
    clock.now += 30.0
    assert g.admit("acme", "10.0.0.99", listed=True) is not None


def test_the_pair_limit_blocks_one_system_id_from_one_address(clock):
    g = guard(clock)
    for _ in range(3):
        fail(g, "acme", "192.0.2.1", listed=False)
    assert g.admit("acme", "192.0.2.1", listed=False) is None
    assert g.admit("other", "192.0.2.1", listed=False) is not None
    assert g.admit("acme", "192.0.2.2", listed=False) is not None


def test_the_address_limit_blocks_every_system_id_from_one_address(clock):
    g = guard(clock)
    for n in range(6):
        fail(g, f"name{n}", "192.0.2.1", listed=False)
    assert g.admit("fresh", "192.0.2.1", listed=False) is None
    assert g.admit("fresh", "192.0.2.2", listed=False) is not None


def test_concurrent_binds_of_one_pair_are_admitted_up_to_its_limit(clock):
    g = guard(clock)
    admitted = [g.admit("acme", "10.0.0.1", listed=True) for _ in range(50)]
    assert sum(a is not None for a in admitted) == 3


def test_a_refusal_for_load_counts_nothing(clock):
    g = guard(clock)
    for _ in range(10):
        attempt = g.admit("acme", "10.0.0.1", listed=True)
        assert attempt is not None
        attempt.abandoned()
    assert g.pairs.failures(("acme", "10.0.0.1")) == 0


def test_success_resets_the_pair_but_not_the_guessers_address(clock):
    g = guard(clock)
    for n in range(2):
        fail(g, "acme", "10.0.0.1")
    for n in range(3):
        fail(g, f"victim{n}", "10.0.0.1", listed=False)
    g.admit("acme", "10.0.0.1", listed=True).succeeded()
    assert g.pairs.failures(("acme", "10.0.0.1")) == 0
    assert g.addresses.failures("10.0.0.1") == 5
    fail(g, "victim9", "10.0.0.1", listed=False)
    assert g.admit("acme", "10.0.0.1", listed=True) is None  # the address reached 6


def test_an_attempt_is_resolved_once(clock):
    g = guard(clock)
    attempt = g.admit("acme", "10.0.0.1", listed=True)
    attempt.failed()
    attempt.failed()
    attempt.abandoned()
    assert g.pairs.failures(("acme", "10.0.0.1")) == 1


def test_a_pair_is_proven_by_a_success_and_forgets_it_on_a_failure(clock):
    g = guard(clock)

    def proven(ip: str) -> bool:
        attempt = g.admit("acme", ip, listed=True)
        attempt.abandoned()
        return attempt.proven

    assert not proven("10.0.0.1")
    g.admit("acme", "10.0.0.1", listed=True).succeeded()
    assert proven("10.0.0.1")
    assert not proven("10.0.0.2")
    g.admit("acme", "10.0.0.1", listed=True).failed()
    assert not proven("10.0.0.1")


@pytest.mark.parametrize("ip,key", [
    ("192.0.2.7", "192.0.2.7"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
    ("not-an-address", "not-an-address"),
])
def test_guessers_are_counted_by_ipv4_address_or_ipv6_64(ip, key):
    assert guesser_address(ip) == key


def test_addresses_of_one_ipv6_64_share_one_count(clock):
    g = guard(clock)
    for n in range(6):
        fail(g, f"name{n}", f"2001:db8::{n + 1:x}", listed=False)
    assert g.admit("fresh", "2001:db8::ffff", listed=False) is None
    assert g.admit("fresh", "2001:db8:0:1::1", listed=False) is not None


async def test_a_stream_of_proven_checks_does_not_starve_a_new_pair():
    """Proven pairs go first, but not always: a client reconnecting hundreds of sessions
    must not hold a new pair's first bind past its bind time-out (scenario 4 did)."""
    import asyncio

    from auth.passwords import hash_password
    from gateway.sessions.auth import PROVEN_TURNS, PasswordChecks

    hashed = hash_password("right-pw")
    checks = PasswordChecks(workers=1, pending=100, on_check=lambda: None)
    order: list[str] = []
    try:
        jobs = []
        for n in range(12):
            jobs.append(("proven", checks.submit(hashed, "right-pw", proven=True)))
            if n == 0:
                jobs.append(("new", checks.submit(hashed, "right-pw", proven=False)))
        for name, future in jobs:
            future.add_done_callback(lambda _f, name=name: order.append(name))
        assert all(await asyncio.gather(*(f for _, f in jobs)))
    finally:
        checks.close()
    # The first proven check started at once; then the new pair waits PROVEN_TURNS.
    assert order.index("new") == 1 + PROVEN_TURNS, order
