"""What admin operations may touch: `AdminContext`, and the view of bound sessions.

The context names every collaborator an operation uses and nothing more (no gateway,
no engine), so an operation can be read, and tested, knowing only this dataclass. Its
methods are the steps most operations share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gateway.admin.parsing import AdminError, required, shown
from store.bounds import check_text
from store.tables import accounts as account_table

if TYPE_CHECKING:
    from config.settings import Settings
    from gateway.accounts import AccountDirectory
    from gateway.mail import Mailer
    from store.accounts import AccountStore
    from store.audit import AuditStore
    from store.customers import CustomerStore
    from store.history import HistoryStore
    from store.inbound import InboundNumbers
    from store.ledger import LedgerStore
    from store.rates import RateStore
    from store.senders import SenderStore
    from store.stop_list import StopListStore


class SessionsView(Protocol):
    """The bound sessions of the whole cluster (gateway.sessions.presence.Presence)."""

    async def sessions(self, system_id: str | None = None) -> list[dict[str, Any]]:
        """Every bound session (of one account, or of all), with the node it is on."""
        ...

    async def bound_counts(self) -> dict[str, int]: ...

    async def kick(self, system_id: str) -> int:
        """Unbind the account's sessions on every node; how many there were."""
        ...

    async def kick_session(self, session_id: str) -> dict[str, Any] | None:
        """Unbind one session (its id as `sessions` lists it) on whichever node holds
        it; the session as listed, or None if no live node has it."""
        ...

    async def nodes(self) -> list[dict[str, Any]]: ...


class UpstreamsView(Protocol):
    """The upstreams and routes an operator changes at run time
    (gateway.upstream.control.UpstreamControl)."""

    def describe(self) -> list[dict[str, Any]]: ...

    def config_of(self, name: str) -> Any: ...

    async def add(self, values: dict[str, Any]) -> Any: ...

    async def change(self, name: str, values: dict[str, Any]) -> tuple[Any, Any]: ...

    async def remove(self, name: str) -> None: ...

    async def set_enabled(self, name: str, enabled: bool) -> None: ...

    def routes(self) -> list[dict[str, Any]]: ...

    async def set_route(self, values: dict[str, Any]) -> tuple[Any, Any]: ...

    async def remove_route(self, prefix: str, account: str | None) -> Any: ...


@dataclass(frozen=True, slots=True)
class AdminContext:
    settings: Settings
    accounts: AccountStore
    senders: SenderStore
    stop_list: StopListStore
    ledger: LedgerStore
    audit: AuditStore
    rates: RateStore
    history: HistoryStore
    # The in-memory accounts the hot path reads: refreshed after every change.
    directory: AccountDirectory
    sessions: SessionsView
    mailer: Mailer
    # The people who log in to the web panel, and the accounts each owns.
    customers: CustomerStore
    # The upstream connectors and the routing table of this node (and the store's).
    upstreams: UpstreamsView
    # Numbers, prefixes and ranges whose MOs go to an account (read by the MO path
    # from the store: nothing in memory to refresh).
    inbound_numbers: InboundNumbers

    async def account(self, args: dict, key: str = "system_id") -> dict[str, Any]:
        """The stored account named by args[key]; AdminError if there is none."""
        system_id = required(args, key)
        if len(system_id) > account_table.c.system_id.type.length:
            raise AdminError(f"unknown account {shown(system_id)}: a system_id is at most "
                             f"{account_table.c.system_id.type.length} characters")
        check_text(account_table.c.system_id, system_id, key)
        row = await self.accounts.get(system_id)
        if row is None:
            raise AdminError(f"unknown account {system_id!r}")
        return row

    async def changed(
        self,
        actor: str,
        action: str,
        system_id: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """Audit a change to an account, then let the next bind or submit see it."""
        await self.audit.record(actor, action, system_id, before, after)
        await self.directory.account_changed(system_id)

    async def bound_count(self, system_id: str) -> int:
        return len(await self.sessions.sessions(system_id))
