"""The inbound-number repository (store/inbound) on SQLite and PostgreSQL: how entries
are written, which entry an MO's destination matches (exact, longest prefix, range),
no overlap between two accounts; and migration 0010 that brought prefixes and ranges."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
import store_fixtures
from store_fixtures import StoreDB, run_alembic

from store import tables
from store.inbound import (
    InboundEntry,
    InboundNumberNotFound,
    InboundNumbers,
    InboundNumberTaken,
    InvalidInboundNumber,
    parse_entry,
)

store_db = store_fixtures.store_db
blank_db = store_fixtures.blank_db

T0 = datetime(2026, 12, 11, 12, tzinfo=UTC)


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


# --- how entries are written -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entry"),
    [
        ("33612345678", InboundEntry("exact", "33612345678")),
        ("+33 6 12 34 56 78", InboundEntry("exact", "33612345678")),
        ("0033612345678", InboundEntry("exact", "33612345678")),
        ("36180", InboundEntry("exact", "36180")),
        ("33612*", InboundEntry("prefix", "33612")),
        ("+33 612 *", InboundEntry("prefix", "33612")),
        ("33612340000-33612349999", InboundEntry("range", "33612340000", "33612349999")),
        ("+33612340000 - +33612349999", InboundEntry("range", "33612340000", "33612349999")),
        ("5-5", InboundEntry("range", "5", "5")),
    ],
)
def test_entries_are_read_as_numbers_prefixes_and_ranges(text: str, entry: InboundEntry) -> None:
    assert parse_entry(text) == entry
    assert parse_entry(entry.text) == entry  # what list shows can be given back


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("33a612", "must be digits"),
        ("abc", "must be digits"),
        ("*", "must be digits"),
        ("33**", "must be digits"),
        ("٣٣٦", "must be digits"),  # digits, but not ASCII ones
        ("1" * 21, "1 to 20 digits"),
        ("1" * 21 + "*", "1 to 20 digits"),
        ("336-3361", "same number of digits"),
        ("33612349999-33612340000", "must not be above"),
        ("1-2-3", "one '-'"),
        ("-5", "must be digits"),
        ("33612*-33613*", "must be digits"),
    ],
)
def test_malformed_entries_are_refused_saying_why(text: str, complaint: str) -> None:
    with pytest.raises(InvalidInboundNumber, match=complaint):
        parse_entry(text)


# --- owners: the MO lookup ---------------------------------------------------------------


async def test_inbound_numbers_have_one_owner(store_db: StoreDB) -> None:
    first, second = await _account(store_db, "one"), await _account(store_db, "two")
    numbers = InboundNumbers(store_db.engine)
    assert await numbers.add(first, "+33 7 00 00 00 01") == InboundEntry("exact", "33700000001")
    with pytest.raises(InboundNumberTaken, match="'one'"):
        await numbers.add(second, "0033700000001")
    assert await numbers.owners(["33700000001", "33799999999"]) == {"33700000001": first}
    assert await numbers.list(first) == [("one", InboundEntry("exact", "33700000001"))]
    assert await numbers.remove(first, "33700000001") == InboundEntry("exact", "33700000001")
    assert await numbers.owners(["33700000001"]) == {}


async def test_owners_match_exact_then_longest_prefix_then_range(store_db: StoreDB) -> None:
    acme, beta, gamma, delta = [await _account(store_db, s)
                                for s in ("acme", "beta", "gamma", "delta")]
    numbers = InboundNumbers(store_db.engine)
    await numbers.add(acme, "33612*")
    await numbers.add(acme, "33612345678")  # nested in its own prefix: allowed
    await numbers.add(acme, "336123456*")
    await numbers.add(beta, "33700000000-33700000999")
    await numbers.add(gamma, "44*")
    await numbers.add(delta, "3370000100-3370000199")  # ten digits: another length
    await numbers.add(delta, "36180")
    owners = await numbers.owners([
        "33612345678", "+33612345679", "33612000000", "33612", "3361",
        "33700000000", "33700000999", "33700000500", "33700001000", "3370000050",
        "3370000150", "447700900123", "4", "36180", "361800", "", "abc",
    ])
    assert owners == {
        "33612345678": acme, "+33612345679": acme, "33612000000": acme, "33612": acme,
        "33700000000": beta, "33700000999": beta, "33700000500": beta,
        "3370000150": delta, "447700900123": gamma, "36180": delta,
    }


async def test_nested_own_entries_keep_the_number_when_the_wider_one_goes(
    store_db: StoreDB,
) -> None:
    acme = await _account(store_db)
    numbers = InboundNumbers(store_db.engine)
    await numbers.add(acme, "33612*")
    await numbers.add(acme, "33612340000-33612349999")
    await numbers.remove(acme, "33612*")
    assert await numbers.owners(["33612345678", "33612999999"]) == {"33612345678": acme}


# Pairs (another account's entry, ours) that overlap, and that do not. Each engine runs
# every pair in one database (a fresh pair of accounts each): a database per pair cost
# a minute of the suite.
OVERLAPPING = [
    ("33612345678", "33612345678"),
    ("33612345678", "33612*"),  # a prefix covering their number
    ("33612*", "33612345678"),  # a number under their prefix
    ("33612*", "3361*"),  # a prefix covering theirs
    ("3361*", "33612*"),  # a prefix under theirs
    ("33612*", "33612*"),
    ("33612340000-33612349999", "33612345678"),
    ("33612345678", "33612340000-33612349999"),
    ("33612340000-33612349999", "33612349999-33612350000"),  # one shared end
    ("33612340000-33612349999", "33612300000-33612399999"),  # covering
    ("33612340000-33612349999", "336123*"),  # a prefix covering the range
    ("33612340000-33612349999", "336123455*"),  # a prefix inside the range
    ("336123455*", "33612340000-33612349999"),
    ("336*", "33612340000-33612349999"),
    ("336123*", "33612290000-33612300000"),  # one end under the prefix
]
DISJOINT = [
    ("33612345678", "33612345679"),
    ("33612345678", "3361234567"),  # shorter: a different number
    ("33612345678", "336123456789*"),  # a prefix of longer numbers only
    ("33612*", "33613*"),
    ("33612*", "3361"),  # exact 3361 does not start with 33612
    ("33612340000-33612349999", "33612350000-33612359999"),
    ("33612340000-33612349999", "3361234000-3361234999"),  # other length
    ("33612340000-33612349999", "336123500*"),
    ("33612340000-33612349999", "336123399*"),
    ("33612340000-33612349999", "336123400000*"),  # longer than the range's numbers
    ("336123*", "33612400000-33612499999"),
]


async def test_an_entry_overlapping_another_accounts_is_refused_naming_it(
    store_db: StoreDB,
) -> None:
    numbers = InboundNumbers(store_db.engine)
    for i, (theirs, ours) in enumerate(OVERLAPPING):
        other = await _account(store_db, f"other{i}")
        acme = await _account(store_db, f"acme{i}")
        held = await numbers.add(other, theirs)
        with pytest.raises(InboundNumberTaken, match=re.escape(
                f"overlaps {held.text}, which account 'other{i}' holds")):
            await numbers.add(acme, ours)
        assert await numbers.list(acme) == [], (theirs, ours)
        await numbers.remove(other, theirs)


async def test_entries_that_do_not_overlap_go_to_different_accounts(
    store_db: StoreDB,
) -> None:
    numbers = InboundNumbers(store_db.engine)
    for i, (theirs, ours) in enumerate(DISJOINT):
        other = await _account(store_db, f"other{i}")
        acme = await _account(store_db, f"acme{i}")
        await numbers.add(other, theirs)
        entry = await numbers.add(acme, ours)
        assert await numbers.list() == sorted(
            [(f"other{i}", parse_entry(theirs)), (f"acme{i}", entry)],
            key=lambda r: (r[0], r[1].number)), (theirs, ours)
        await numbers.remove(other, theirs)
        await numbers.remove(acme, ours)


async def test_the_same_entry_twice_is_refused_and_remove_wants_the_exact_entry(
    store_db: StoreDB,
) -> None:
    acme = await _account(store_db)
    numbers = InboundNumbers(store_db.engine)
    await numbers.add(acme, "33612340000-33612349999")
    with pytest.raises(InboundNumberTaken, match="already holds"):
        await numbers.add(acme, "+33612340000-33612349999")
    with pytest.raises(InboundNumberNotFound):
        await numbers.remove(acme, "33612340000-33612349998")
    with pytest.raises(InboundNumberNotFound):
        await numbers.remove(acme, "33612340000")
    await numbers.remove(acme, "33612340000-33612349999")
    assert await numbers.list() == []


async def test_many_numbers_are_looked_up_in_chunks(store_db: StoreDB) -> None:
    acme = await _account(store_db)
    numbers = InboundNumbers(store_db.engine)
    await numbers.add(acme, "33612*")
    wanted = [f"336{i:08d}" for i in range(12_000_000, 12_001_200)]  # 1200: three chunks
    owners = await numbers.owners(wanted)
    assert owners == dict.fromkeys(wanted, acme)


# --- migration 0010 ----------------------------------------------------------------------


async def test_0010_keeps_numbers_as_exact_and_downgrades_only_without_ranges(
    blank_db: StoreDB,
) -> None:
    await run_alembic(blank_db, "upgrade", "0009")
    async with blank_db.engine.begin() as conn:
        await conn.execute(tables.accounts.insert().values(
            id=1, system_id="acme", password_hash="h", created_at=T0, updated_at=T0))
        await conn.exec_driver_sql(
            "INSERT INTO inbound_numbers (account_id, number, created_at)"
            " VALUES (1, '33700000001', '2026-12-11')")
    await run_alembic(blank_db, "upgrade", "0010")
    numbers = InboundNumbers(blank_db.engine)
    assert await numbers.list() == [("acme", InboundEntry("exact", "33700000001"))]
    assert await numbers.owners(["33700000001"]) == {"33700000001": 1}
    await numbers.add(1, "33612*")
    with pytest.raises(RuntimeError, match="1 inbound prefixes or ranges exist"):
        await run_alembic(blank_db, "downgrade", "0009")
    await numbers.remove(1, "33612*")
    await run_alembic(blank_db, "downgrade", "0009")
    async with blank_db.engine.connect() as conn:
        rows = (await conn.exec_driver_sql("SELECT account_id, number FROM inbound_numbers"))
        assert [tuple(r) for r in rows] == [(1, "33700000001")]
    # 0009's one owner per number is back.
    with pytest.raises(sa.exc.IntegrityError):
        async with blank_db.engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO inbound_numbers (account_id, number, created_at)"
                " VALUES (1, '33700000001', '2026-12-11')")


async def test_the_table_refuses_a_range_without_its_end_or_a_kind_it_does_not_know(
    store_db: StoreDB,
) -> None:
    acme = await _account(store_db)
    for values, check in [({"kind": "range", "number": "336"}, "range_end"),
                          ({"kind": "range", "number": "336", "range_end": "33"}, "range_end"),
                          ({"kind": "prefix", "number": "336", "range_end": "337"},
                           "range_end"),
                          ({"kind": "block", "number": "336"}, "kind")]:
        with pytest.raises(sa.exc.IntegrityError, match=check):
            async with store_db.engine.begin() as conn:
                await conn.execute(tables.inbound_numbers.insert().values(
                    account_id=acme, created_at=T0, **values))
