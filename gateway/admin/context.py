"""What admin operations may touch: `AdminContext`, and the view of bound sessions.

The context names every collaborator an operation uses and nothing more (no gateway,
no engine), so an operation can be read, and tested, knowing only this dataclass. Its
three methods are the steps most operations share.
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
    from store.history import HistoryStore
    from store.ledger import LedgerStore
    from store.rates import RateStore
    from store.senders import SenderStore
    from store.stop_list import StopListStore


class BoundSession(Protocol):
    """One bound SMPP session, as the operator sees and kicks it."""

    @property
    def system_id(self) -> str: ...

    @property
    def peer(self) -> str: ...

    @property
    def bind_type(self) -> str:
        """transmitter, receiver or transceiver."""
        ...

    @property
    def tls(self) -> bool: ...

    def request_unbind(self) -> None: ...


class SessionsView(Protocol):
    def bound(self, system_id: str | None = None) -> list[BoundSession]:
        """The bound sessions of one account, or of every account."""
        ...


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

    def bound_count(self, system_id: str) -> int:
        return len(self.sessions.bound(system_id))
