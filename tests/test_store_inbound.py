"""The inbound-number repository (store/inbound) on SQLite and PostgreSQL: a number has
at most one owning account, whichever way it is written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import store_fixtures
from store_fixtures import StoreDB

from store import tables
from store.inbound import InboundNumbers, InboundNumberTaken

store_db = store_fixtures.store_db


async def _account(db: StoreDB, system_id: str = "acme") -> int:
    # Straight into the table: these tests are about numbers, not account rules.
    now = datetime.now(UTC)
    async with db.engine.begin() as conn:
        result = await conn.execute(
            tables.accounts.insert().values(
                system_id=system_id, password_hash="x", balance=10_000, created_at=now,
                updated_at=now,
            )
        )
    return int(result.inserted_primary_key[0])


async def test_inbound_numbers_have_one_owner(store_db: StoreDB) -> None:
    first, second = await _account(store_db, "one"), await _account(store_db, "two")
    numbers = InboundNumbers(store_db.engine)
    assert await numbers.add(first, "+33 7 00 00 00 01") == "33700000001"
    with pytest.raises(InboundNumberTaken):
        await numbers.add(second, "0033700000001")
    assert await numbers.owners(["33700000001", "33799999999"]) == {"33700000001": first}
    assert await numbers.list(first) == ["33700000001"]
    assert await numbers.remove(first, "33700000001")
    assert await numbers.owners(["33700000001"]) == {}
