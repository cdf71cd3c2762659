"""RateStore on SQLite and PostgreSQL: global prices and per-account overrides."""

from __future__ import annotations

import pytest
import store_fixtures
from store_fixtures import StoreDB

from store.accounts import AccountStore
from store.errors import AccountNotFound, RateNotFound
from store.rates import RateStore

store_db = store_fixtures.store_db
books_balance = store_fixtures.books_balance
pytestmark = pytest.mark.usefixtures("books_balance")


@pytest.fixture
def accounts(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


async def test_rates_global_and_per_account(store_db: StoreDB, accounts: AccountStore) -> None:
    rates = RateStore(store_db.engine)
    await accounts.create("acme", "h")
    assert await rates.set_rate("33", 7) is None
    assert await rates.set_rate("33", 8) == 7
    await rates.set_rate("336", 9)
    await rates.set_rate("33", 5, "acme")
    assert [(r["prefix"], r["price"]) for r in await rates.list_rates()] == [("33", 8), ("336", 9)]
    assert [(r["prefix"], r["price"]) for r in await rates.list_rates("acme")] == [("33", 5)]
    loaded = {(r["account_id"] is None, r["prefix"]): r["price"] for r in await rates.load_all()}
    assert loaded == {(True, "33"): 8, (True, "336"): 9, (False, "33"): 5}
    assert await rates.remove_rate("336") == 9
    with pytest.raises(RateNotFound):
        await rates.remove_rate("336")
    with pytest.raises(ValueError, match="prefix"):
        await rates.set_rate("33a", 1)
    with pytest.raises(ValueError, match="price"):
        await rates.set_rate("33", -1)
    with pytest.raises(AccountNotFound):
        await rates.set_rate("33", 1, "nobody")
