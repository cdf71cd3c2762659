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
from typing import TYPE_CHECKING

from gateway.upstream.backoff import backoff_delay

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger(__name__)

RETRY_MIN = 1.0
RETRY_MAX = 60.0


def split_address(address: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); validated when the operator set it."""
    host, _, port = address.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


class Outbinder:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self._dialling: dict[int, asyncio.Task[None]] = {}
        self.attempts = 0

    def want(self, account_id: int) -> None:
        """Something waits for `account_id` and no receiver of it is bound: dial it, if
        it has an outbind address and no dialling is under way."""
        if account_id in self._dialling:
            return
        account = self.gw.accounts.by_id(account_id)
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
        from gateway.session import SmppSession

        gw = self.gw
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            account = gw.accounts.by_id(account_id)
            if account is None or not account.outbind_address or not account.active:
                return
            if gw.receiver_for(account_id) is not None or not await self._waiting(account_id):
                return
            host, port = split_address(account.outbind_address)
            self.attempts += 1
            session: SmppSession | None = None
            try:
                _, session = await asyncio.wait_for(
                    loop.create_connection(lambda a=account: SmppSession(gw, outbind_for=a),
                                           host, port),
                    gw.settings.response_timeout,
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
                session.close()
            delay = backoff_delay(failures, RETRY_MIN, RETRY_MAX)
            failures += 1
            await asyncio.sleep(delay)

    async def _waiting(self, account_id: int) -> bool:
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        if await self.gw.messages.due_deliveries(account_id, now, 1):
            return True
        return bool(await self.gw.dispatcher.alert_store.alerted(account_id, now))
