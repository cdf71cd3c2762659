"""Bind checks: system_id, source address, password, and throttling of guessers.

Nothing is written for a refused bind. Argon2 verification costs ~19 MiB and ~17 ms,
so it runs two at a time in its own threads: a storm of binds neither balloons memory
nor starves other work.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from auth.passwords import verify_password
from auth.throttle import BindThrottle
from pdu.codec import Pdu
from pdu.status import CommandStatus

if TYPE_CHECKING:
    from gateway.accounts import Account, AccountDirectory
    from gateway.metrics import GatewayMetrics


class Authenticator:
    def __init__(
        self, directory: AccountDirectory, metrics: GatewayMetrics, *, uniform_failure: bool
    ) -> None:
        self._directory = directory
        self._metrics = metrics
        self._uniform = uniform_failure
        self.throttle = BindThrottle()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    async def check(
        self, bind: Pdu, peer_ip: str, *, outbind_for: Account | None = None
    ) -> tuple[int, Account | None]:
        """(status, account) for a bind; never writes.

        On a connection the gateway dialled for outbind only that account may bind,
        and its address list does not apply: the gateway chose the peer.
        """
        system_id = bind.system_id
        keys = (f"ip:{peer_ip}", f"sid:{system_id}")
        if any(self.throttle.is_blocked(k) for k in keys):
            self._metrics.bind_failures.labels("throttled").inc()
            return CommandStatus.ESME_RBINDTHROTTLED, None
        account = self._directory.get(system_id)
        if account is None or (outbind_for is not None and account is not outbind_for):
            return self._failed(keys, "unknown_system_id", CommandStatus.ESME_RINVSYSID)
        if not account.active:
            return self._failed(keys, "suspended", CommandStatus.ESME_RBINDFAIL)
        if outbind_for is None and not account.allow.allows(peer_ip):
            return self._failed(keys, "ip_not_allowed", CommandStatus.ESME_RBINDFAIL)
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(
            self._pool, verify_password, account.password_hash, bind.password
        )
        if not ok:
            return self._failed(keys, "bad_password", CommandStatus.ESME_RINVPASWD)
        for key in keys:
            self.throttle.record_success(key)
        return CommandStatus.ESME_ROK, account

    def _failed(self, keys: tuple[str, ...], reason: str, status: int) -> tuple[int, None]:
        for key in keys:
            self.throttle.record_failure(key)
        self._metrics.bind_failures.labels(reason).inc()
        if self._uniform:
            status = CommandStatus.ESME_RBINDFAIL
        return status, None
