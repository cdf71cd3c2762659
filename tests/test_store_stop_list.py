"""StopListStore on SQLite and PostgreSQL: adding is idempotent, removing checks, and an
account read carries its STOP list."""

from __future__ import annotations

import pytest
import store_fixtures
from store_fixtures import StoreDB

from store.accounts import AccountStore
from store.errors import StopEntryNotFound
from store.stop_list import StopListStore

store_db = store_fixtures.store_db
books_balance = store_fixtures.books_balance
pytestmark = pytest.mark.usefixtures("books_balance")


@pytest.fixture
def accounts(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


@pytest.fixture
def stop_list(store_db: StoreDB) -> StopListStore:
    return StopListStore(store_db.engine)


async def test_stop_list_add_is_idempotent_and_remove_checks(
    accounts: AccountStore, stop_list: StopListStore
) -> None:
    await accounts.create("acme", "h")
    assert await stop_list.add("acme", "33612345678", "replied STOP") is True
    assert await stop_list.add("acme", "33612345678") is False
    assert [e["destination"] for e in await stop_list.list("acme")] == ["33612345678"]
    assert (await accounts.get("acme"))["stop_list"] == ["33612345678"]
    await stop_list.remove("acme", "33612345678")
    with pytest.raises(StopEntryNotFound):
        await stop_list.remove("acme", "33612345678")
