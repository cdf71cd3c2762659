"""AccountStore: accounts, allowed networks, credits, transfers, ledger and audit log."""

from __future__ import annotations

import asyncio
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
    InsufficientCredit,
)

store_db = store_fixtures.store_db


@pytest.fixture
def store(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


async def test_create_then_get_returns_the_account(store: AccountStore) -> None:
    created = await store.create(
        "acme", "$argon2id$x", credits=90_000, allowed_ips=["127.0.0.1", "10.0.0.0/8"],
        contact_email="ops@acme.test",
    )
    fetched = await store.get("acme")
    assert fetched == created
    assert fetched is not None
    assert fetched["system_id"] == "acme"
    assert fetched["password_hash"] == "$argon2id$x"
    assert fetched["status"] == "active"
    assert fetched["balance"] == 90_000
    assert fetched["contact_email"] == "ops@acme.test"
    assert fetched["allowed_ips"] == ["10.0.0.0/8", "127.0.0.1/32"]
    assert fetched["created_at"].tzinfo is UTC


async def test_get_unknown_account_is_none(store: AccountStore) -> None:
    assert await store.get("nobody") is None


async def test_duplicate_system_id_is_refused(store: AccountStore) -> None:
    await store.create("acme", "h1", credits=100)
    with pytest.raises(DuplicateAccount, match="acme"):
        await store.create("acme", "h2", credits=500)
    account = await store.get("acme")
    assert account is not None
    assert (account["password_hash"], account["balance"]) == ("h1", 100)
    assert await store.ledger_sum(account["id"]) == 100


@pytest.mark.parametrize("system_id", ["", "x" * 17])
async def test_create_refuses_system_id_that_does_not_fit(
    store: AccountStore, system_id: str
) -> None:
    with pytest.raises(ValueError, match="system_id"):
        await store.create(system_id, "h")


async def test_initial_credit_is_a_topup_ledger_row(store: AccountStore) -> None:
    account = await store.create("acme", "h", credits=1234)
    entries = await store.ledger_entries(account["id"])
    assert [(e["kind"], e["amount"]) for e in entries] == [("topup", 1234)]
    empty = await store.create("zero", "h")
    assert await store.ledger_entries(empty["id"]) == []


async def test_load_all_returns_every_account_with_its_networks(store: AccountStore) -> None:
    await store.create("a", "h", allowed_ips=["::1"])
    await store.create("b", "h")
    await store.create("c", "h", allowed_ips=["192.0.2.0/24", "192.0.2.7"])
    loaded = {a["system_id"]: a["allowed_ips"] for a in await store.load_all()}
    assert loaded == {"a": ["::1/128"], "b": [], "c": ["192.0.2.0/24", "192.0.2.7/32"]}


async def test_password_and_status_changes(store: AccountStore) -> None:
    before = await store.create("acme", "old")
    await store.set_password_hash("acme", "new")
    await store.set_status("acme", "suspended")
    after = await store.get("acme")
    assert after is not None
    assert (after["password_hash"], after["status"]) == ("new", "suspended")
    assert after["updated_at"] >= before["updated_at"]
    with pytest.raises(ValueError, match="status"):
        await store.set_status("acme", "deleted")
    with pytest.raises(AccountNotFound):
        await store.set_password_hash("nobody", "x")
    with pytest.raises(AccountNotFound):
        await store.set_status("nobody", "active")


async def test_allowed_networks_are_canonical_and_checked(store: AccountStore) -> None:
    await store.create("acme", "h")
    assert await store.add_allowed_ip("acme", " 2001:DB8::/32 ") == "2001:db8::/32"
    with pytest.raises(DuplicateAllowedIp):
        await store.add_allowed_ip("acme", "2001:db8:0::/32")
    with pytest.raises(ValueError, match="not an IP"):
        await store.add_allowed_ip("acme", "10.0.0.1/24")
    with pytest.raises(AccountNotFound):
        await store.add_allowed_ip("nobody", "10.0.0.1")
    await store.remove_allowed_ip("acme", "2001:db8::/32")
    with pytest.raises(AllowedIpNotFound):
        await store.remove_allowed_ip("acme", "2001:db8::/32")
    with pytest.raises(AccountNotFound):
        await store.remove_allowed_ip("nobody", "10.0.0.1")
    account = await store.get("acme")
    assert account is not None
    assert account["allowed_ips"] == []


async def test_add_credits_returns_new_balance(store: AccountStore) -> None:
    account = await store.create("acme", "h", credits=100)
    assert await store.add_credits("acme", 250) == 350
    assert await store.add_credits("acme", 50, kind="refund", note="msg 7", message_id=7) == 400
    assert await store.balance("acme") == 400
    entries = await store.ledger_entries(account["id"])
    assert (entries[0]["kind"], entries[0]["message_id"], entries[0]["note"]) == (
        "refund", 7, "msg 7")


@pytest.mark.parametrize("amount", [0, -5])
async def test_add_credits_refuses_non_positive_amounts(store: AccountStore, amount: int) -> None:
    await store.create("acme", "h")
    with pytest.raises(ValueError, match="positive"):
        await store.add_credits("acme", amount)


async def test_add_credits_refuses_unknown_kind_and_account(store: AccountStore) -> None:
    await store.create("acme", "h")
    with pytest.raises(ValueError, match="kind"):
        await store.add_credits("acme", 1, kind="debit")
    with pytest.raises(AccountNotFound):
        await store.add_credits("nobody", 1)
    with pytest.raises(AccountNotFound):
        await store.balance("nobody")


async def test_transfer_moves_credit_and_writes_both_ledger_rows(store: AccountStore) -> None:
    a = await store.create("a", "h", credits=1000)
    b = await store.create("b", "h", credits=10)
    assert await store.transfer("a", "b", 300) == (700, 310)
    newest_a = (await store.ledger_entries(a["id"]))[0]
    newest_b = (await store.ledger_entries(b["id"]))[0]
    assert (newest_a["kind"], newest_a["amount"], newest_a["note"]) == ("transfer_out", -300, "to b")
    assert (newest_b["kind"], newest_b["amount"], newest_b["note"]) == ("transfer_in", 300, "from a")


async def test_transfer_refuses_overdraft_self_and_unknown(store: AccountStore) -> None:
    await store.create("a", "h", credits=100)
    await store.create("b", "h")
    with pytest.raises(InsufficientCredit):
        await store.transfer("a", "b", 101)
    with pytest.raises(ValueError, match="itself"):
        await store.transfer("a", "a", 1)
    with pytest.raises(AccountNotFound, match="nobody"):
        await store.transfer("a", "nobody", 1)
    with pytest.raises(AccountNotFound, match="nobody"):
        await store.transfer("nobody", "a", 1)
    with pytest.raises(ValueError):
        await store.transfer("a", "b", 0)
    assert (await store.balance("a"), await store.balance("b")) == (100, 0)


async def test_balance_equals_ledger_after_topups_and_transfers(store: AccountStore) -> None:
    a = await store.create("a", "h", credits=500)
    b = await store.create("b", "h")
    await store.add_credits("a", 120)
    await store.add_credits("b", 7, kind="auto_topup")
    await store.transfer("a", "b", 200)
    await store.transfer("b", "a", 50)
    for account in (a, b):
        assert await store.ledger_sum(account["id"]) == await store.balance(account["system_id"])
    assert await store.balance("a") + await store.balance("b") == 627


async def test_concurrent_transfers_never_overdraw(store: AccountStore) -> None:
    a = await store.create("a", "h", credits=1000)
    b = await store.create("b", "h", credits=300)

    async def attempt(src: str, dst: str) -> bool:
        try:
            await store.transfer(src, dst, 100)
        except InsufficientCredit:
            return False
        return True

    # 20 each way at once: some A->B must fail or succeed depending on interleaving, but
    # the total never changes and neither balance may go negative.
    results = await asyncio.gather(
        *(attempt("a", "b") for _ in range(20)), *(attempt("b", "a") for _ in range(20))
    )
    balance_a, balance_b = await store.balance("a"), await store.balance("b")
    assert balance_a >= 0 and balance_b >= 0
    assert balance_a + balance_b == 1300
    moved = sum(results[:20]) - sum(results[20:])
    assert balance_a == 1000 - 100 * moved
    assert await store.ledger_sum(a["id"]) == balance_a
    assert await store.ledger_sum(b["id"]) == balance_b


async def test_concurrent_drain_stops_exactly_at_zero(store: AccountStore) -> None:
    await store.create("a", "h", credits=1000)
    await store.create("b", "h")

    async def attempt() -> bool:
        try:
            await store.transfer("a", "b", 70)
        except InsufficientCredit:
            return False
        return True

    results = await asyncio.gather(*(attempt() for _ in range(20)))
    assert sum(results) == 14  # 14 * 70 = 980, a 15th would need 1050
    assert (await store.balance("a"), await store.balance("b")) == (20, 980)


async def test_audit_log_keeps_json_before_and_after(store: AccountStore) -> None:
    await store.audit("admin:root", "set_status", "acme", {"status": "active"},
                      {"status": "suspended"})
    await store.audit("admin:root", "create", "beta", None, {"credits": "9.00"})
    entries = await store.list_audit(10)
    assert [(e["action"], e["target"]) for e in entries] == [
        ("create", "beta"), ("set_status", "acme")]
    assert entries[1]["before"] == {"status": "active"}
    assert entries[1]["after"] == {"status": "suspended"}
    assert entries[0]["before"] is None
    assert entries[0]["at"].tzinfo is UTC
    assert len(await store.list_audit(1)) == 1
