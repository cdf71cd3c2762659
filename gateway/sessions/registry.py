"""Who is connected and from where, who is bound, for which account, as what: the
connection limits, the bind limits and the receivers.

A connection beyond `max_connections`, or beyond `max_connections_per_ip` from one
address, is refused (`admit`), with a log line at most every REFUSAL_LOG_INTERVAL.
A receipt or MO is given to the least-loaded receiver (RX or TRX) of its account; a
new receiver triggers the delivery of what waited for it (`on_receiver_bound`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from pdu.link import RECEIVING_STATES, TRANSMITTING_STATES, State

if TYPE_CHECKING:
    from gateway.accounts import Account

log = logging.getLogger(__name__)

# Refusals are logged at most this often (seconds); the others are counted in the line.
REFUSAL_LOG_INTERVAL = 10.0
# Why a connection is refused: the setting whose limit was reached (a metric's label).
MAX_CONNECTIONS = "max_connections"
MAX_CONNECTIONS_PER_IP = "max_connections_per_ip"


class BoundSession(Protocol):
    account: Account
    peer: str
    tls: bool
    # This process's number for the connection (the `session=` of its log lines).
    number: int

    @property
    def system_id(self) -> str: ...

    @property
    def bind_type(self) -> str: ...

    @property
    def state(self) -> State: ...

    @property
    def can_receive(self) -> bool: ...

    @property
    def delivery_load(self) -> int: ...

    def request_unbind(self) -> None: ...


class SessionRegistry:
    def __init__(
        self, on_receiver_bound: Callable[[int], None], *,
        max_connections: int | None = None, max_connections_per_ip: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_receiver_bound = on_receiver_bound
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self._clock = clock
        # Every connection, bound or not (for shutdown), with its peer's address.
        self.connections: dict[object, str] = {}
        self._per_ip: dict[str, int] = {}
        self._bound: dict[int, set[BoundSession]] = {}
        self._receivers: dict[int, list[BoundSession]] = {}
        self._refusal_logged_at: float | None = None
        self._refusals_unlogged = 0

    def admit(self, connection: object, ip: str) -> str | None:
        """Count a new connection from `ip`, or refuse it: None, or the name of the
        limit it would pass (MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP)."""
        refused = None
        if self.max_connections is not None and len(self.connections) >= self.max_connections:
            refused, limit = MAX_CONNECTIONS, self.max_connections
        elif self.max_connections_per_ip is not None and (
            self._per_ip.get(ip, 0) >= self.max_connections_per_ip
        ):
            refused, limit = MAX_CONNECTIONS_PER_IP, self.max_connections_per_ip
        if refused is None:
            self.add(connection, ip)
            return None
        self._log_refusal(ip, refused, limit)
        return refused

    def add(self, connection: object, ip: str = "") -> None:
        """Count a connection whatever the limits (one the gateway dialled itself)."""
        if connection in self.connections:
            return
        self.connections[connection] = ip
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1

    def discard(self, connection: object) -> None:
        ip = self.connections.pop(connection, None)
        if ip is None:
            return
        left = self._per_ip[ip] - 1
        if left:
            self._per_ip[ip] = left
        else:
            del self._per_ip[ip]

    def connections_from(self, ip: str) -> int:
        return self._per_ip.get(ip, 0)

    def _log_refusal(self, ip: str, reason: str, limit: int) -> None:
        now = self._clock()
        last = self._refusal_logged_at
        if last is not None and now - last < REFUSAL_LOG_INTERVAL:
            self._refusals_unlogged += 1
            return
        others = self._refusals_unlogged
        self._refusal_logged_at = now
        self._refusals_unlogged = 0
        log.warning(
            "connection from %s refused: %s (%d) reached; %d connections open%s", ip,
            reason, limit, len(self.connections),
            f"; {others} more refused since the last such line" if others else "",
        )

    def add_bound(self, session: BoundSession) -> None:
        account_id = session.account.id
        self._bound.setdefault(account_id, set()).add(session)
        if session.state in RECEIVING_STATES:
            self._receivers.setdefault(account_id, []).append(session)
            self._on_receiver_bound(account_id)

    def remove_bound(self, session: BoundSession) -> None:
        account_id = session.account.id
        bound = self._bound.get(account_id)
        if bound is not None:
            bound.discard(session)
            if not bound:
                del self._bound[account_id]
        receivers = self._receivers.get(account_id)
        if receivers and session in receivers:
            receivers.remove(session)
            if not receivers:
                del self._receivers[account_id]

    def bind_slot_free(self, account: Account, state: State) -> bool:
        """The account's bind limit: at most `bind_limit` sessions able to transmit and
        `bind_limit` able to receive (a transceiver counts as both)."""
        tx = rx = 0
        for session in self._bound.get(account.id, ()):
            if session.state in TRANSMITTING_STATES:
                tx += 1
            if session.state in RECEIVING_STATES:
                rx += 1
        limit = account.bind_limit
        wants_tx = state in TRANSMITTING_STATES
        wants_rx = state in RECEIVING_STATES
        return not ((wants_tx and tx >= limit) or (wants_rx and rx >= limit))

    def receiver_for(self, account_id: int) -> BoundSession | None:
        """The least-loaded RX/TRX session of an account, if any is bound."""
        candidates = [s for s in self._receivers.get(account_id, ()) if s.can_receive]
        if not candidates:
            return None
        return min(candidates, key=lambda s: s.delivery_load)

    def accounts_with_receivers(self) -> list[int]:
        return list(self._receivers)

    def bound(self, system_id: str | None = None) -> list[BoundSession]:
        """Bound sessions, of one account or of all."""
        every = [s for group in self._bound.values() for s in group]
        if system_id is None:
            return every
        return [s for s in every if s.account.system_id == system_id]
