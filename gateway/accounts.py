"""The in-memory account directory the hot path reads: credentials, IP lists, balances.

Loaded from the store at start and refreshed whenever the admin socket changes an
account, so a bind or a submit never waits on the database. Balances are tracked as
the committed balance plus the debits reserved by submits still in the batcher; a
submit reserves before it is queued, so one node never promises more than it has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auth.ipacl import IpAllowList


@dataclass(slots=True)
class Account:
    id: int
    system_id: str
    password_hash: str
    status: str
    allowed_ips: list[str]
    balance: int  # committed, minor units
    reserved: int = 0  # queued for commit, minor units
    # Per-account settings; the defaults are the provider's (issue 4 stores them).
    window: int = 10
    throughput: float = 20.0
    bind_limit: int = 1
    gsm_packed: bool = False
    max_segments: int = 8
    keep_bodies: bool = True
    stop_mode: str = "dlr"
    allow: IpAllowList = field(init=False)

    def __post_init__(self) -> None:
        self.allow = IpAllowList(self.allowed_ips)

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    @property
    def active(self) -> bool:
        return self.status == "active"

    def sender_status(self, source_addr: str, ton: int, npi: int) -> bool:
        """Whether this sender may be used. Until sender lists exist, any valid one."""
        return True

    def is_stop_listed(self, destination_addr: str) -> bool:
        return False


class AccountDirectory:
    """system_id -> Account, kept in step with the store by explicit refreshes."""

    def __init__(self, store, settings=None) -> None:
        self._store = store
        self._settings = settings
        self._by_system_id: dict[str, Account] = {}
        self._by_id: dict[int, Account] = {}

    async def load(self) -> None:
        rows = await self._store.load_all()
        self._by_system_id.clear()
        self._by_id.clear()
        for row in rows:
            self._put(row)

    async def refresh(self, system_id: str) -> Account | None:
        """Re-read one account after a change of credentials, status or IPs.

        The balance is not re-read: between a commit and its callback the store is
        ahead of memory, so balances change here only by the deltas callers apply.
        """
        row = await self._store.get(system_id)
        old = self._by_system_id.pop(system_id, None)
        if old is not None:
            self._by_id.pop(old.id, None)
        if row is None:
            return None
        account = self._put(row)
        if old is not None:
            account.balance = old.balance
            account.reserved = old.reserved
        return account

    def _put(self, row: dict) -> Account:
        account = Account(
            id=row["id"],
            system_id=row["system_id"],
            password_hash=row["password_hash"],
            status=row["status"],
            allowed_ips=list(row.get("allowed_ips") or []),
            balance=row["balance"],
        )
        if self._settings is not None:
            account.window = row.get("window") or self._settings.default_window
            account.throughput = row.get("throughput") or self._settings.default_throughput
        self._by_system_id[account.system_id] = account
        self._by_id[account.id] = account
        return account

    def get(self, system_id: str) -> Account | None:
        return self._by_system_id.get(system_id)

    def by_id(self, account_id: int) -> Account | None:
        return self._by_id.get(account_id)

    def __len__(self) -> int:
        return len(self._by_id)

    # --- pricing (flat until the rate table lands) ----------------------------------

    FLAT_RATE_MINOR = 100

    def price(self, account: Account, destination_addr: str) -> int:
        """Minor units per segment for this destination."""
        return self.FLAT_RATE_MINOR

    def after_debit(self, account: Account) -> None:
        """Hook for automatic top-up and low-balance alerts (issue 4)."""

    # --- credit reservation (the hot path) ---------------------------------------

    @staticmethod
    def reserve(account: Account, cost: int) -> bool:
        if account.available < cost:
            return False
        account.reserved += cost
        return True

    @staticmethod
    def settle(account: Account, cost: int) -> None:
        """The debit committed: move it from reserved to the balance."""
        account.reserved -= cost
        account.balance -= cost

    @staticmethod
    def release(account: Account, cost: int) -> None:
        """The submit failed: give the reservation back."""
        account.reserved -= cost
