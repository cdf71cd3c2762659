"""StoreWriter (store/writer.py) on SQLite and PostgreSQL: group commit, one debit per
account per commit, a failed commit fails its accepts and keeps its bookkeeping, and
what it writes reads back unchanged through SQLAlchemy."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
import store_fixtures
from store_fixtures import LEASE, MakeWriter, StoreDB, new_message

from store.accounts import AccountStore
from store.alerts import AlertStore
from store.engine import writer as writer_engine
from store.errors import AccountNotFound, InsufficientCredit, StoreError
from store.invariants import ledger_violations
from store.ledger import LedgerStore
from store.messages import MessageStore
from store.outbox import OutboxStore
from store.tables import deliveries, ledger, message_parts, messages
from store.writer import AlertRow, DeliveryRow, NewMessage, StoreWriter

store_db = store_fixtures.store_db
make_writer = store_fixtures.make_writer
T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
DUPLICATE_KEY = (sqlite3.IntegrityError, asyncpg.UniqueViolationError)


@pytest.fixture
def commits() -> list[tuple[float, int]]:
    return []


async def _accounts(db: StoreDB, **credits: int) -> dict[str, int]:
    store = AccountStore(db.engine)
    return {name: (await store.create(name, "h", credits=amount))["id"]
            for name, amount in credits.items()}


async def _rows(db: StoreDB, query: Any) -> list[dict[str, Any]]:
    async with db.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def _debits(db: StoreDB) -> list[dict[str, Any]]:
    return await _rows(db, sa.select(ledger).where(ledger.c.kind == "debit").order_by(ledger.c.id))


async def _message_ids(db: StoreDB) -> list[int]:
    return [r["id"] for r in await _rows(db, sa.select(messages.c.id).order_by(messages.c.id))]


async def _books_balance(db: StoreDB) -> None:
    assert await ledger_violations(db.engine) == []


def _delivery(delivery_id: int, account_id: int, message_id: int | None, kind: str = "dlr",
              at: datetime = T0) -> DeliveryRow:
    return DeliveryRow(delivery_id, account_id, message_id, kind, b"\x00deliver_sm\xff", at, at,
                       at + timedelta(days=7))


# --- group commit and the debit -------------------------------------------------------


async def test_a_lone_accept_is_committed_at_once(
    store_db: StoreDB, make_writer: MakeWriter, commits: list[tuple[float, int]]
) -> None:
    ids = await _accounts(store_db, acme=100)
    writer = await make_writer(on_commit=lambda s, n: commits.append((s, n)))
    assert await asyncio.wait_for(writer.accept(new_message(1, ids["acme"], cost=30)), 5) == []
    assert [n for _, n in commits] == [1]  # no waiting for a batch to fill
    assert await _message_ids(store_db) == [1]
    assert await LedgerStore(store_db.engine).balance("acme") == 70


async def test_accepts_queued_together_share_one_commit_and_one_debit_per_account(
    store_db: StoreDB, make_writer: MakeWriter, commits: list[tuple[float, int]]
) -> None:
    ids = await _accounts(store_db, a=10_000, b=10_000, c=10_000)
    writer = await make_writer(on_commit=lambda s, n: commits.append((s, n)))
    accounts = [ids["a"], ids["b"], ids["c"]]
    # The writer is kept busy meanwhile (its commit of a balance read waits for a lock
    # held here), so all 301 are waiting when it takes its next batch: its thread
    # would otherwise start on the first ones while the loop still queues the rest.
    async with writer_engine(store_db.engine).begin() as holder:
        await holder.execute(sa.select(sa.literal(1)).select_from(
            sa.table("accounts")).with_for_update())
        read = writer.balances([ids["a"]])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while writer.pending:  # taken by the thread, which now waits for the lock
            assert loop.time() < deadline, "the writer never took the balance read"
            await asyncio.sleep(0.005)
        futures = [writer.accept(new_message(i, accounts[i % 3], cost=1 + i % 3))
                   for i in range(1, 301)]
        free = writer.accept(new_message(301, ids["a"], cost=0))
        assert writer.pending == 301
        await asyncio.sleep(0.05)
        assert not read.done()  # the lock held it
    await asyncio.gather(read, *futures, free)
    assert [n for _, n in commits] == [0, 301]
    debits = sorted(await _debits(store_db), key=lambda d: d["account_id"])
    assert [(d["account_id"], d["amount"], d["message_count"], d["note"], d["message_id"])
            for d in debits] == [
        (ids["a"], -100, 100, "100 messages", None),  # 100 messages at 1 (and a free one)
        (ids["b"], -200, 100, "100 messages", None),  # at 2
        (ids["c"], -300, 100, "100 messages", None),  # at 3
    ]
    rows = await _rows(store_db, sa.select(messages.c.id, messages.c.account_id,
                                           messages.c.cost, messages.c.ledger_id))
    by_account = {d["account_id"]: d["id"] for d in debits}
    assert all(r["ledger_id"] == by_account[r["account_id"]] for r in rows if r["cost"])
    assert [r["ledger_id"] for r in rows if not r["cost"]] == [None]
    ledger_store = LedgerStore(store_db.engine)
    assert [await ledger_store.balance(n) for n in ("a", "b", "c")] == [9_900, 9_800, 9_700]
    await _books_balance(store_db)


async def test_then_is_told_on_the_loop_instead_of_a_future(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, rich=100, poor=5)
    writer = await make_writer()
    heard: list[tuple[str, object, object]] = []
    done = asyncio.Event()

    def then(name: str):
        def told(result: object, error: BaseException | None) -> None:
            heard.append((name, result, type(error).__name__ if error else None))
            if len(heard) == 4:
                done.set()
        return told

    def broken(result: object, error: BaseException | None) -> None:
        raise RuntimeError("a caller's bug")

    assert writer.accept(new_message(1, ids["rich"], cost=10), then=then("rich")) is None
    assert writer.accept(new_message(2, ids["poor"], cost=10), then=then("poor")) is None
    assert writer.accept(new_message(3, ids["rich"], cost=10), then=broken) is None
    assert writer.handed(1, "smsc", "u-1", T0, then=then("handed")) is None
    assert writer.outcome(1, "DELIVERED", 0, T0, then=then("outcome")) is None
    await asyncio.wait_for(done.wait(), 5)
    # Told in the order of the commit: accepts first, then the bookkeeping; the
    # callback that raised kept nobody else from hearing.
    assert heard == [("rich", [], None), ("poor", None, "InsufficientCredit"),
                     ("handed", None, None), ("outcome", None, None)]
    assert await _message_ids(store_db) == [1, 3]
    await _books_balance(store_db)


async def test_an_account_pays_for_what_fits_and_is_refused_the_rest(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    """In queue order, each message is paid from the balance left by the ones before it:
    the database pays for all it can, refuses only what it cannot, never oversells."""
    ids = await _accounts(store_db, rich=1000, poor=25)
    writer = await make_writer()
    results = await asyncio.gather(
        writer.accept(new_message(1, ids["rich"], cost=10)),
        writer.accept(new_message(2, ids["poor"], cost=10)),
        writer.accept(new_message(3, ids["rich"], cost=10)),
        writer.accept(new_message(4, ids["poor"], cost=10)),
        writer.accept(new_message(5, ids["poor"], cost=10)),  # 30 > 25
        writer.accept(new_message(6, 999_999, cost=10)),
        writer.accept(new_message(7, ids["poor"], cost=5)),  # fits in what is left
        return_exceptions=True,
    )
    assert [results[i] for i in (0, 1, 2, 3, 6)] == [[], [], [], [], []]
    assert isinstance(results[4], InsufficientCredit)
    assert isinstance(results[5], AccountNotFound)
    assert await _message_ids(store_db) == [1, 2, 3, 4, 7]
    assert sorted((d["account_id"], d["amount"]) for d in await _debits(store_db)) == sorted([
        (ids["rich"], -20), (ids["poor"], -25)])
    ledger_store = LedgerStore(store_db.engine)
    assert (await ledger_store.balance("rich"), await ledger_store.balance("poor")) == (980, 0)
    await _books_balance(store_db)


async def test_every_commit_tells_the_balances_it_left(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    """on_balances hears each commit's balances before its callers; `balances` reads
    them after what was queued before, including what changed behind the writer."""
    ids = await _accounts(store_db, a=100, b=50)
    told: list[dict[int, int]] = []
    order: list[str] = []
    writer = await make_writer()
    writer.on_balances = lambda balances: (told.append(dict(balances)), order.append("told"))

    def accepted(_: object, error: BaseException | None) -> None:
        order.append("accepted" if error is None else type(error).__name__)

    writer.accept(new_message(1, ids["a"], cost=30), then=accepted)
    await writer.flush()
    assert told[-1] == {ids["a"]: 70}
    assert order == ["told", "accepted"]
    # A top-up made elsewhere (the admin, another node) is seen by the next read.
    await LedgerStore(store_db.engine).add_credits("b", 25, kind="topup")
    assert await writer.balances([ids["a"], ids["b"], 999_999]) == {ids["a"]: 70, ids["b"]: 75}
    assert told[-1] == {ids["a"]: 70, ids["b"]: 75}
    await _books_balance(store_db)


async def test_waiting_messages_are_written_claimed_by_the_node(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, acme=100)
    writer = await make_writer(node="node-7")
    now = datetime.now(UTC)
    await asyncio.gather(
        writer.accept(new_message(1, ids["acme"], created_at=now)),
        writer.accept(new_message(2, ids["acme"], created_at=now,
                                  schedule_at=now + timedelta(hours=1))),
        writer.accept(new_message(3, ids["acme"], created_at=now, status="REJECTED", cost=0)),
    )
    rows = {r["id"]: r for r in await _rows(store_db, sa.select(messages))}
    assert (rows[1]["claimed_by"], rows[1]["next_attempt_at"]) == ("node-7", now + LEASE)
    assert (rows[2]["claimed_by"], rows[2]["next_attempt_at"]) == (None, now + timedelta(hours=1))
    assert (rows[3]["claimed_by"], rows[3]["next_attempt_at"]) == (None, None)
    # Nobody else takes the claimed one before its lease ends; then anybody may.
    outbox = OutboxStore(store_db.engine)
    assert await outbox.claim("node-8", now + timedelta(seconds=1), LEASE, 10) == []
    later = await outbox.claim("node-8", now + LEASE, LEASE, 10)
    assert [(r["id"], r["attempts"]) for r in later] == [(1, 0)]


async def test_a_free_message_needs_no_credit_and_no_ledger_row(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, broke=0)
    writer = await make_writer()
    assert await writer.accept(new_message(1, ids["broke"], cost=0)) == []
    [row] = await _rows(store_db, sa.select(messages))
    assert (row["id"], row["ledger_id"]) == (1, None)
    assert await _rows(store_db, sa.select(ledger)) == []
    await _books_balance(store_db)


async def test_accepts_queued_during_a_commit_go_into_the_next_ones(
    store_db: StoreDB, make_writer: MakeWriter, commits: list[tuple[float, int]]
) -> None:
    ids = await _accounts(store_db, acme=10_000)
    writer = await make_writer(max_batch=5, on_commit=lambda s, n: commits.append((s, n)))
    # Four waves of seven, each queued while the commits of the previous ones run.
    waves = []
    for wave in range(4):
        waves += [writer.accept(new_message(wave * 7 + i, ids["acme"], cost=1))
                  for i in range(1, 8)]
        await asyncio.sleep(0)
    await asyncio.gather(*waves)
    assert await _message_ids(store_db) == list(range(1, 29))
    sizes = [n for _, n in commits]
    assert sum(sizes) == 28 and max(sizes) <= 5
    assert await LedgerStore(store_db.engine).balance("acme") == 10_000 - 28
    await _books_balance(store_db)


# --- failures ---------------------------------------------------------------------------


async def test_a_failed_commit_fails_its_accepts_writes_nothing_and_keeps_its_bookkeeping(
    store_db: StoreDB, make_writer: MakeWriter, commits: list[tuple[float, int]]
) -> None:
    ids = await _accounts(store_db, a=100, b=100)
    writer = await make_writer(on_commit=lambda s, n: commits.append((s, n)))
    await writer.accept(new_message(1, ids["a"], cost=10))
    # One commit: a message whose id is already stored (the primary key is violated),
    # a good one of another account, and bookkeeping for message 1.
    duplicate = writer.accept(new_message(1, ids["a"], cost=10))
    good = writer.accept(new_message(2, ids["b"], cost=10))
    handed = writer.handed(1, "smsc-a", "up-1", T0)
    outcome = writer.outcome(1, "DELIVERED", 0, T0 + timedelta(seconds=1),
                             delivery=_delivery(77, ids["a"], 1))
    for failed in await asyncio.gather(duplicate, good, return_exceptions=True):
        assert isinstance(failed, DUPLICATE_KEY)
    assert await _message_ids(store_db) == [1]
    assert len(await _debits(store_db)) == 1
    ledger_store = LedgerStore(store_db.engine)
    assert (await ledger_store.balance("a"), await ledger_store.balance("b")) == (90, 100)
    # The bookkeeping was not lost: it lands in a later commit of its own.
    assert not handed.done() and writer.pending == 2
    await asyncio.wait_for(asyncio.gather(handed, outcome), 5)
    [row] = await _rows(store_db, sa.select(messages))
    assert (row["status"], row["upstream_id"], row["done_at"]) == (
        "DELIVERED", "up-1", T0 + timedelta(seconds=1))
    assert [r["id"] for r in await _rows(store_db, sa.select(deliveries))] == [77]
    assert len(commits) == 2  # the first accept, then the retried bookkeeping
    # The writer carries on.
    assert await writer.accept(new_message(3, ids["b"], cost=10)) == []
    await _books_balance(store_db)


async def test_bookkeeping_that_can_never_be_written_holds_nobody_back(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, acme=100)
    writer = await make_writer()
    await writer.accept(new_message(1, ids["acme"]))
    # A receipt for an account that does not exist breaks its foreign key, always.
    poison = writer.outcome(1, "DELIVERED", 0, T0, delivery=_delivery(5, 999_999, 1))
    handed = writer.handed(1, "smsc-a", "up-1", T0)
    accepted = writer.accept(new_message(2, ids["acme"]))
    with pytest.raises((sqlite3.IntegrityError, asyncpg.ForeignKeyViolationError)):
        await accepted
    # Tried again, halved until the poison is alone: the hand-over gets through.
    await asyncio.wait_for(handed, 5)
    assert await writer.accept(new_message(3, ids["acme"])) == []
    assert not poison.done() and writer.pending == 1
    await writer.stop()  # one more try, then the caller hears it failed
    assert poison.done() and poison.exception() is not None
    assert await _message_ids(store_db) == [1, 3]
    # The outcome never stood without its receipt: the status stayed the hand-over's.
    stored = await MessageStore(store_db.engine).get(1)
    assert stored is not None and stored["status"] == "ENROUTE"
    assert await _rows(store_db, sa.select(deliveries)) == []


async def test_stop_commits_everything_queued_and_then_refuses_work(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, acme=1000)
    writer = await make_writer(max_batch=7)
    futures = [writer.accept(new_message(i, ids["acme"], cost=1)) for i in range(1, 51)]
    await writer.stop()
    assert all(f.done() and f.result() == [] for f in futures)
    assert await _message_ids(store_db) == list(range(1, 51))
    assert len(await _debits(store_db)) == 8  # 50 operations, 7 per commit
    with pytest.raises(StoreError, match="not running"):
        writer.accept(new_message(99, ids["acme"]))
    await _books_balance(store_db)


async def test_nothing_is_accepted_before_start(store_db: StoreDB) -> None:
    writer = StoreWriter(store_db.url, node="n", claim_lease=LEASE,
                         connect_args=store_db.connect_args)
    with pytest.raises(StoreError, match="not running"):
        writer.accept(new_message(1, 1))
    await writer.stop()  # harmless


# --- replace_if_present ----------------------------------------------------------------


async def test_replace_present_withdraws_waiting_messages_and_the_refund_pays(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, acme=30)
    acme = ids["acme"]
    writer = await make_writer()
    now = datetime.now(UTC)
    later = now + timedelta(hours=1)
    waiting = new_message(1, acme, cost=10, created_at=now, schedule_at=later,
                          service_type="CMT", body=b"old")
    await writer.accept(waiting)  # scheduled: waits unclaimed
    await writer.accept(new_message(2, acme, cost=10, created_at=now,  # claimed: in flight
                                    service_type="CMT"))
    await writer.accept(new_message(3, acme, cost=5, created_at=now, dest_addr="33600000000",
                                    schedule_at=later, service_type="CMT"))
    assert await LedgerStore(store_db.engine).balance("acme") == 5
    # 12 > 5 left: only the refund of message 1 makes it affordable.
    new = new_message(4, acme, cost=12, created_at=now, service_type="CMT", body=b"new")
    replaced = await writer.accept(new, replace_present=True)
    assert replaced == [waiting]
    rows = {r["id"]: r for r in await _rows(store_db, sa.select(messages))}
    assert {i: rows[i]["status"] for i in rows} == {
        1: "DELETED", 2: "ACCEPTED", 3: "ACCEPTED", 4: "ACCEPTED"}
    assert rows[1]["done_at"] == now
    refunds = await _rows(store_db, sa.select(ledger).where(ledger.c.kind == "refund"))
    assert [(r["amount"], r["message_id"], r["note"]) for r in refunds] == [
        (10, 1, "replace_if_present")]
    assert await LedgerStore(store_db.engine).balance("acme") == 3
    await _books_balance(store_db)


async def test_replace_present_that_cannot_be_paid_changes_nothing(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, acme=10)
    writer = await make_writer()
    now = datetime.now(UTC)
    await writer.accept(new_message(1, ids["acme"], cost=10, created_at=now,
                                    schedule_at=now + timedelta(hours=1)))
    with pytest.raises(InsufficientCredit):
        await writer.accept(new_message(2, ids["acme"], cost=11, created_at=now),
                            replace_present=True)
    [row] = await _rows(store_db, sa.select(messages))
    assert row["status"] == "ACCEPTED"
    assert await LedgerStore(store_db.engine).balance("acme") == 0
    await _books_balance(store_db)


# --- bookkeeping ------------------------------------------------------------------------


async def test_a_receipt_committed_with_its_hand_over_ends_final(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, acme=100)
    writer = await make_writer()
    await writer.accept(new_message(1, ids["acme"], created_at=T0))
    # Queued outcome first: inside the commit hand-overs are written before outcomes.
    outcome = writer.outcome(1, "DELIVERED", 0, T0 + timedelta(seconds=2),
                             delivery=_delivery(10, ids["acme"], 1))
    handed = writer.handed(1, "smsc-a", "up-1", T0 + timedelta(seconds=1))
    await asyncio.gather(outcome, handed)
    [row] = await _rows(store_db, sa.select(messages))
    assert (row["status"], row["upstream"], row["upstream_id"], row["claimed_by"]) == (
        "DELIVERED", "smsc-a", "up-1", None)
    assert (row["sent_at"], row["done_at"]) == (T0 + timedelta(seconds=1),
                                                T0 + timedelta(seconds=2))
    # A later intermediate state keeps when it finished; a late hand-over keeps the state.
    await writer.outcome(1, "ENROUTE", 0, None)
    await writer.handed(1, "smsc-a", "up-1", T0 + timedelta(seconds=3))
    await writer.outcome(1, "DELIVERED", 0, None)
    [row] = await _rows(store_db, sa.select(messages))
    assert (row["status"], row["done_at"]) == ("DELIVERED", T0 + timedelta(seconds=2))


async def test_handed_records_parts_and_forgets_the_body(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, acme=100)
    writer = await make_writer()
    await writer.accept(new_message(1, ids["acme"], segments=3))
    await writer.accept(new_message(2, ids["acme"]))
    await asyncio.gather(
        writer.handed(1, "smsc-a", None, T0, parts=("p1", "p2", "p3"), forget_body=True),
        writer.handed(2, "smsc-a", "up-2", T0),
    )
    rows = {r["id"]: r for r in await _rows(store_db, sa.select(messages))}
    assert (rows[1]["status"], rows[1]["upstream_id"], rows[1]["body"]) == ("ENROUTE", None, None)
    assert (rows[2]["upstream_id"], rows[2]["body"]) == ("up-2", b"hello")
    parts = await _rows(store_db, sa.select(message_parts).order_by(message_parts.c.part_no))
    assert [(p["part_no"], p["parts"], p["upstream"], p["upstream_id"]) for p in parts] == [
        (1, 3, "smsc-a", "p1"), (2, 3, "smsc-a", "p2"), (3, 3, "smsc-a", "p3")]
    taken = await OutboxStore(store_db.engine).taken_parts([1])
    assert taken == {1: ("smsc-a", {1: "p1", 2: "p2", 3: "p3"})}


async def test_retry_releases_the_claim_counts_and_records_parts(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, acme=100)
    writer = await make_writer()
    now = datetime.now(UTC)
    await writer.accept(new_message(1, ids["acme"], created_at=now, segments=2))
    await writer.accept(new_message(2, ids["acme"], created_at=now))
    await asyncio.gather(
        writer.retry(1, now + timedelta(seconds=30), "ESME_RTHROTTLED", counts=True,
                     upstream="smsc-a", parts=("p1", "")),
        writer.retry(2, now + timedelta(seconds=5), "no_connector_up", counts=False),
    )
    rows = {r["id"]: r for r in await _rows(store_db, sa.select(messages))}
    assert [(rows[i]["attempts"], rows[i]["claimed_by"], rows[i]["last_error"])
            for i in (1, 2)] == [(1, None, "ESME_RTHROTTLED"), (0, None, "no_connector_up")]
    assert await OutboxStore(store_db.engine).taken_parts([1]) == {1: ("smsc-a", {1: "p1"})}
    outbox = OutboxStore(store_db.engine)
    due = await outbox.claim("node-2", now + timedelta(seconds=31), LEASE, 10)
    assert [(r["id"], r["attempts"]) for r in due] == [(2, 0), (1, 1)]  # most overdue first


async def test_an_mo_and_its_delivery_then_acknowledgements(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, acme=0)
    writer = await make_writer()
    mo = new_message(50, ids["acme"], direction="MO", status="DELIVERED", cost=0,
                     registered_delivery=0, created_at=T0)
    await writer.inbound(mo, _delivery(900, ids["acme"], 50, kind="mo"), upstream="smsc-a")
    await writer.inbound(mo, _delivery(900, ids["acme"], 50, kind="mo"), upstream="smsc-a")
    [row] = await _rows(store_db, sa.select(messages))
    assert (row["direction"], row["upstream"], row["done_at"], row["claimed_by"]) == (
        "MO", "smsc-a", T0, None)
    store = MessageStore(store_db.engine)
    [due] = await store.due_deliveries(ids["acme"], T0)
    assert (due["id"], due["kind"], due["state"], due["attempts"]) == (900, "mo", "pending", 0)
    writer.reschedule(900, T0 + timedelta(minutes=1))
    await writer.outcome(50, "DELIVERED", 0, None)  # a turn to wait for
    assert await store.due_deliveries(ids["acme"], T0) == []
    writer.delivered(900)
    await writer.outcome(50, "DELIVERED", 0, None)
    writer.reschedule(900, T0 + timedelta(minutes=5))  # too late: already delivered
    await writer.outcome(50, "DELIVERED", 0, None)
    [row] = await _rows(store_db, sa.select(deliveries))
    assert (row["state"], row["attempts"], row["next_attempt_at"]) == (
        "delivered", 1, T0 + timedelta(minutes=1))


async def test_flush_returns_after_the_commit_of_everything_queued_before_it(
    store_db: StoreDB, make_writer: MakeWriter, commits: list[tuple[float, int]]
) -> None:
    ids = await _accounts(store_db, acme=100)
    writer = await make_writer(on_commit=lambda s, n: commits.append((s, n)))
    accepted = [writer.accept(new_message(i, ids["acme"], cost=1)) for i in (1, 2, 3)]
    await writer.flush()
    assert all(f.done() for f in accepted)
    assert await _message_ids(store_db) == [1, 2, 3]
    await writer.flush()  # nothing queued: one empty commit, no error
    assert [n for _, n in commits] == [3, 0]


# --- what is written reads back unchanged -------------------------------------------


async def test_values_read_back_equal_through_sqlalchemy(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    ids = await _accounts(store_db, acme=1000)
    writer = await make_writer()
    paris = timezone(timedelta(hours=1))
    msg = new_message(
        2**62 + 12345, ids["acme"], cost=7, created_at=datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC),
        schedule_at=datetime(2027, 1, 2, 3, 4, 5, 6, tzinfo=paris),
        expires_at=datetime(2027, 1, 9, 0, 0, 0, 999_999, tzinfo=UTC),
        body=bytes(range(256)), tlvs=b"\x02\x0b\x00\x02\x00\x00", service_type="CMT",
        protocol_id=64, priority_flag=3, group_id=2**62, esm_class=0x40, data_coding=8,
        source_ton=1, source_npi=1,
    )
    await writer.accept(msg)
    stored = await MessageStore(store_db.engine).get(msg.id)
    assert stored is not None
    assert NewMessage.from_row(stored) == msg
    assert stored["schedule_at"] == msg.schedule_at and stored["schedule_at"].tzinfo == UTC
    assert stored["next_attempt_at"] == msg.schedule_at  # scheduled: waits unclaimed
    assert (stored["attempts"], stored["ledger_id"] is not None) == (0, True)
    alert = AlertRow(ids["acme"], "33612345678", 1, 1, "ACME", 5, 0, T0, T0 + timedelta(days=2))
    delivery = _delivery(2**62 + 1, ids["acme"], msg.id, at=datetime(2026, 12, 1, tzinfo=UTC))
    await writer.outcome(msg.id, "UNDELIVERABLE", 1, T0, delivery=delivery, alert=alert)
    [row] = await MessageStore(store_db.engine).due_deliveries(ids["acme"], T0)
    assert {k: row[k] for k in ("id", "account_id", "message_id", "kind", "body", "created_at",
                                "next_attempt_at", "expires_at")} == {
        "id": delivery.id, "account_id": delivery.account_id, "message_id": msg.id,
        "kind": "dlr", "body": delivery.body, "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at, "expires_at": delivery.expires_at}
    [request] = await AlertStore(store_db.engine).pending(ids["acme"])
    assert {k: request[k] for k in ("ms_addr", "esme_addr", "created_at", "expires_at",
                                    "alerted_at")} == {
        "ms_addr": "33612345678", "esme_addr": "ACME", "created_at": T0,
        "expires_at": T0 + timedelta(days=2), "alerted_at": None}
    # Timestamps the writer wrote compare with SQLAlchemy's bound ones (SQLite: as text).
    assert await MessageStore(store_db.engine).query(since=msg.created_at) != []
    assert await MessageStore(store_db.engine).query(
        since=msg.created_at + timedelta(microseconds=1)) == []
    # A naive time is refused at the call: in a commit it would fail everybody's accepts.
    with pytest.raises(ValueError, match="naive"):
        writer.retry(msg.id, datetime(2026, 1, 1), "x", counts=True)
    assert writer.pending == 0


# --- money under concurrency ------------------------------------------------------------


async def test_ledger_equals_balances_after_concurrent_writers_transfers_and_refunds(
    store_db: StoreDB, make_writer: MakeWriter
) -> None:
    # Two writers on one store: two nodes on PostgreSQL, two connections on one file.
    ids = await _accounts(store_db, a=500, b=500)
    nodes = [await make_writer(node="node-1", max_batch=16),
             await make_writer(node="node-2", max_batch=16)]
    ledger_store = LedgerStore(store_db.engine)
    outbox = OutboxStore(store_db.engine)
    later = datetime.now(UTC) + timedelta(hours=1)

    async def traffic() -> list[Any]:
        return await asyncio.gather(*(
            nodes[i % 2].accept(new_message(i, (ids["a"], ids["b"])[i // 2 % 2], cost=7,
                                            schedule_at=later if i % 5 == 0 else None))
            for i in range(1, 161)
        ), return_exceptions=True)

    scheduled_b = [i for i in range(1, 161) if i % 5 == 0 and i // 2 % 2 == 1]

    async def operator() -> None:
        for _ in range(5):
            for src, dst, amount in (("a", "b", 30), ("b", "a", 20)):
                try:
                    await ledger_store.transfer(src, dst, amount)
                except InsufficientCredit:
                    pass  # the traffic got there first
            await ledger_store.add_credits("a", 15, kind="refund", note="goodwill")
            await outbox.cancel(ids["b"], datetime.now(UTC), message_id=scheduled_b.pop())
            await asyncio.sleep(0.005)

    results, _ = await asyncio.gather(traffic(), operator())
    assert all(r == [] or isinstance(r, InsufficientCredit) for r in results)
    accepted = [i + 1 for i, r in enumerate(results) if r == []]
    assert accepted and len(accepted) < 160  # some were refused: never oversold
    assert await _message_ids(store_db) == accepted
    for name in ("a", "b"):
        balance = await ledger_store.balance(name)
        assert balance >= 0
        assert await ledger_store.total(ids[name]) == balance
    await _books_balance(store_db)
