"""AccountStore on SQLite and PostgreSQL: accounts, their settings and allowed networks,
and the senders and initial credit an account is created with."""

from __future__ import annotations

from datetime import UTC

import pytest
import store_fixtures
from store_fixtures import StoreDB

from store.accounts import AccountStore
from store.errors import (
    AccountNotFound,
    AllowedIpNotFound,
    DuplicateAccount,
    DuplicateAllowedIp,
    TooManyAllowedIps,
)
from store.ledger import LedgerStore

store_db = store_fixtures.store_db
books_balance = store_fixtures.books_balance
pytestmark = pytest.mark.usefixtures("books_balance")


@pytest.fixture
def accounts(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


async def test_create_then_get_returns_the_account(accounts: AccountStore) -> None:
    created = await accounts.create(
        "acme", "$argon2id$x", credits=90_000, allowed_ips=["127.0.0.1", "10.0.0.0/8"],
        contact_email="ops@acme.test",
    )
    fetched = await accounts.get("acme")
    assert fetched == created
    assert fetched is not None
    assert fetched["system_id"] == "acme"
    assert fetched["password_hash"] == "$argon2id$x"
    assert fetched["status"] == "active"
    assert fetched["balance"] == 90_000
    assert fetched["contact_email"] == "ops@acme.test"
    assert fetched["allowed_ips"] == ["10.0.0.0/8", "127.0.0.1/32"]
    assert fetched["created_at"].tzinfo is UTC


async def test_get_unknown_account_is_none(accounts: AccountStore) -> None:
    assert await accounts.get("nobody") is None


async def test_duplicate_system_id_is_refused(store_db: StoreDB, accounts: AccountStore) -> None:
    await accounts.create("acme", "h1", credits=100)
    with pytest.raises(DuplicateAccount, match="acme"):
        await accounts.create("acme", "h2", credits=500)
    account = await accounts.get("acme")
    assert account is not None
    assert (account["password_hash"], account["balance"]) == ("h1", 100)
    assert await LedgerStore(store_db.engine).total(account["id"]) == 100


@pytest.mark.parametrize("system_id", ["", "x" * 17])
async def test_create_refuses_system_id_that_does_not_fit(
    accounts: AccountStore, system_id: str
) -> None:
    with pytest.raises(ValueError, match="system_id"):
        await accounts.create(system_id, "h")


async def test_initial_credit_is_a_topup_ledger_row(
    store_db: StoreDB, accounts: AccountStore
) -> None:
    account = await accounts.create("acme", "h", credits=1234)
    entries = await LedgerStore(store_db.engine).entries(account["id"])
    assert [(e["kind"], e["amount"]) for e in entries] == [("topup", 1234)]
    empty = await accounts.create("zero", "h")
    assert await LedgerStore(store_db.engine).entries(empty["id"]) == []


async def test_load_all_returns_every_account_with_its_networks(accounts: AccountStore) -> None:
    await accounts.create("a", "h", allowed_ips=["::1"])
    await accounts.create("b", "h")
    await accounts.create("c", "h", allowed_ips=["192.0.2.0/24", "192.0.2.7"])
    loaded = {a["system_id"]: a["allowed_ips"] for a in await accounts.load_all()}
    assert loaded == {"a": ["::1/128"], "b": [], "c": ["192.0.2.0/24", "192.0.2.7/32"]}


async def test_password_and_status_changes(accounts: AccountStore) -> None:
    before = await accounts.create("acme", "old")
    await accounts.set_password_hash("acme", "new")
    await accounts.set_status("acme", "suspended")
    after = await accounts.get("acme")
    assert after is not None
    assert (after["password_hash"], after["status"]) == ("new", "suspended")
    assert after["updated_at"] >= before["updated_at"]
    with pytest.raises(ValueError, match="status"):
        await accounts.set_status("acme", "deleted")
    with pytest.raises(AccountNotFound):
        await accounts.set_password_hash("nobody", "x")
    with pytest.raises(AccountNotFound):
        await accounts.set_status("nobody", "active")


async def test_allowed_networks_are_canonical_and_checked(accounts: AccountStore) -> None:
    await accounts.create("acme", "h")
    assert await accounts.add_allowed_ip("acme", " 2001:DB8::/32 ") == "2001:db8::/32"
    with pytest.raises(DuplicateAllowedIp):
        await accounts.add_allowed_ip("acme", "2001:db8:0::/32")
    with pytest.raises(ValueError, match="not an IP"):
        await accounts.add_allowed_ip("acme", "10.0.0.1/24")
    with pytest.raises(AccountNotFound):
        await accounts.add_allowed_ip("nobody", "10.0.0.1")
    await accounts.remove_allowed_ip("acme", "2001:db8::/32")
    with pytest.raises(AllowedIpNotFound):
        await accounts.remove_allowed_ip("acme", "2001:db8::/32")
    with pytest.raises(AccountNotFound):
        await accounts.remove_allowed_ip("nobody", "10.0.0.1")
    account = await accounts.get("acme")
    assert account is not None
    assert account["allowed_ips"] == []


async def test_new_account_has_default_settings_and_given_senders(accounts: AccountStore) -> None:
    await accounts.create(
        "acme", "h", settings={"window_size": 5, "stop_mode": "refuse"},
        sender_list=[{"address": "ACME", "kind": "alphanumeric", "state": "enabled"}],
    )
    row = await accounts.get("acme")
    assert row is not None
    assert (row["window_size"], row["throughput"], row["bind_limit"]) == (5, 20.0, 1)
    assert (row["gsm_packed"], row["max_segments"], row["keep_bodies"]) == (False, 8, True)
    assert (row["dlr_retention_days"], row["stop_mode"]) == (7, "refuse")
    assert [(s["address"], s["kind"], s["state"]) for s in row["senders"]] == [
        ("ACME", "alphanumeric", "enabled")
    ]
    assert row["auto_topup_threshold"] is None and row["low_balance_threshold"] is None


@pytest.mark.parametrize(
    "values, message",
    [
        ({"window_size": 0}, "window"),
        ({"throughput": -1.0}, "throughput"),
        ({"stop_mode": "drop"}, "stop_mode"),
        ({"gsm_packed": "yes"}, "gsm_packed"),
        ({"auto_topup_amount": 0}, "auto_topup_amount"),
        ({"colour": "red"}, "unknown account setting"),
        ({"contact_email": "not-an-address"}, "e-mail"),
    ],
)
async def test_bad_settings_are_refused_and_change_nothing(
    accounts: AccountStore, values: dict, message: str
) -> None:
    await accounts.create("acme", "h")
    with pytest.raises(ValueError, match=message):
        await accounts.update_settings("acme", values)
    row = await accounts.get("acme")
    assert row is not None and row["window_size"] == 10 and row["stop_mode"] == "dlr"


async def test_settings_update_unknown_account(accounts: AccountStore) -> None:
    with pytest.raises(AccountNotFound):
        await accounts.update_settings("nobody", {"window_size": 3})


async def test_allowed_ip_cap_is_enforced(accounts: AccountStore) -> None:
    await accounts.create("acme", "h", allowed_ips=["10.0.0.1", "10.0.0.2"])
    with pytest.raises(TooManyAllowedIps, match="maximum of 2"):
        await accounts.add_allowed_ip("acme", "10.0.0.3", max_count=2)
    with pytest.raises(TooManyAllowedIps):
        await accounts.create("wide", "h", allowed_ips=["10.0.0.1", "10.0.0.2"], max_allowed_ips=1)
    await accounts.add_allowed_ip("acme", "10.0.0.3", max_count=3)
    assert len((await accounts.get("acme"))["allowed_ips"]) == 3
