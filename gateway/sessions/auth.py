"""Bind checks: system_id, source address, password, and throttling of guessers.

Nothing is written to the store for a refused bind; one WARNING line says who was
refused and why (`log_refused_bind`), never with the password. A bind first reserves its
throttle keys (auth.throttle.BindGuard), then waits its turn for one Argon2 verification
(~19 MiB, ~18 ms) in a small thread pool. Every admitted bind is verified, against the account's
hash or, for an unknown, suspended or not-allowed account, a decoy hash, so answer
times do not tell which names exist. The queue is bounded: beyond it a bind is
throttled at once; pairs that have bound before have a queue of their own, served
first, so a flood of strangers cannot keep an owner out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from auth.passwords import decoy_hash, verify_password
from auth.throttle import BindAttempt, BindGuard, BindLimits
from pdu.codec import Pdu
from pdu.status import CommandStatus, status_name

if TYPE_CHECKING:
    from gateway.accounts import Account, AccountDirectory
    from gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

# Argon2 threads. Each check holds ~19 MiB and one core; the event loop keeps the rest.
CHECK_WORKERS = 2

# Proven-pair checks started in a row before one waiting check of another bind is.
PROVEN_TURNS = 3

# How long a bind may wait for room on throttle keys that are full only of binds in flight.
BUSY_WAIT = 10.0

_Job = tuple[asyncio.Future, str, str]

# How much of a refused bind's system_id is logged. SMPP allows 15 characters; what a
# stranger sends beyond that is no business of a log line.
LOGGED_SYSTEM_ID = 32


def log_refused_bind(
    peer_ip: str, system_id: str, reason: str, status: int, *,
    blocked: list[str] | None = None, cooldown: float = 0.0,
    level: int = logging.WARNING, exc_info: bool = False,
) -> None:
    """The one line of a refused bind, fixed in form for fail2ban and the like:

    ``bind refused: peer=<ip> system_id=<repr> reason=<label> status=<name>``

    `reason` is the label `smppgw_bind_failures_total` counts, `status` the command_status
    sent (with uniform_bind_failure, ESME_RBINDFAIL whatever the reason). The system_id
    is the client's, so it is cut and repr-escaped: it cannot end the line or forge one,
    and it comes after `peer=`, which a filter anchors on. `blocked` names the throttle
    keys this failure has just closed for `cooldown` seconds (`` blocked=pair/address
    cooldown=300s`` is appended). The same values go out as `extra` fields for JSON.
    """
    shown = system_id[:LOGGED_SYSTEM_ID]
    cut = "..." if len(system_id) > LOGGED_SYSTEM_ID else ""
    status_text = status_name(status)
    extra: dict[str, object] = {
        "peer": peer_ip, "system_id": shown, "reason": reason, "status": status_text,
    }
    tail = ""
    if blocked:
        extra["blocked"] = "/".join(blocked)
        extra["cooldown_seconds"] = round(cooldown)
        tail = f" blocked={extra['blocked']} cooldown={cooldown:.0f}s"
    log.log(level, "bind refused: peer=%s system_id=%r%s reason=%s status=%s%s",
            peer_ip, shown, cut, reason, status_text, tail, extra=extra, exc_info=exc_info)


class PasswordChecks:
    """Argon2 verifications, ``workers`` at a time, in two bounded queues.

    The executor is only ever given as many jobs as it has threads, so what waits,
    waits here, where it can be counted and refused: at most ``pending`` jobs wait in
    each queue. The queue of proven pairs (binds of a system_id from an address that
    bound it before) is served first, three turns in four while both wait.
    """

    def __init__(self, workers: int, pending: int, on_check) -> None:
        self._workers = workers
        self._pending = pending
        self._on_check = on_check
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._running = 0
        self._proven: deque[_Job] = deque()
        self._proven_streak = 0  # proven jobs started in a row while others waited
        self._others: deque[_Job] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    def submit(self, hashed: str, password: str, *, proven: bool) -> asyncio.Future | None:
        """A future of the verification, or None if its queue is full."""
        queue = self._proven if proven else self._others
        if self._running >= self._workers and len(queue) >= self._pending:
            return None
        self._loop = loop = asyncio.get_running_loop()
        job = (loop.create_future(), hashed, password)
        if self._running < self._workers:
            self._start(job)
        else:
            queue.append(job)
        return job[0]

    def close(self) -> None:
        for queue in (self._proven, self._others):
            while queue:
                queue.popleft()[0].cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _start(self, job: _Job) -> None:
        result, hashed, password = job
        self._running += 1
        self._on_check()
        loop = self._loop
        assert loop is not None

        def finished(done: Future) -> None:  # in the worker thread
            try:
                loop.call_soon_threadsafe(self._finished, result, done)
            except RuntimeError:  # the loop has closed: nobody waits any more
                pass

        self._pool.submit(verify_password, hashed, password).add_done_callback(finished)

    def _finished(self, result: asyncio.Future, done: Future) -> None:
        self._running -= 1
        if not result.done():
            if done.cancelled():
                result.cancel()
            elif done.exception() is not None:
                result.set_exception(done.exception())
            else:
                result.set_result(done.result())
        while self._running < self._workers and (self._proven or self._others):
            job = self._next()
            if not job[0].cancelled():
                self._start(job)

    def _next(self) -> _Job:
        """The proven queue first, but one job in PROVEN_TURNS + 1 from the other one
        when both wait: a steady stream of proven binds (a client reconnecting its
        sessions) must not starve the first bind of a new pair past its bind time-out."""
        if self._proven and (not self._others or self._proven_streak < PROVEN_TURNS):
            self._proven_streak += 1
            return self._proven.popleft()
        self._proven_streak = 0
        return self._others.popleft()


class Authenticator:
    def __init__(
        self,
        directory: AccountDirectory,
        metrics: GatewayMetrics,
        *,
        uniform_failure: bool,
        limits: BindLimits,
        checks_pending: int,
    ) -> None:
        self._directory = directory
        self._metrics = metrics
        self._uniform = uniform_failure
        self.guard = BindGuard(limits)
        # Told (system_id, address, listed) of every failed bind: other nodes count it.
        self.on_failure: Callable[[str, str, bool], None] | None = None
        self._checks = PasswordChecks(
            CHECK_WORKERS, checks_pending, metrics.bind_password_checks.inc
        )
        # Made once, with the parameters of real hashes, so a decoy check costs the same.
        self._decoy = decoy_hash()
        # Binds waiting for room on keys full of binds in flight (see _admit).
        self._waiters: list[asyncio.Future] = []

    def close(self) -> None:
        self._checks.close()
        self._wake_waiters()

    async def _admit(self, system_id: str, peer_ip: str, listed: bool) -> BindAttempt | None:
        """The guard's reservation for this bind, or None if it is throttled.

        A key full only of binds in flight (a client opening several sessions at once,
        all with the right password) is not a block: the bind waits, up to BUSY_WAIT
        seconds, for one of them to be judged and asks again. Failures never exceed a
        limit either way, since every waiting bind is admitted only under it.
        """
        guard = self.guard
        attempt = guard.admit(system_id, peer_ip, listed=listed)
        if attempt is not None or guard.blocked(system_id, peer_ip, listed=listed):
            return attempt
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_WAIT
        while attempt is None and not guard.blocked(system_id, peer_ip, listed=listed):
            left = deadline - loop.time()
            if left <= 0:
                return None
            woken = loop.create_future()
            self._waiters.append(woken)
            try:
                await asyncio.wait_for(woken, left)
            except TimeoutError:
                return None
            attempt = guard.admit(system_id, peer_ip, listed=listed)
        return attempt

    def _wake_waiters(self) -> None:
        """A bind has been judged: the binds waiting for room on their keys ask again."""
        waiters, self._waiters = self._waiters, []
        for woken in waiters:
            if not woken.done():
                woken.set_result(None)

    async def check(
        self, bind: Pdu, peer_ip: str, *, outbind_for: Account | None = None
    ) -> tuple[int, Account | None]:
        """(status, account) for a bind; never writes.

        On a connection the gateway dialled for outbind only that account may bind,
        and its address list does not apply: the gateway chose the peer.
        """
        system_id = bind.system_id
        account = self._directory.get(system_id)
        if outbind_for is not None and account is not outbind_for:
            account = None
        listed = account is not None and (
            outbind_for is not None or account.allow.allows(peer_ip)
        )
        if account is None:
            refusal = "unknown_system_id"
        elif not account.active:
            refusal = "suspended"
        elif not listed:
            refusal = "ip_not_allowed"
        else:
            refusal = None

        attempt = await self._admit(system_id, peer_ip, listed)
        if attempt is None:
            return self._refused(system_id, peer_ip, "throttled",
                                 CommandStatus.ESME_RBINDTHROTTLED)
        try:
            hashed = self._decoy if refusal is not None else account.password_hash
            verified = self._checks.submit(hashed, bind.password, proven=attempt.proven)
            if verified is None:
                attempt.abandoned()
                return self._refused(system_id, peer_ip, "checks_queue_full",
                                     CommandStatus.ESME_RBINDTHROTTLED)
            try:
                ok = await verified
            except BaseException:
                attempt.abandoned()
                raise
            if refusal is None and ok:
                attempt.succeeded()
                return CommandStatus.ESME_ROK, account
            blocked = attempt.failed()
        finally:
            self._wake_waiters()
        if self.on_failure is not None:
            self.on_failure(system_id, peer_ip, attempt.counted_account)
        reason = refusal or "bad_password"
        status = CommandStatus.ESME_RBINDFAIL if self._uniform else _STATUS[reason]
        # Keys this failure closed are said on its own line: one line per refused bind.
        return self._refused(system_id, peer_ip, reason, status, blocked=blocked)

    def _refused(
        self, system_id: str, peer_ip: str, reason: str, status: int, *,
        blocked: list[str] | None = None,
    ) -> tuple[int, None]:
        self._metrics.bind_failures.labels(reason).inc()
        log_refused_bind(peer_ip, system_id, reason, status, blocked=blocked,
                         cooldown=self.guard.limits.cooldown)
        return status, None


_STATUS = {
    "unknown_system_id": CommandStatus.ESME_RINVSYSID,
    "suspended": CommandStatus.ESME_RBINDFAIL,
    "ip_not_allowed": CommandStatus.ESME_RBINDFAIL,
    "bad_password": CommandStatus.ESME_RINVPASWD,
}
