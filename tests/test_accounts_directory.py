"""The account directory (gateway/accounts) over a real store (SQLite and PostgreSQL):
what the submit path reads, and after_debit's background top-up and alert that never
block the caller."""

from __future__ import annotations

import time

import pytest
import store_fixtures
from gw_helpers import gateway_settings
from store_fixtures import StoreDB

from auth.senders import NPI_FOR_KIND, TON_FOR_KIND
from gateway.accounts import AccountDirectory
from gateway.metrics import GatewayMetrics
from gateway.submit.validation import SubmitRejected, resolve_source
from store.accounts import AccountStore
from store.audit import AuditStore
from store.invariants import ledger_violations
from store.ledger import LedgerStore
from store.rates import RateStore
from store.stop_list import StopListStore

store_db = store_fixtures.store_db

SENDERS = [
    {"address": "ACME", "kind": "alphanumeric", "state": "enabled"},
    {"address": "36180", "kind": "shortcode", "state": "enabled"},
    {"address": "33700000000", "kind": "numeric", "state": "enabled"},
    {"address": "NEWS", "kind": "alphanumeric", "state": "pending"},
    {"address": "OLD", "kind": "alphanumeric", "state": "disabled"},
]


def _directory(db: StoreDB, tmp_path, ledger=None) -> AccountDirectory:
    engine = db.engine
    return AccountDirectory(
        gateway_settings(tmp_path, default_rate="0.05"),
        accounts=AccountStore(engine), rates=RateStore(engine),
        ledger=ledger or LedgerStore(engine), stop_list=StopListStore(engine),
        audit=AuditStore(engine), metrics=GatewayMetrics(),
    )


def _counted(directory: AccountDirectory, name: str, **labels: str) -> float | None:
    return directory.metrics.registry.get_sample_value(name, labels)


@pytest.fixture
async def directory(store_db: StoreDB, tmp_path) -> AccountDirectory:
    store = AccountStore(store_db.engine)
    await store.create("acme", "h", credits=1000, sender_list=SENDERS,
                       settings={"window_size": 7, "max_segments": 3})
    await store.create("other", "h", credits=1000)
    d = _directory(store_db, tmp_path)
    await d.load()
    return d


@pytest.mark.parametrize(
    "source, ton, npi, strict, allowed",
    [
        # strict: the TON and NPI must name the enabled sender's kind exactly
        ("ACME", 5, 0, True, True), ("ACME", 0, 0, True, False), ("ACME", 1, 1, True, False),
        ("ACME", 5, 1, True, False), ("36180", 3, 1, True, True), ("36180", 5, 0, True, False),
        ("33700000000", 1, 1, True, True), ("33700000000", 5, 0, True, False),
        # lenient: any TON/NPI clients use, for an enabled sender matched exactly
        ("ACME", 0, 0, False, True), ("ACME", 1, 1, False, True), ("36180", 0, 0, False, True),
        ("33700000000", 2, 1, False, True), ("+33700000000", 1, 1, False, True),
        ("ACME", 4, 0, False, False), ("ACME", 5, 9, False, False),
        # never: a sender that is not enabled, or not the account's
        ("NEWS", 5, 0, False, False), ("OLD", 5, 0, True, False), ("acme", 5, 0, False, False),
        ("UNKNOWN", 5, 0, False, False),
    ],
)
async def test_only_enabled_senders_pass_the_addressing_policy(
    directory: AccountDirectory, source: str, ton: int, npi: int, strict: bool, allowed: bool
) -> None:
    account = directory.get("acme")
    try:
        address = resolve_source(account.senders, ton, npi, source, strict=strict)
    except SubmitRejected:
        assert not allowed
        return
    assert allowed
    kind = account.senders[address.addr].kind
    assert (address.ton, address.npi) == (TON_FOR_KIND[kind], NPI_FOR_KIND[kind])


async def test_settings_and_stop_list_are_in_memory(
    store_db: StoreDB, directory: AccountDirectory
) -> None:
    acme = directory.get("acme")
    assert (acme.window, acme.max_segments, acme.throughput, acme.stop_mode) == (7, 3, 20.0, "dlr")
    assert not acme.is_stop_listed("33612345678")
    await StopListStore(store_db.engine).add("acme", "33612345678")
    assert not acme.is_stop_listed("33612345678")  # nothing changes before a refresh
    assert await directory.refresh("acme") is acme  # the same object, updated in place
    assert acme.is_stop_listed("33612345678")
    assert not directory.get("other").is_stop_listed("33612345678")


async def test_price_prefers_account_override_then_longest_global_prefix(
    store_db: StoreDB, directory: AccountDirectory
) -> None:
    rates = RateStore(store_db.engine)
    acme, other = directory.get("acme"), directory.get("other")
    assert directory.price(acme, "33612345678") == 5  # the configured default, 0.05
    await rates.set_rate("3", 40)
    await rates.set_rate("33", 30)
    await rates.set_rate("336", 20)
    await rates.set_rate("33", 10, "acme")
    await directory.refresh_rates()
    assert directory.price(other, "33612345678") == 20
    assert directory.price(other, "33712345678") == 30
    assert directory.price(other, "3912345678") == 40
    assert directory.price(other, "4412345678") == 5
    assert directory.price(acme, "33612345678") == 10  # the override wins over a longer one
    assert directory.price(acme, "4412345678") == 5


async def test_after_debit_tops_up_in_the_background(
    store_db: StoreDB, directory: AccountDirectory
) -> None:
    ledger = LedgerStore(store_db.engine)
    await AccountStore(store_db.engine).update_settings(
        "acme", {"auto_topup_threshold": 500, "auto_topup_amount": 2000})
    acme = await directory.refresh("acme")
    await ledger.transfer("acme", "other", 600)  # committed: 400, below the threshold
    acme.balance -= 600
    started = time.perf_counter()
    directory.after_debit(acme)
    directory.after_debit(acme)  # a second trigger while the first runs adds nothing
    assert time.perf_counter() - started < 0.01  # returned at once, nothing awaited
    assert acme.balance == 400 and acme.topup_running
    await directory.drain()
    assert acme.balance == 2400 and not acme.topup_running
    assert await ledger.balance("acme") == 2400
    assert _counted(directory, "smppgw_auto_topups_total", outcome="done") == 1
    assert await ledger_violations(store_db.engine) == []


async def test_after_debit_alerts_once_per_crossing_without_smtp(
    directory: AccountDirectory, caplog: pytest.LogCaptureFixture
) -> None:
    acme = directory.get("acme")
    acme.low_balance_threshold = 500
    caplog.set_level("WARNING", logger="gateway.accounts")
    acme.balance = 600
    directory.after_debit(acme)
    acme.balance = 400
    directory.after_debit(acme)
    acme.balance = 300
    directory.after_debit(acme)
    assert directory.low_balance_alerts == 1
    directory.credited(acme, 300)  # back to 600: armed again
    acme.balance = 100
    directory.after_debit(acme)
    assert directory.low_balance_alerts == 2
    assert _counted(directory, "smppgw_low_balance_alerts_total") == 2
    assert [r.getMessage() for r in caplog.records if "low balance" in r.getMessage()] == [
        "low balance: account acme has 4.00 credits, below its alert threshold 5.00",
        "low balance: account acme has 1.00 credits, below its alert threshold 5.00",
    ]


class _LedgerGone:
    """A ledger whose store has gone away: every top-up fails."""

    async def auto_topup(self, account_id: int, now=None) -> int | None:
        raise ConnectionResetError("the store is gone")


async def test_after_debit_never_raises(
    store_db: StoreDB, directory: AccountDirectory, tmp_path
) -> None:
    broken = _directory(store_db, tmp_path, ledger=_LedgerGone())
    await broken.load()
    acme = broken.get("acme")
    acme.auto_topup_threshold, acme.auto_topup_amount = 10**6, 100
    broken.after_debit(acme)  # the top-up task fails, quietly
    await broken.drain()
    assert not acme.topup_running
    assert _counted(broken, "smppgw_auto_topups_total", outcome="failed") == 1


async def test_stop_reply_lists_the_number_at_once_and_audits_it(
    store_db: StoreDB, directory: AccountDirectory
) -> None:
    acme = directory.get("acme")
    assert await directory.stop_list_add(acme, "33612345678") is True
    assert acme.is_stop_listed("33612345678")
    assert await directory.stop_list_add(acme, "33612345678") is False
    stops = await StopListStore(store_db.engine).list("acme")
    assert [e["destination"] for e in stops] == ["33612345678"]
    [entry] = await AuditStore(store_db.engine).newest()
    assert (entry["actor"], entry["action"], entry["target"]) == ("gateway", "stop.add", "acme")
