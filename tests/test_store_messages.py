"""MessageStore: what it reads back of the history and of the deliver_sm queue (DLR/MO
retries) the store writer wrote, and the few writes it keeps (segments' receipts,
expiry of deliveries)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

import pytest
import sqlalchemy as sa
import store_fixtures
from store_fixtures import MakeWriter, StoreDB, new_message

from store.accounts import AccountStore
from store.messages import MessageStore
from store.tables import deliveries
from store.writer import DeliveryRow, StoreWriter

store_db = store_fixtures.store_db
make_writer = store_fixtures.make_writer

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
WEEK = timedelta(days=7)


class Seeded(NamedTuple):
    store: MessageStore
    writer: StoreWriter
    account_id: int


@pytest.fixture
async def seeded(store_db: StoreDB, make_writer: MakeWriter) -> Seeded:
    """Three messages (ids 1..3, a minute apart from T0) of one account, committed by
    the store writer, which stays running for the test."""
    account = await AccountStore(store_db.engine).create("acme", "h", credits=1000)
    writer = await make_writer()
    for i in (1, 2, 3):
        await writer.accept(new_message(i, account["id"], created_at=T0 + timedelta(minutes=i)))
    return Seeded(MessageStore(store_db.engine), writer, account["id"])


def _delivery(delivery_id: int, account_id: int, message_id: int | None, *,
              kind: str = "dlr", due: datetime = T0, expires: datetime = T0 + WEEK,
              body: bytes = b"\x00deliver_sm") -> DeliveryRow:
    return DeliveryRow(delivery_id, account_id, message_id, kind, body, T0, due, expires)


async def test_get_returns_aware_utc_times_and_the_body(seeded: Seeded) -> None:
    store, _, account_id = seeded
    row = await store.get(1)
    assert row is not None
    assert row["account_id"] == account_id
    assert row["body"] == b"hello"
    assert row["created_at"] == T0 + timedelta(minutes=1)
    assert row["created_at"].tzinfo is UTC
    assert row["sent_at"] is None
    assert await store.get(999) is None


async def test_times_in_other_zones_are_stored_as_the_same_instant(seeded: Seeded) -> None:
    store, writer, _ = seeded
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    await writer.outcome(1, "DELIVERED", 0, plus_two)
    row = await store.get(1)
    assert row is not None
    assert row["done_at"] == T0
    assert row["done_at"].tzinfo is UTC
    assert row["done_at"].hour == 12


async def test_naive_datetimes_are_refused(seeded: Seeded) -> None:
    store, _, account_id = seeded
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        await store.query(account_id, since=datetime(2025, 1, 1))


async def test_outcomes_read_back_through_get_many(seeded: Seeded) -> None:
    store, writer, _ = seeded
    await writer.outcome(1, "DELIVERED", 0, T0)
    await writer.outcome(2, "UNDELIVERABLE", 0x45, T0)
    found = await store.get_many([1, 2, 3, 999, 2])
    assert {i: (r["status"], r["error_code"], r["done_at"]) for i, r in found.items()} == {
        1: ("DELIVERED", 0, T0), 2: ("UNDELIVERABLE", 0x45, T0), 3: ("ACCEPTED", None, None)}
    assert await store.get_many([]) == {}
    with pytest.raises(ValueError, match="unknown message status"):
        writer.outcome(3, "LOST", 0, None)


async def test_receipts_find_their_message_by_upstream_id(seeded: Seeded) -> None:
    store, writer, _ = seeded
    await writer.handed(1, "sim", "up-1", T0)
    await writer.handed(2, "sim", "up-2", T0)
    found = await store.by_upstream("sim", "up-1")
    assert found is not None and (found["id"], found["status"]) == (1, "ENROUTE")
    assert await store.by_upstream("other", "up-1") is None
    many = await store.by_upstream_many("sim", ["up-1", "up-2", "up-9"])
    assert {k: r["id"] for k, r in many.items()} == {"up-1": 1, "up-2": 2}
    assert await store.by_upstream_many("sim", []) == {}
    # An upstream that reuses an id: the newest message wins.
    await writer.handed(3, "sim", "up-1", T0)
    found = await store.by_upstream("sim", "up-1")
    assert found is not None and found["id"] == 3
    assert (await store.by_upstream_many("sim", ["up-1"]))["up-1"]["id"] == 3


async def test_segments_receipts_find_their_part_and_add_up(seeded: Seeded) -> None:
    store, writer, _ = seeded
    await writer.handed(1, "sim", None, T0, parts=("p1", "p2"))
    assert await store.parts_by_upstream_many("sim", ["p1", "p2", "p9"]) == {
        "p1": (1, 1, 2), "p2": (1, 2, 2)}
    assert await store.parts_by_upstream_many("other", ["p1"]) == {}
    assert await store.record_part_states([(1, 2, 2, 2, 0, T0)]) == {
        1: [(1, None, None), (2, 2, 0)]}
    # A receipt may come before the hand-over recorded the part: the row is made.
    assert await store.record_part_states([(2, 1, 2, 5, 0x45, T0)]) == {2: [(1, 5, 0x45)]}
    assert await store.record_part_states([]) == {}


async def test_query_filters_by_account_and_time(seeded: Seeded) -> None:
    store, _, account_id = seeded
    assert [m["id"] for m in await store.query(account_id)] == [1, 2, 3]
    assert [m["id"] for m in await store.query(account_id + 1)] == []
    window = await store.query(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=3))
    assert [m["id"] for m in window] == [2]
    assert [m["id"] for m in await store.query(limit=2)] == [1, 2]


async def test_deliveries_wait_until_due_then_are_delivered(seeded: Seeded) -> None:
    store, writer, account_id = seeded
    await writer.outcome(1, "DELIVERED", 0, T0,
                         delivery=_delivery(10, account_id, 1, body=b"\x01dlr"))
    await writer.outcome(2, "DELIVERED", 0, T0, delivery=_delivery(
        11, account_id, 2, body=b"\x02dlr", due=T0 + timedelta(minutes=5)))
    due = await store.due_deliveries(account_id, T0, 10)
    assert [(d["id"], d["kind"], d["body"], d["attempts"]) for d in due] == [
        (10, "dlr", b"\x01dlr", 0)]
    assert await store.due_deliveries(account_id + 1, T0, 10) == []
    assert await store.accounts_waiting(T0) == {account_id}
    await writer.delivered(10)
    assert await store.due_deliveries(account_id, T0, 10) == []
    assert await store.accounts_waiting(T0) == set()
    later = T0 + timedelta(minutes=10)
    assert [d["id"] for d in await store.due_deliveries(account_id, later, 10)] == [11]
    assert await store.accounts_waiting(later) == {account_id}
    with pytest.raises(ValueError, match="kind"):
        writer.outcome(3, "DELIVERED", 0, T0, delivery=_delivery(12, account_id, 3, kind="sms"))


async def test_expired_deliveries_are_given_up(seeded: Seeded, store_db: StoreDB) -> None:
    store, writer, account_id = seeded
    expiry = T0 + WEEK
    await writer.outcome(1, "DELIVERED", 0, T0, delivery=_delivery(20, account_id, 1,
                                                                  expires=expiry))
    await writer.outcome(2, "DELIVERED", 0, T0, delivery=_delivery(
        21, account_id, 2, expires=expiry + timedelta(days=1)))
    assert [d["id"] for d in await store.due_deliveries(account_id, expiry, 10)] == [21]
    assert await store.accounts_waiting(expiry + timedelta(days=1)) == set()
    assert await store.expire_deliveries(expiry) == 1
    assert await store.expire_deliveries(expiry) == 0
    # An acknowledgement too late changes only the one still pending.
    await writer.delivered(20)
    await writer.delivered(21)
    async with store_db.engine.connect() as conn:
        states = dict((await conn.execute(sa.select(deliveries.c.id, deliveries.c.state))).all())
    assert states == {20: "expired", 21: "delivered"}
