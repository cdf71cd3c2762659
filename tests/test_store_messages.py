"""MessageStore: message history updates and the deliver_sm queue (DLR/MO retries)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
import store_fixtures
from store_fixtures import StoreDB, new_message

from store.accounts import AccountStore
from store.batcher import WriteBehindBatcher
from store.messages import MessageStore

store_db = store_fixtures.store_db

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
async def seeded(store_db: StoreDB) -> tuple[MessageStore, int]:
    """A MessageStore with three committed messages (ids 1..3) of one account."""
    account = await AccountStore(store_db.engine).create("acme", "h", credits=1000)
    batcher = WriteBehindBatcher(store_db.engine)
    await batcher.start()
    for i in (1, 2, 3):
        await batcher.submit(new_message(i, account["id"], created_at=T0 + timedelta(minutes=i)))
    await batcher.stop()
    return MessageStore(store_db.engine), account["id"]


async def test_get_returns_aware_utc_times_and_the_body(seeded: tuple[MessageStore, int]) -> None:
    store, account_id = seeded
    row = await store.get(1)
    assert row is not None
    assert row["account_id"] == account_id
    assert row["body"] == b"hello"
    assert row["created_at"] == T0 + timedelta(minutes=1)
    assert row["created_at"].tzinfo is UTC
    assert row["sent_at"] is None
    assert await store.get(999) is None


async def test_times_in_other_zones_are_stored_as_the_same_instant(
    seeded: tuple[MessageStore, int],
) -> None:
    store, _ = seeded
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    await store.mark_status([(1, "DELIVERED", None, plus_two)])
    row = await store.get(1)
    assert row is not None
    assert row["done_at"] == T0
    assert row["done_at"].tzinfo is UTC
    assert row["done_at"].hour == 12


async def test_naive_datetimes_are_refused(seeded: tuple[MessageStore, int]) -> None:
    store, _ = seeded
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        await store.mark_status([(1, "DELIVERED", None, datetime(2025, 1, 1))])


async def test_mark_status_updates_many_and_keeps_done_at(seeded: tuple[MessageStore, int]) -> None:
    store, account_id = seeded
    await store.mark_status([(1, "DELIVERED", None, T0), (2, "UNDELIVERABLE", 0x45, T0)])
    # A late intermediate report must not erase the final time.
    await store.mark_status([(1, "DELIVERED", None, None)])
    one, two = await store.get(1), await store.get(2)
    assert one is not None and two is not None
    assert (one["status"], one["error_code"], one["done_at"]) == ("DELIVERED", None, T0)
    assert (two["status"], two["error_code"]) == ("UNDELIVERABLE", 0x45)
    assert await store.count_by_status(account_id) == {
        "DELIVERED": 1, "UNDELIVERABLE": 1, "ACCEPTED": 1}
    with pytest.raises(ValueError, match="unknown message status"):
        await store.mark_status([(3, "LOST", None, None)])


async def test_set_upstream_moves_accepted_to_enroute(seeded: tuple[MessageStore, int]) -> None:
    store, _ = seeded
    assert [m["id"] for m in await store.pending_upstream(10)] == [1, 2, 3]
    assert await store.set_upstream(1, "sim", "up-1", T0)
    await store.mark_status([(2, "DELIVERED", None, T0)])
    # A DLR that raced ahead of the upstream's submit_sm_resp keeps its final state.
    assert await store.set_upstream(2, "sim", "up-2", T0)
    assert not await store.set_upstream(999, "sim", "x", T0)
    one, two = await store.get(1), await store.get(2)
    assert one is not None and two is not None
    assert (one["status"], one["upstream"], one["upstream_id"], one["sent_at"]) == (
        "ENROUTE", "sim", "up-1", T0)
    assert two["status"] == "DELIVERED"
    assert [m["id"] for m in await store.pending_upstream(10)] == [3]
    found = await store.by_upstream("sim", "up-1")
    assert found is not None and found["id"] == 1
    assert await store.by_upstream("other", "up-1") is None


async def test_query_filters_by_account_and_time(seeded: tuple[MessageStore, int]) -> None:
    store, account_id = seeded
    assert [m["id"] for m in await store.query(account_id)] == [1, 2, 3]
    assert [m["id"] for m in await store.query(account_id + 1)] == []
    window = await store.query(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=3))
    assert [m["id"] for m in window] == [2]
    assert [m["id"] for m in await store.query(limit=2)] == [1, 2]


async def test_deliveries_wait_until_due_then_are_delivered(
    seeded: tuple[MessageStore, int],
) -> None:
    store, account_id = seeded
    ids = await store.enqueue_deliveries([
        {"account_id": account_id, "message_id": 1, "kind": "dlr", "body": b"\x01dlr",
         "next_attempt_at": T0, "expires_at": T0 + timedelta(days=7)},
        {"account_id": account_id, "kind": "mo", "body": b"\x02mo",
         "next_attempt_at": T0 + timedelta(minutes=5), "expires_at": T0 + timedelta(days=7)},
    ])
    assert len(ids) == 2 and ids[0] < ids[1]
    due = await store.due_deliveries(account_id, T0, 10)
    assert [(d["id"], d["kind"], d["body"], d["attempts"]) for d in due] == [
        (ids[0], "dlr", b"\x01dlr", 0)]
    assert await store.due_deliveries(account_id + 1, T0, 10) == []
    assert await store.mark_delivered([ids[0]]) == 1
    assert await store.mark_delivered([ids[0]]) == 0
    later = T0 + timedelta(minutes=10)
    assert [d["id"] for d in await store.due_deliveries(account_id, later, 10)] == [ids[1]]


async def test_reschedule_counts_attempts_and_delays(seeded: tuple[MessageStore, int]) -> None:
    store, account_id = seeded
    (delivery_id,) = await store.enqueue_deliveries(
        [{"account_id": account_id, "kind": "mo", "body": b"x", "next_attempt_at": T0,
          "expires_at": T0 + timedelta(days=1)}]
    )
    assert await store.reschedule(delivery_id, T0 + timedelta(minutes=1))
    assert await store.due_deliveries(account_id, T0, 10) == []
    (row,) = await store.due_deliveries(account_id, T0 + timedelta(minutes=1), 10)
    assert (row["attempts"], row["next_attempt_at"]) == (1, T0 + timedelta(minutes=1))
    assert await store.reschedule_many([delivery_id, 12345], T0) == 1
    assert (await store.due_deliveries(account_id, T0, 10))[0]["attempts"] == 2


async def test_expired_deliveries_are_given_up(seeded: tuple[MessageStore, int]) -> None:
    store, account_id = seeded
    expiry = T0 + timedelta(days=7)
    ids = await store.enqueue_deliveries(
        [{"account_id": account_id, "kind": "dlr", "body": b"x", "next_attempt_at": T0,
          "expires_at": expiry},
         {"account_id": account_id, "kind": "dlr", "body": b"y", "next_attempt_at": T0,
          "expires_at": expiry + timedelta(days=1)}]
    )
    assert [d["id"] for d in await store.due_deliveries(account_id, expiry, 10)] == [ids[1]]
    assert await store.expire_deliveries(expiry) == 1
    assert await store.expire_deliveries(expiry) == 0
    assert await store.mark_delivered(ids) == 1  # only the one still pending


async def test_enqueue_defaults_to_now_and_a_week(seeded: tuple[MessageStore, int]) -> None:
    store, account_id = seeded
    before = datetime.now(UTC)
    await store.enqueue_deliveries([{"account_id": account_id, "kind": "mo", "body": b"x"}])
    (row,) = await store.due_deliveries(account_id, datetime.now(UTC), 10)
    assert before <= row["next_attempt_at"] <= datetime.now(UTC)
    assert row["expires_at"] - row["created_at"] == timedelta(days=7)
    with pytest.raises(ValueError, match="kind"):
        await store.enqueue_deliveries([{"account_id": account_id, "kind": "sms", "body": b""}])
    assert await store.enqueue_deliveries([]) == []


async def test_record_outcomes_updates_and_queues_together(
    seeded: tuple[MessageStore, int],
) -> None:
    store, account_id = seeded
    ids = await store.record_outcomes(
        [(1, "DELIVERED", None, T0), (2, "EXPIRED", None, T0)],
        [{"account_id": account_id, "message_id": 1, "kind": "dlr", "body": b"r1",
          "next_attempt_at": T0, "expires_at": T0 + timedelta(days=7)}],
    )
    assert len(ids) == 1
    assert await store.count_by_status(account_id) == {
        "DELIVERED": 1, "EXPIRED": 1, "ACCEPTED": 1}
    (row,) = await store.due_deliveries(account_id, T0, 10)
    assert (row["id"], row["message_id"]) == (ids[0], 1)
    # A receipt for an unknown account rolls the status updates back with it.
    with pytest.raises(sa.exc.IntegrityError, match="(?i)foreign key"):
        await store.record_outcomes(
            [(3, "DELIVERED", None, T0)],
            [{"account_id": 424242, "kind": "dlr", "body": b"r"}],
        )
    three = await store.get(3)
    assert three is not None and three["status"] == "ACCEPTED"
