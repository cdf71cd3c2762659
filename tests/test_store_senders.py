"""SenderStore on SQLite and PostgreSQL: a sender's life from pending to removed."""

from __future__ import annotations

import pytest
import store_fixtures
from store_fixtures import StoreDB

from store.accounts import AccountStore
from store.errors import DuplicateSender, SenderNotFound
from store.senders import SenderStore

store_db = store_fixtures.store_db
books_balance = store_fixtures.books_balance
pytestmark = pytest.mark.usefixtures("books_balance")


@pytest.fixture
def accounts(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


@pytest.fixture
def senders(store_db: StoreDB) -> SenderStore:
    return SenderStore(store_db.engine)


async def test_sender_lifecycle(accounts: AccountStore, senders: SenderStore) -> None:
    await accounts.create("acme", "h")
    added = await senders.add("acme", "ACME", "alphanumeric")
    assert added["state"] == "pending"
    with pytest.raises(DuplicateSender):
        await senders.add("acme", "ACME", "alphanumeric")
    enabled = await senders.set_state("acme", "ACME", "enabled", "documents checked")
    assert (enabled["state"], enabled["comment"]) == ("enabled", "documents checked")
    kept = await senders.set_state("acme", "ACME", "disabled")
    assert kept["comment"] == "documents checked"
    with pytest.raises(ValueError, match="state"):
        await senders.set_state("acme", "ACME", "approved")
    with pytest.raises(SenderNotFound):
        await senders.set_state("acme", "OTHER", "enabled")
    await senders.remove("acme", "ACME")
    assert await senders.list("acme") == []
    with pytest.raises(SenderNotFound):
        await senders.remove("acme", "ACME")
