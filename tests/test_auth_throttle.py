"""Bind-failure throttle state over time, driven by a fake clock."""

from __future__ import annotations

import pytest

from auth.throttle import BindThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, **kwargs: float) -> BindThrottle:
    params = {"max_failures": 3, "window": 60.0, "cooldown": 30.0} | kwargs
    return BindThrottle(clock=clock, **params)  # type: ignore[arg-type]


def test_unknown_key_is_not_blocked(clock: FakeClock) -> None:
    throttle = make(clock)
    assert not throttle.is_blocked("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 0.0
    assert len(throttle) == 0


def test_blocks_at_max_failures_within_window(clock: FakeClock) -> None:
    throttle = make(clock)
    for expected_count in (1, 2):
        throttle.record_failure("ip")
        assert throttle.failures("ip") == expected_count
        assert not throttle.is_blocked("ip")
        clock.advance(10)
    throttle.record_failure("ip")
    assert throttle.is_blocked("ip")
    assert throttle.retry_after("ip") == 30.0


def test_block_ends_after_cooldown(clock: FakeClock) -> None:
    throttle = make(clock)
    for _ in range(3):
        throttle.record_failure("ip")
    clock.advance(29.9)
    assert throttle.is_blocked("ip")
    clock.advance(0.1)
    assert not throttle.is_blocked("ip")


def test_failures_older_than_window_do_not_count(clock: FakeClock) -> None:
    throttle = make(clock)
    throttle.record_failure("ip")
    throttle.record_failure("ip")
    clock.advance(60)
    throttle.record_failure("ip")
    assert throttle.failures("ip") == 1
    assert not throttle.is_blocked("ip")


def test_sliding_window_counts_recent_failures_only(clock: FakeClock) -> None:
    throttle = make(clock)
    throttle.record_failure("ip")  # t=0
    clock.advance(40)
    throttle.record_failure("ip")  # t=40
    clock.advance(30)
    throttle.record_failure("ip")  # t=70: the t=0 failure has left the window
    assert not throttle.is_blocked("ip")
    clock.advance(5)
    throttle.record_failure("ip")  # t=75: 40, 70, 75 are within 60 s
    assert throttle.is_blocked("ip")


def test_success_clears_failures(clock: FakeClock) -> None:
    throttle = make(clock)
    throttle.record_failure("ip")
    throttle.record_failure("ip")
    throttle.record_success("ip")
    assert throttle.failures("ip") == 0
    throttle.record_failure("ip")
    assert not throttle.is_blocked("ip")


def test_success_of_unknown_key_is_harmless(clock: FakeClock) -> None:
    throttle = make(clock)
    throttle.record_success("nobody")
    assert not throttle.is_blocked("nobody")


def test_failures_while_blocked_do_not_extend_cooldown(clock: FakeClock) -> None:
    throttle = make(clock)
    for _ in range(3):
        throttle.record_failure("ip")
    for _ in range(10):
        clock.advance(2.9)
        throttle.record_failure("ip")
    assert throttle.retry_after("ip") == pytest.approx(1.0)
    clock.advance(1.0)
    assert not throttle.is_blocked("ip")


def test_after_cooldown_the_count_starts_afresh(clock: FakeClock) -> None:
    throttle = make(clock)
    for _ in range(3):
        throttle.record_failure("ip")
    clock.advance(30)
    throttle.record_failure("ip")
    assert throttle.failures("ip") == 1
    assert not throttle.is_blocked("ip")


def test_keys_are_independent(clock: FakeClock) -> None:
    throttle = make(clock)
    for _ in range(3):
        throttle.record_failure("10.0.0.1")
    throttle.record_failure("smpp-abc")
    assert throttle.is_blocked("10.0.0.1")
    assert not throttle.is_blocked("smpp-abc")
    assert not throttle.is_blocked("10.0.0.2")


def test_idle_keys_expire(clock: FakeClock) -> None:
    throttle = make(clock)
    throttle.record_failure("a")
    for _ in range(3):
        throttle.record_failure("b")
    clock.advance(59)
    throttle.record_failure("c")
    assert len(throttle) == 3
    clock.advance(1)  # a and b: last failure 60 s ago, block over
    assert not throttle.is_blocked("c")
    assert len(throttle) == 1


def test_blocked_key_is_kept_while_cooldown_exceeds_window(clock: FakeClock) -> None:
    throttle = make(clock, window=10.0, cooldown=100.0)
    for _ in range(3):
        throttle.record_failure("ip")
    clock.advance(50)
    throttle.record_failure("other")
    assert throttle.is_blocked("ip")
    clock.advance(50)
    assert not throttle.is_blocked("ip")


def test_key_count_is_capped_evicting_the_oldest(clock: FakeClock) -> None:
    throttle = BindThrottle(max_failures=2, clock=clock, max_keys=3)
    throttle.record_failure("old")
    throttle.record_failure("old")
    assert throttle.is_blocked("old")
    for key in ("k1", "k2", "k3"):
        clock.advance(1)
        throttle.record_failure(key)
    assert len(throttle) == 3
    assert not throttle.is_blocked("old")
    assert throttle.failures("k1") == 1


def test_recent_failure_protects_a_key_from_eviction(clock: FakeClock) -> None:
    throttle = BindThrottle(max_failures=5, clock=clock, max_keys=2)
    throttle.record_failure("a")
    throttle.record_failure("b")
    throttle.record_failure("a")  # a is now the most recent
    throttle.record_failure("c")  # evicts b
    assert throttle.failures("a") == 2
    assert throttle.failures("b") == 0


def test_memory_stays_bounded_under_a_flood(clock: FakeClock) -> None:
    throttle = BindThrottle(clock=clock, max_keys=1000)
    for i in range(10_000):
        throttle.record_failure(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle) == 1000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_failures": 0},
        {"window": 0.0},
        {"window": float("nan")},
        {"cooldown": -1.0},
        {"max_keys": 0},
    ],
)
def test_bad_parameters_raise(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BindThrottle(**kwargs)  # type: ignore[arg-type]


def test_default_clock_works_without_injection() -> None:
    throttle = BindThrottle(max_failures=1)
    throttle.record_failure("ip")
    assert throttle.is_blocked("ip")
