"""Who is bound, for which account, as what: the bind limits and the receivers.

A receipt or MO is given to the least-loaded receiver (RX or TRX) of its account; a
new receiver triggers the delivery of what waited for it (`on_receiver_bound`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from pdu.link import RECEIVING_STATES, TRANSMITTING_STATES, State

if TYPE_CHECKING:
    from gateway.accounts import Account


class BoundSession(Protocol):
    account: Account
    peer: str
    tls: bool

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
    def __init__(self, on_receiver_bound: Callable[[int], None]) -> None:
        self._on_receiver_bound = on_receiver_bound
        # Every connection, bound or not (for shutdown).
        self.connections: set[object] = set()
        self._bound: dict[int, set[BoundSession]] = {}
        self._receivers: dict[int, list[BoundSession]] = {}

    def add(self, connection: object) -> None:
        self.connections.add(connection)

    def discard(self, connection: object) -> None:
        self.connections.discard(connection)

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
