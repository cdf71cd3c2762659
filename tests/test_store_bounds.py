"""The store's repositories on SQLite and PostgreSQL keep money within MAX_AMOUNT, texts
within their columns and ids within BIGINT: a clear ValueError (or BalanceLimitExceeded)
and nothing written, never a float balance or a driver error."""

from __future__ import annotations

import asyncio

import pytest
import store_fixtures
from store_fixtures import StoreDB

from store.accounts import AccountStore
from store.audit import AuditStore
from store.errors import BalanceLimitExceeded
from store.history import HistoryFilter, HistoryStore
from store.ledger import LedgerStore
from store.money import MAX_AMOUNT
from store.rates import RateStore
from store.senders import SenderStore
from store.stop_list import StopListStore

store_db = store_fixtures.store_db
books_balance = store_fixtures.books_balance
pytestmark = pytest.mark.usefixtures("books_balance")

BIGINT_PAST = 2**63


@pytest.fixture
def accounts(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


@pytest.fixture
def ledger(store_db: StoreDB) -> LedgerStore:
    return LedgerStore(store_db.engine)


async def _rows(ledger: LedgerStore, account: dict) -> list[dict]:
    return await ledger.entries(account["id"], 1000)


async def test_credits_stop_at_the_balance_limit(
    accounts: AccountStore, ledger: LedgerStore
) -> None:
    account = await accounts.create("acme", "h", credits=MAX_AMOUNT - 100)
    assert await ledger.add_credits("acme", 100) == MAX_AMOUNT
    with pytest.raises(BalanceLimitExceeded, match="would pass the limit of 10000000000000.00"):
        await ledger.add_credits("acme", 1)
    assert await ledger.balance("acme") == MAX_AMOUNT
    assert len(await _rows(ledger, account)) == 2


@pytest.mark.parametrize("amount", [MAX_AMOUNT + 1, 5 * 10**18, 10**30])
async def test_an_amount_past_the_limit_is_refused_before_anything_is_read(
    accounts: AccountStore, ledger: LedgerStore, amount: int
) -> None:
    await accounts.create("acme", "h")
    with pytest.raises(ValueError, match="between 0.01 and 10000000000000.00 credits"):
        await ledger.add_credits("acme", amount)
    assert await ledger.balance("acme") == 0


async def test_two_credits_racing_for_the_last_room_cannot_both_pass(
    store_db: StoreDB, accounts: AccountStore
) -> None:
    await accounts.create("acme", "h", credits=MAX_AMOUNT - 100)
    other = store_db.other_engine()
    try:
        results = await asyncio.gather(
            LedgerStore(store_db.engine).add_credits("acme", 60),
            LedgerStore(other).add_credits("acme", 60),
            return_exceptions=True,
        )
    finally:
        await other.dispose()
    assert sorted(type(r).__name__ for r in results) == ["BalanceLimitExceeded", "int"]
    assert await LedgerStore(store_db.engine).balance("acme") == MAX_AMOUNT - 40


async def test_a_transfer_into_a_full_account_writes_nothing(
    accounts: AccountStore, ledger: LedgerStore
) -> None:
    src = await accounts.create("src", "h", credits=1000)
    dst = await accounts.create("dst", "h", credits=MAX_AMOUNT - 10)
    with pytest.raises(BalanceLimitExceeded, match="'dst' cannot take 1.00 more credits"):
        await ledger.transfer("src", "dst", 100)
    assert (await ledger.balance("src"), await ledger.balance("dst")) == (1000, MAX_AMOUNT - 10)
    assert len(await _rows(ledger, src)) == 1
    assert len(await _rows(ledger, dst)) == 1
    assert await ledger.transfer("src", "dst", 10) == (990, MAX_AMOUNT)


async def test_auto_topup_never_passes_the_limit(
    accounts: AccountStore, ledger: LedgerStore
) -> None:
    account = await accounts.create("acme", "h", credits=MAX_AMOUNT - 50)
    await accounts.update_settings(
        "acme", {"auto_topup_threshold": MAX_AMOUNT, "auto_topup_amount": 100})
    assert await ledger.auto_topup(account["id"]) is None
    assert await ledger.balance("acme") == MAX_AMOUNT - 50


@pytest.mark.parametrize(
    "setting",
    ["auto_topup_threshold", "auto_topup_amount", "auto_topup_monthly_cap",
     "low_balance_threshold"],
)
async def test_money_settings_are_bounded(accounts: AccountStore, setting: str) -> None:
    await accounts.create("acme", "h")
    with pytest.raises(ValueError, match=f"{setting} must be between"):
        await accounts.update_settings("acme", {setting: MAX_AMOUNT + 1})
    assert (await accounts.get("acme"))[setting] is None


async def test_initial_credit_and_prices_are_bounded(
    store_db: StoreDB, accounts: AccountStore
) -> None:
    with pytest.raises(ValueError, match="initial credits must be between"):
        await accounts.create("acme", "h", credits=MAX_AMOUNT + 1)
    assert await accounts.get("acme") is None
    rates = RateStore(store_db.engine)
    with pytest.raises(ValueError, match="price must be between"):
        await rates.set_rate("33", MAX_AMOUNT + 1)
    assert await rates.set_rate("33", MAX_AMOUNT) is None


async def test_long_texts_are_refused_on_every_engine(
    store_db: StoreDB, accounts: AccountStore, ledger: LedgerStore
) -> None:
    account = await accounts.create("acme", "h")
    long = "x" * 10_000
    with pytest.raises(ValueError, match="note is 10000 characters long; at most 255"):
        await ledger.add_credits("acme", 1, note=long)
    senders = SenderStore(store_db.engine)
    with pytest.raises(ValueError, match="sender comment is 10000 characters long"):
        await senders.add("acme", "ACME", "alphanumeric", comment=long)
    await senders.add("acme", "ACME", "alphanumeric", comment="x" * 255)
    with pytest.raises(ValueError, match="sender comment is 256"):
        await senders.set_state("acme", "ACME", "enabled", "x" * 256)
    with pytest.raises(ValueError, match="sender address is 22"):
        await senders.get("acme", "9" * 22)
    stops = StopListStore(store_db.engine)
    with pytest.raises(ValueError, match="STOP note is 10000"):
        await stops.add("acme", "33612345678", long)
    with pytest.raises(ValueError, match="1 to 21 characters"):
        await stops.add("acme", "3" * 22)
    with pytest.raises(ValueError, match="contact_email is 10005 characters long"):
        await accounts.update_settings("acme", {"contact_email": long + "@a.fr"})
    with pytest.raises(ValueError, match="system_id must be 1 to 16"):
        await accounts.create("a" * 17, "h")
    assert await ledger.balance("acme") == 0
    assert await _rows(ledger, account) == []
    assert await stops.list("acme") == []
    assert (await senders.get("acme", "ACME"))["comment"] == "x" * 255


@pytest.mark.parametrize("text", ["a\x00b", "two\nlines", "\ud800"])
async def test_control_characters_and_broken_unicode_are_refused(
    accounts: AccountStore, ledger: LedgerStore, text: str
) -> None:
    # PostgreSQL cannot store NUL and neither engine can encode a lone surrogate.
    await accounts.create("acme", "h")
    with pytest.raises(ValueError, match="note must not contain control characters"):
        await ledger.add_credits("acme", 1, note=text)


async def test_ids_and_limits_beyond_the_engines_are_refused(
    store_db: StoreDB, accounts: AccountStore, ledger: LedgerStore
) -> None:
    account = await accounts.create("acme", "h")
    history = HistoryStore(store_db.engine)
    with pytest.raises(ValueError, match="message_id must be between 1 and"):
        HistoryFilter(message_id=BIGINT_PAST)
    with pytest.raises(ValueError, match="after_id must be between 0 and"):
        await history.query(HistoryFilter(), after_id=BIGINT_PAST)
    for limit in (0, -5, 100_001):
        with pytest.raises(ValueError, match="limit must be between 1 and 100000"):
            await history.query(HistoryFilter(), limit=limit)
    with pytest.raises(ValueError, match="message id must be between 1 and"):
        await history.delete(account["id"], [1, BIGINT_PAST])
    with pytest.raises(ValueError, match="at most 10000 message ids"):
        await history.delete(account["id"], range(1, 10_002))
    for limit in (0, -5, 10_001):
        with pytest.raises(ValueError, match="limit must be between 1 and 10000"):
            await ledger.entries(account["id"], limit)
    with pytest.raises(ValueError, match="limit must be between 1 and 100000"):
        await AuditStore(store_db.engine).newest(0)
    with pytest.raises(ValueError, match="message_id must be between"):
        await ledger.add_credits("acme", 1, kind="refund", message_id=BIGINT_PAST)
    assert await history.query(HistoryFilter(message_id=2**63 - 1)) == []
