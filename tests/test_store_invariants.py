"""The money invariant check (store.invariants) notices a ledger that does not add up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import store_fixtures
from store_fixtures import StoreDB

from store.accounts import AccountStore
from store.invariants import ledger_violations
from store.tables import ledger

store_db = store_fixtures.store_db


@pytest.fixture
def accounts(store_db: StoreDB) -> AccountStore:
    return AccountStore(store_db.engine)


async def test_invariant_check_notices_a_broken_ledger(
    store_db: StoreDB, accounts: AccountStore
) -> None:
    acme = await accounts.create("acme", "h", credits=100)
    async with store_db.engine.begin() as conn:
        await conn.execute(
            ledger.insert().values(account_id=acme["id"], kind="adjust", amount=5,
                                   created_at=datetime.now(UTC))
        )
    problems = await ledger_violations(store_db.engine)
    assert problems == ["acme: balance 100 != ledger sum 105"]
