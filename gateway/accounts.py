"""The in-memory account directory the hot path reads: credentials, IP lists, senders,
STOP lists, prices, limits and balances.

Loaded from the store at start and refreshed whenever the admin socket changes an
account, so a bind or a submit never waits on the database. Balances are tracked as
the committed balance plus the debits reserved by submits still in the store writer's
queue; a submit reserves before it is queued, so one node never promises more than it
has. The committed balance is the database's as the store writer last read it: every
commit tells the balances it debited (other nodes' debits and top-ups included), and a
submit this node's view would refuse first asks the writer for a fresh read (`recheck`),
so a node never refuses what the database could pay for. The database itself never
oversells: the writer pays each message from the balance it locked.
After a debit commits, `after_debit` may start an automatic top-up or a low-balance
alert in the background; it never blocks the submit that triggered it.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from auth.ipacl import IpAllowList
from store.changes import RATES_CHANGED, RELOAD_ALL, account_notice
from store.errors import StoreError
from store.money import format_credits, parse_credits

if TYPE_CHECKING:
    from config.settings import Settings
    from gateway.mail import Mailer
    from gateway.metrics import GatewayMetrics
    from store.accounts import AccountStore
    from store.audit import AuditStore
    from store.changes import ChangeFeed
    from store.ledger import LedgerStore
    from store.rates import RateStore
    from store.stop_list import StopListStore

log = logging.getLogger(__name__)


class BalanceSource(Protocol):
    """Reads balances in the store writer's queue order (store.writer.StoreWriter)."""

    def balances(self, account_ids: Sequence[int], *, then: Any = None) -> Any: ...

# Used when no Settings are given (unit tests of the directory alone).
DEFAULT_RATE_MINOR = 100
DEFAULT_DELIVERY_TTL = 7 * 86400.0


@dataclass(slots=True, frozen=True)
class Sender:
    kind: str  # alphanumeric | shortcode | numeric
    state: str  # pending | enabled | disabled | refused


@dataclass(frozen=True, slots=True)
class SubmitPolicy:
    """What of an account the per-message submit checks need (gateway.submit)."""

    senders: Mapping[str, Sender]
    strict: bool = False
    gsm_packed: bool = False
    max_segments: int = 8


@dataclass(slots=True)
class Account:
    id: int
    system_id: str
    password_hash: str
    status: str
    allowed_ips: list[str]
    balance: int  # committed, minor units
    reserved: int = 0  # queued for commit, minor units
    # Per-account settings (stored per account; new accounts take the config defaults).
    window: int = 10
    throughput: float = 20.0
    bind_limit: int = 1
    gsm_packed: bool = False
    max_segments: int = 8
    keep_bodies: bool = True
    vendor_tlvs: bool = False
    stop_mode: str = "dlr"
    dlr_retention_days: int = 7
    addressing: str = "lenient"
    # host:port the gateway sends outbind to while receipts wait (None = never), and
    # the credentials it presents there.
    outbind_address: str | None = None
    outbind_system_id: str | None = None
    outbind_password: str | None = None
    contact_email: str | None = None
    # Credit automation, minor units; None = off.
    auto_topup_threshold: int | None = None
    auto_topup_amount: int | None = None
    auto_topup_monthly_cap: int | None = None
    low_balance_threshold: int | None = None
    senders: dict[str, Sender] = field(default_factory=dict)
    stop_list: frozenset[str] = frozenset()
    rates: dict[str, int] = field(default_factory=dict)  # this account's overrides
    allow: IpAllowList = field(init=False)
    # What the submit checks read; rebuilt whenever the account is refreshed.
    policy: SubmitPolicy = field(init=False)
    # Background work state, carried over refreshes.
    topup_running: bool = False
    low_alert_armed: bool = True

    def __post_init__(self) -> None:
        self.allow = IpAllowList(self.allowed_ips)
        self.rebuild_policy()

    def rebuild_policy(self) -> None:
        self.policy = SubmitPolicy(
            senders=self.senders, strict=self.addressing == "strict",
            gsm_packed=self.gsm_packed, max_segments=self.max_segments,
        )

    @property
    def available(self) -> int:
        return self.balance - self.reserved

    @property
    def active(self) -> bool:
        return self.status == "active"

    def is_stop_listed(self, destination_addr: str) -> bool:
        return destination_addr in self.stop_list


class AccountDirectory:
    """system_id -> Account, kept in step with the store by explicit refreshes."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        accounts: AccountStore,
        rates: RateStore,
        ledger: LedgerStore,
        stop_list: StopListStore,
        audit: AuditStore,
        metrics: GatewayMetrics | None = None,
        mailer: Mailer | None = None,
        changes: ChangeFeed | None = None,
        balance_source: BalanceSource | None = None,
    ) -> None:
        self._accounts = accounts
        self._rates = rates
        self._ledger = ledger
        self._stop_list = stop_list
        self._audit = audit
        self.metrics = metrics
        self.mailer = mailer
        self._by_system_id: dict[str, Account] = {}
        self._by_id: dict[int, Account] = {}
        self._global_rates: dict[str, int] = {}
        self._account_rates: dict[int, dict[str, int]] = {}
        self._default_rate = (
            parse_credits(settings.default_rate) if settings is not None else DEFAULT_RATE_MINOR
        )
        self._vendor_default = settings.vendor_tlvs if settings is not None else False
        self._max_ttl = timedelta(
            seconds=settings.dlr_max_age if settings is not None else DEFAULT_DELIVERY_TTL
        )
        self._tasks: set[asyncio.Task[None]] = set()
        # Counts alerts raised, whatever the delivery; tests and the admin read it.
        self.low_balance_alerts = 0
        # Other nodes on the same PostgreSQL (store.changes); None or unshared: alone.
        self._changes = changes
        self._following: list[asyncio.Task[None]] = []
        # Where committed balances are read from (the store writer); None: as loaded.
        self._balance_source = balance_source
        # account id -> what waits for the balance read under way (`recheck`)
        self._rechecks: dict[int, list[Callable[[], None]]] = {}

    # --- what the delivery of receipts and MOs asks of an account -----------------------

    def vendor_tlvs(self, account_id: int) -> bool:
        """Whether the account's receipts and MOs carry the provider's vendor TLVs."""
        account = self._by_id.get(account_id)
        return account.vendor_tlvs if account is not None else self._vendor_default

    def delivery_ttl(self, account_id: int) -> timedelta:
        """How long a receipt or MO waits for the customer: the account's own setting,
        within the gateway's `dlr_max_age`."""
        account = self._by_id.get(account_id)
        days = account.dlr_retention_days if account is not None else None
        return min(timedelta(days=days), self._max_ttl) if days else self._max_ttl

    async def load(self) -> None:
        rows = await self._accounts.load_all()
        rates = await self._rates.load_all()
        self._by_system_id.clear()
        self._by_id.clear()
        for row in rows:
            self._put(row)
        self._apply_rates(rates)

    async def refresh(self, system_id: str) -> Account | None:
        """Re-read one account after a change of credentials, status, IPs, senders,
        STOP list or settings.

        The Account object is updated in place: bound sessions hold it, and must see
        the change (and keep reserving against the same balance). The balance is not
        re-read: between a commit and its callback the store is ahead of memory, so
        balances change here only by the deltas callers apply.
        """
        row = await self._accounts.get(system_id)
        old = self._by_system_id.get(system_id)
        if row is None:
            if old is not None:
                del self._by_system_id[system_id]
                self._by_id.pop(old.id, None)
            return None
        if old is None:
            account = self._put(row)
            account.rates = self._account_rates.get(account.id, {})
            return account
        self._fill(old, row)
        return old

    async def refresh_rates(self) -> None:
        """Re-read the whole rate table (global and per-account) after a change."""
        self._apply_rates(await self._rates.load_all())

    # --- several nodes: changes made here are told, changes made elsewhere are heard ----

    @property
    def shared(self) -> bool:
        """Whether other nodes may share the store (PostgreSQL)."""
        return self._changes is not None and self._changes.shared

    async def account_changed(self, system_id: str) -> None:
        """An account was changed through this node: re-read it, and tell the others."""
        await self.refresh(system_id)
        if self._changes is not None:
            await self._changes.publish(account_notice(system_id))

    async def rates_changed(self) -> None:
        """The rate table was changed through this node: re-read it, and tell the others."""
        await self.refresh_rates()
        if self._changes is not None:
            await self._changes.publish(RATES_CHANGED)

    async def reload(self) -> None:
        """Re-read every account and the rates, updating Account objects in place (bound
        sessions hold them); balances stay as this node tracks them, as in `refresh`."""
        rows = await self._accounts.load_all()
        seen = set()
        for row in rows:
            seen.add(row["system_id"])
            old = self._by_system_id.get(row["system_id"])
            if old is None:
                self._put(row)
            else:
                self._fill(old, row)
        for system_id in [sid for sid in self._by_system_id if sid not in seen]:
            gone = self._by_system_id.pop(system_id)
            self._by_id.pop(gone.id, None)
        self._apply_rates(await self._rates.load_all())
        self._read_balances(list(self._by_id))

    def follow(self, reload_interval: float) -> None:
        """On a shared store: apply the changes other nodes announce as they come, and
        reload everything every `reload_interval` seconds in case a notice was lost."""
        if self._changes is None or not self._changes.shared or self._following:
            return
        heard: asyncio.Queue[str] = asyncio.Queue()
        self._changes.listen(heard.put_nowait)
        loop = asyncio.get_running_loop()
        self._following = [
            loop.create_task(self._apply_heard(heard), name="smppgw-directory-heard"),
            loop.create_task(self._reload_every(reload_interval),
                             name="smppgw-directory-reload"),
        ]

    async def unfollow(self) -> None:
        tasks, self._following = self._following, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._changes is not None:
            await self._changes.close()

    async def _apply_heard(self, heard: asyncio.Queue[str]) -> None:
        """One notice at a time, in order; a notice that cannot be applied is logged
        and left to the next full reload."""
        while True:
            payload = await heard.get()
            try:
                if payload.startswith("account:"):
                    account = await self.refresh(payload.removeprefix("account:"))
                    if account is not None:
                        self.resync(account)
                elif payload == RATES_CHANGED:
                    await self.refresh_rates()
                elif payload == RELOAD_ALL:
                    await self.reload()
            except Exception:
                log.warning("could not apply the directory change %r", payload, exc_info=True)

    async def _reload_every(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reload()
            except Exception:
                log.warning("periodic reload of the account directory failed", exc_info=True)

    def _apply_rates(self, rows: list[dict[str, Any]]) -> None:
        global_rates: dict[str, int] = {}
        by_account: dict[int, dict[str, int]] = {}
        for row in rows:
            target = global_rates if row["account_id"] is None else by_account.setdefault(
                row["account_id"], {}
            )
            target[row["prefix"]] = int(row["price"])
        self._global_rates = global_rates
        self._account_rates = by_account
        for account in self._by_id.values():
            account.rates = by_account.get(account.id, {})

    def _put(self, row: dict) -> Account:
        account = Account(
            id=row["id"],
            system_id=row["system_id"],
            password_hash=row["password_hash"],
            status=row["status"],
            allowed_ips=list(row.get("allowed_ips") or []),
            balance=row["balance"],
        )
        self._fill(account, row)
        self._by_system_id[account.system_id] = account
        self._by_id[account.id] = account
        return account

    @staticmethod
    def _fill(account: Account, row: dict) -> None:
        """Everything but the balance, from a store row."""
        account.password_hash = row["password_hash"]
        account.status = row["status"]
        account.allowed_ips = list(row.get("allowed_ips") or [])
        account.allow = IpAllowList(account.allowed_ips)
        for name, column in _SETTING_COLUMNS.items():
            if column in row and row[column] is not None:
                setattr(account, name, row[column])
        for name in _OPTIONAL_COLUMNS:
            setattr(account, name, row.get(name))
        account.senders = {
            s["address"]: Sender(s["kind"], s["state"]) for s in row.get("senders") or []
        }
        account.stop_list = frozenset(row.get("stop_list") or ())
        account.rebuild_policy()
        threshold = account.low_balance_threshold
        if threshold is None or account.balance >= threshold:
            account.low_alert_armed = True

    def get(self, system_id: str) -> Account | None:
        return self._by_system_id.get(system_id)

    def by_id(self, account_id: int) -> Account | None:
        return self._by_id.get(account_id)

    def __len__(self) -> int:
        return len(self._by_id)

    # --- pricing ---------------------------------------------------------------------

    def price(self, account: Account, destination_addr: str) -> int:
        """Minor units per segment: the account's longest matching override, else the
        global table's longest matching prefix, else the default rate."""
        for table in (account.rates, self._global_rates):
            if not table:
                continue
            for end in range(min(len(destination_addr), 15), 0, -1):
                price = table.get(destination_addr[:end])
                if price is not None:
                    return price
        return self._default_rate

    # --- STOP replies ----------------------------------------------------------------

    async def stop_list_add(
        self, account: Account, destination: str, note: str | None = "STOP received"
    ) -> bool:
        """STOP-list a destination for an account (e.g. when its MO says STOP): stored,
        audited as the gateway's own doing, and seen by the next submit at once.
        Returns False if it was already listed."""
        added = await self._stop_list.add(account.system_id, destination, note)
        if added:
            await self._audit.record(
                "gateway", "stop.add", account.system_id, None,
                {"destination": destination, "note": note},
            )
            account.stop_list = account.stop_list | {destination}
            if self._changes is not None:
                await self._changes.publish(account_notice(account.system_id))
        return added

    # --- credit reservation (the hot path) ---------------------------------------

    @staticmethod
    def reserve(account: Account, cost: int) -> bool:
        if account.available < cost:
            return False
        account.reserved += cost
        return True

    @staticmethod
    def release(account: Account, cost: int) -> None:
        """The reservation ends: the store writer's commit paid it (and told the new
        balance through `balances_committed`), or the submit failed."""
        account.reserved -= cost

    def settle(self, account: Account, cost: int) -> None:
        """A debit committed outside the store writer (a transfer, a replace_sm): move
        it from reserved to the balance, have the writer read the balance again, and
        tell the other nodes."""
        account.reserved -= cost
        account.balance -= cost
        self.resync(account)
        self._announce(account)

    def credited(self, account: Account, amount: int) -> None:
        """A credit (top-up, transfer in, refund) committed outside the store writer:
        add it, re-arm the alert, have the writer read the balance again, and tell the
        other nodes."""
        account.balance += amount
        self._rearm(account)
        self.resync(account)
        self._announce(account)

    def balances_committed(self, balances: dict[int, int]) -> None:
        """The store writer's commit left these balances (account id -> minor units);
        called before that commit's submits hear of it."""
        by_id = self._by_id
        for account_id, balance in balances.items():
            account = by_id.get(account_id)
            if account is not None:
                account.balance = balance
                self._rearm(account)

    def recheck(self, account: Account, then: Callable[[], None]) -> None:
        """This node's view refused a submit: read the balance from the store (queued
        after everything this node wrote), then call `then()` to try again. Refusals of
        one account share one read."""
        waiting = self._rechecks.get(account.id)
        if waiting is not None:
            waiting.append(then)
            return
        self._rechecks[account.id] = [then]
        if not self._read_balances([account.id], partial(self._rechecked, account.id)):
            self._rechecked(account.id, None, None)

    def _rechecked(self, account_id: int, _: object, error: BaseException | None) -> None:
        if error is not None:
            log.warning("could not read the balance of account id %s: %r", account_id, error)
        for then in self._rechecks.pop(account_id, ()):
            try:
                then()
            except Exception:
                log.exception("a submit waiting for a balance read failed")

    def resync(self, account: Account) -> None:
        """Have the store writer read the account's balance in its next commit."""
        self._read_balances([account.id])

    def _read_balances(self, account_ids: list[int],
                       then: Callable[[object, BaseException | None], None] | None = None
                       ) -> bool:
        if self._balance_source is None or not account_ids:
            return False
        try:
            self._balance_source.balances(account_ids, then=then or _ignore_read)
        except StoreError as exc:  # the writer is stopping: the view stays as it is
            log.debug("balance read not queued: %s", exc)
            return False
        return True

    @staticmethod
    def _rearm(account: Account) -> None:
        threshold = account.low_balance_threshold
        if threshold is None or account.balance >= threshold:
            account.low_alert_armed = True

    def _announce(self, account: Account) -> None:
        """Tell the other nodes that the account changed (its balance), in the
        background."""
        if self._changes is not None and self._changes.shared:
            self._spawn(self._changes.publish(account_notice(account.system_id)),
                        f"announce-{account.system_id}")

    # --- after a debit: automatic top-up and low-balance alert -------------------------

    def after_debit(self, account: Account) -> None:
        """Called right after a debit committed. Never blocks and never raises: the
        top-up and the alert's e-mail run as background tasks."""
        try:
            self._check_topup(account)
            self._check_low_balance(account)
        except Exception:  # the submit path must not fail because of bookkeeping
            log.exception("after_debit bookkeeping failed for %s", account.system_id)

    def _check_topup(self, account: Account) -> None:
        threshold, amount = account.auto_topup_threshold, account.auto_topup_amount
        if threshold is None or not amount or account.topup_running:
            return
        if account.balance > threshold:
            return
        account.topup_running = True
        self._spawn(self._auto_topup(account.id), f"auto-topup-{account.system_id}")

    async def _auto_topup(self, account_id: int) -> None:
        outcome = "failed"
        try:
            added = await self._ledger.auto_topup(account_id)
            account = self._by_id.get(account_id)
            if added is None:
                outcome = "capped"
                if account is not None:
                    log.warning(
                        "automatic top-up of %s not done: balance above threshold or "
                        "monthly cap reached", account.system_id,
                    )
            else:
                outcome = "done"
                if account is not None:
                    self.credited(account, added)
                    log.info(
                        "automatic top-up of %s: +%s credits",
                        account.system_id, format_credits(added),
                    )
        except Exception:
            log.exception("automatic top-up of account id %s failed", account_id)
        finally:
            account = self._by_id.get(account_id)
            if account is not None:
                account.topup_running = False
            if self.metrics is not None:
                self.metrics.auto_topups.labels(outcome).inc()

    def _check_low_balance(self, account: Account) -> None:
        threshold = account.low_balance_threshold
        if threshold is None:
            return
        if account.balance >= threshold:
            account.low_alert_armed = True
            return
        if not account.low_alert_armed:
            return
        # One alert per crossing: re-armed once the balance is back at the threshold.
        account.low_alert_armed = False
        self.low_balance_alerts += 1
        balance, limit = format_credits(account.balance), format_credits(threshold)
        log.warning(
            "low balance: account %s has %s credits, below its alert threshold %s",
            account.system_id, balance, limit,
        )
        if self.metrics is not None:
            self.metrics.low_balance_alerts.inc()
        if self.mailer is not None and self.mailer.enabled and account.contact_email:
            self._spawn(
                self._mail_low_balance(account.contact_email, account.system_id, balance, limit),
                f"low-balance-mail-{account.system_id}",
            )

    async def _mail_low_balance(self, to: str, system_id: str, balance: str, limit: str) -> None:
        from gateway.mail import low_balance_mail

        assert self.mailer is not None
        subject, body = low_balance_mail(system_id, balance, limit)
        try:
            await self.mailer.send(to, subject, body)
        except (OSError, smtplib.SMTPException) as exc:  # the alert is logged already
            log.warning("low-balance mail for %s to %s failed: %r", system_id, to, exc)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        # Held until done: the loop keeps only weak references to tasks.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for background top-ups and alert mails (tests, and a clean stop)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _ignore_read(_: object, error: BaseException | None) -> None:
    if error is not None:
        log.warning("a balance read failed: %r", error)


# Account attribute -> store column, for the per-account settings.
_SETTING_COLUMNS = {
    "window": "window_size",
    "throughput": "throughput",
    "bind_limit": "bind_limit",
    "gsm_packed": "gsm_packed",
    "max_segments": "max_segments",
    "keep_bodies": "keep_bodies",
    "vendor_tlvs": "vendor_tlvs",
    "stop_mode": "stop_mode",
    "dlr_retention_days": "dlr_retention_days",
    "addressing": "addressing",
}
_OPTIONAL_COLUMNS = (
    "contact_email", "outbind_address", "outbind_system_id", "outbind_password", "auto_topup_threshold", "auto_topup_amount", "auto_topup_monthly_cap",
    "low_balance_threshold",
)
