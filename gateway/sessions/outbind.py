"""outbind (SMPP 3.4 sections 2.2.1 and 4.1.7): the gateway calls an absent customer.

An account may name an address where its ESME listens. While receipts or MOs wait for
it and none of its receivers is bound, the gateway connects there, sends outbind with
the credentials configured for it, and takes the ESME's bind_receiver (or
bind_transceiver) on that same connection, checked like any bind but for the address
list: the gateway chose the peer. Failed attempts back off, and the dialling stops as
soon as a receiver is bound anywhere or nothing waits any more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.upstream.backoff import backoff_delay

if TYPE_CHECKING:
    from gateway.accounts import Account, AccountDirectory
    from gateway.sessions.registry import SessionRegistry
    from gateway.sessions.session import CustomerSession
    from store.alerts import AlertStore
    from store.messages import MessageStore

log = logging.getLogger(__name__)

RETRY_MIN = 1.0
RETRY_MAX = 60.0


def split_address(address: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); validated when the operator set it."""
    host, _, port = address.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


class Outbinder:
    def __init__(
        self,
        directory: AccountDirectory,
        registry: SessionRegistry,
        messages: MessageStore,
        alerts: AlertStore,
        *,
        session_factory: Callable[[Account], CustomerSession],
        connect_timeout: float,
    ) -> None:
        self._directory = directory
        self._registry = registry
        self._messages = messages
        self._alerts = alerts
        self._session_factory = session_factory
        self._connect_timeout = connect_timeout
        self._dialling: dict[int, asyncio.Task[None]] = {}
        self.attempts = 0

    def want(self, account_id: int) -> None:
        """Something waits for `account_id` and no receiver of it is bound: dial it, if
        it has an outbind address and no dialling is under way."""
        if account_id in self._dialling:
            return
        account = self._directory.by_id(account_id)
        if account is None or not account.outbind_address:
            return
        task = asyncio.get_running_loop().create_task(
            self._dial(account_id), name=f"outbind-{account.system_id}"
        )
        self._dialling[account_id] = task
        task.add_done_callback(lambda _t: self._dialling.pop(account_id, None))

    async def stop(self) -> None:
        tasks = list(self._dialling.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _dial(self, account_id: int) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            account = self._directory.by_id(account_id)
            if account is None or not account.outbind_address or not account.active:
                return
            if self._registry.receiver_for(account_id) is not None or not await self._waiting(
                account_id
            ):
                return
            host, port = split_address(account.outbind_address)
            self.attempts += 1
            session: CustomerSession | None = None
            try:
                _, session = await asyncio.wait_for(
                    loop.create_connection(lambda a=account: self._session_factory(a),
                                           host, port),
                    self._connect_timeout,
                )
                bound = await session.outbind_result
            except (OSError, TimeoutError) as exc:
                log.info("outbind to %s for %s failed: %s", account.outbind_address,
                         account.system_id, exc or type(exc).__name__)
                bound = False
            if bound and session is not None:
                log.info("outbind: %s bound as receiver on %s", account.system_id,
                         account.outbind_address)
                failures = 0
                await session.closed
                continue
            if session is not None:
                session.close("outbind gave no receiver")
            delay = backoff_delay(failures, RETRY_MIN, RETRY_MAX)
            failures += 1
            await asyncio.sleep(delay)

    async def _waiting(self, account_id: int) -> bool:
        now = datetime.now(UTC)
        if await self._messages.due_deliveries(account_id, now, 1):
            return True
        return bool(await self._alerts.alerted(account_id, now))
