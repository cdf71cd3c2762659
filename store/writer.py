"""The store writer: one per node, every write of the hot path, one transaction per turn.

Callers queue operations (accept a message and its debit, hand-overs, retries,
outcomes with their receipts, MOs, delivery acknowledgements) and get a future that
resolves when the operation is committed. The writer's own thread commits whatever is
queued when the previous commit ends (group commit): at light load a lone operation is
committed at once, under load many share one transaction. The writer speaks to the
driver itself: sqlite3, or an asyncpg connection on the thread's own event loop, with
prepared statements and `executemany` of plain tuples. SQLAlchemy and Alembic keep the schema
(store.tables); every value written here reads back through them unchanged.

What a commit does is decided once, in `_plan`, a generator that asks its driver for
the few answers it needs (balances, replaceable messages, ledger ids); each engine's
driver only turns requests into statements.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from store.engine import asyncpg_dsn, sqlite_file, sqlite_synchronous_mode, store_url
from store.errors import AccountNotFound, InsufficientCredit, StoreError
from store.tables import DELIVERY_KINDS, MESSAGE_STATUSES

log = logging.getLogger(__name__)

# After a failed commit its bookkeeping is tried again alone, this much later, doubling
# up to the maximum while it keeps failing.
RETRY_DELAY = 0.1
MAX_RETRY_DELAY = 5.0
# PostgreSQL: from this many new messages in one commit, COPY beats executemany
# (measured: about even at 10, 1.6x faster at 100, 1.6x at 1000).
COPY_MIN_ROWS = 10


@dataclass(slots=True)
class NewMessage:
    """A message row to insert; fields mirror the messages table, cost in minor units."""

    id: int
    account_id: int
    direction: str
    source_addr: str
    source_ton: int
    source_npi: int
    dest_addr: str
    dest_ton: int
    dest_npi: int
    esm_class: int
    registered_delivery: int
    data_coding: int
    body: bytes | None
    segments: int
    cost: int
    status: str
    created_at: datetime
    schedule_at: datetime | None = None
    expires_at: datetime | None = None
    # What the client set that goes upstream as it came (see store.tables.messages).
    service_type: str = ""
    protocol_id: int = 0
    priority_flag: int = 0
    tlvs: bytes | None = None
    # submit_multi: the message_id the client holds for all of its destinations.
    group_id: int | None = None

    @property
    def client_id(self) -> str:
        """The message_id the client was given for this row (and its receipts carry)."""
        return str(self.group_id or self.id)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> NewMessage:
        """The message as a messages-table row read back holds it."""
        return cls(**{name: row.get(name) for name in MESSAGE_FIELDS})


MESSAGE_FIELDS = tuple(f.name for f in fields(NewMessage))


def claimable(msg: NewMessage) -> bool:
    """A message the outbox may send at once: accepted, outgoing, not scheduled later."""
    return msg.status == "ACCEPTED" and msg.direction == "MT" and (
        msg.schedule_at is None or msg.schedule_at <= msg.created_at
    )


@dataclass(slots=True, frozen=True)
class DeliveryRow:
    """A deliver_sm (DLR or MO) waiting for the customer; the id is the caller's."""

    id: int
    account_id: int
    message_id: int | None
    kind: str  # 'dlr' | 'mo'
    body: bytes
    created_at: datetime
    next_attempt_at: datetime
    expires_at: datetime
    # Written held by this node (it has a receiver of the account bound), with
    # next_attempt_at as the end of the hold's lease; else any node may take it.
    claimed: bool = False


@dataclass(slots=True, frozen=True)
class AlertRow:
    """An absent subscriber to alert the account about (store.alerts)."""

    account_id: int
    ms_addr: str
    ms_ton: int
    ms_npi: int
    esme_addr: str
    esme_ton: int
    esme_npi: int
    created_at: datetime
    expires_at: datetime


# --- operations as queued: tuples, the cheapest thing to build per message -------------

(_ACCEPT, _HANDED, _RETRY, _OUTCOME, _INBOUND, _DELIVERED, _RESCHEDULE, _FLUSH,
 _BALANCES) = range(9)
# (_ACCEPT, msg, replace_present, future)
# (_HANDED, message_id, upstream, upstream_id, sent_at, parts, forget_body, future)
# (_RETRY, message_id, next_attempt_at, error, counts, upstream, parts, future)
# (_OUTCOME, message_id, status, error_code, done_at, delivery, alert, future)
# (_INBOUND, msg, delivery, upstream, future)
# (_DELIVERED, delivery_id, future)
# (_RESCHEDULE, delivery_id, next_attempt_at, future)
# (_FLUSH, future): writes nothing; resolves with the commit it rides in
# (_BALANCES, account_ids, future): writes nothing; the accounts' balances as committed
_Op = tuple[Any, ...]
# What a caller may give instead of taking a future: called (result, error) on the loop.
Then = Callable[[Any, "BaseException | None"], None]
_STATUSES = frozenset(MESSAGE_STATUSES)


class _Work:
    """The operations of one commit, by kind (the order they are written in)."""

    __slots__ = ("accepts", "balances", "delivered", "flushes", "handed", "inbound",
                 "outcomes", "reschedules", "retries")

    def __init__(self, ops: Sequence[_Op]) -> None:
        kinds: tuple[list[_Op], ...] = ([], [], [], [], [], [], [], [], [])
        for op in ops:
            kinds[op[0]].append(op)
        (self.accepts, self.handed, self.retries, self.outcomes, self.inbound,
         self.delivered, self.reschedules, self.flushes, self.balances) = kinds


@dataclass(slots=True)
class _RetryGroup:
    not_before: float  # loop time
    ops: list[_Op]
    delay: float


# By the index of an accept: why it was refused, and what a replacing accept withdrew;
# then every balance the commit read, as it stands once committed (account id -> minor
# units).
_Settled = tuple[dict[int, Exception], dict[int, list[NewMessage]], dict[int, int]]


class StoreWriter:
    """The node's one writer of the hot path; see the module docstring.

    `url` is a store URL as store.engine.make_engine takes it, and `connect_args` what
    was passed there (asyncpg: e.g. server_settings). Messages the outbox may send at
    once are written claimed by `node` until created_at + `claim_lease`.
    `on_commit(seconds, messages)` is told the duration of every commit and how many
    message rows (accepted MTs and MOs) it wrote. `on_balances(balances)` is told, on
    the event loop, the committed balance of every account a commit debited or read,
    before any caller of that commit hears of it; commits are told in the order they
    ran, so the last value told is the database's as of the last commit (other nodes'
    debits and top-ups included).

    Commits run on a thread of the writer's own, which takes the next batch the moment
    the previous commit ends: the commit rate never waits for a turn of the event loop
    that queued the work. The loop only queues operations and, when told a commit ended,
    resolves their futures. On PostgreSQL that thread runs the asyncpg connection on an
    event loop of its own.
    """

    def __init__(
        self,
        url: str,
        *,
        node: str,
        claim_lease: timedelta,
        sqlite_synchronous: str = "FULL",
        max_batch: int = 5000,
        on_commit: Callable[[float, int], None] | None = None,
        on_balances: Callable[[dict[int, int]], None] | None = None,
        connect_args: Mapping[str, Any] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        parsed = store_url(url)
        self._driver: _SqliteDriver | _PostgresDriver
        if parsed.drivername == "sqlite+aiosqlite":
            self._driver = _SqliteDriver(
                sqlite_file(parsed), sqlite_synchronous_mode(sqlite_synchronous), node,
                claim_lease,
            )
        else:
            self._driver = _PostgresDriver(asyncpg_dsn(parsed), dict(connect_args or {}), node, claim_lease)
        self._max_batch = max_batch
        self._on_commit = on_commit
        self.on_balances = on_balances
        # Shared with the writer's thread: deque appends and poplefts are atomic.
        self._queue: deque[_Op] = deque()
        self._wakeup = threading.Event()
        self._idle = False
        self._stopping = False
        # The writer thread's own.
        self._retries: list[_RetryGroup] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._exited: asyncio.Future[None] | None = None

    # --- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        if self._thread is not None:
            raise StoreError("the store writer is already started")
        loop = self._loop = asyncio.get_running_loop()
        opened: asyncio.Future[None] = loop.create_future()
        self._exited = loop.create_future()
        self._stopping = False
        self._thread = threading.Thread(target=self._main, args=(opened,),
                                        name="store-writer", daemon=True)
        self._thread.start()
        try:
            await opened
        except BaseException:
            await self._exited
            self._thread = None
            raise

    async def stop(self) -> None:
        """Commit everything queued (bookkeeping waiting for a retry gets one more
        try), then close the connection."""
        if self._thread is None:
            return
        self._stopping = True
        self._wakeup.set()
        assert self._exited is not None
        try:
            await asyncio.shield(self._exited)
        finally:
            self._thread = None

    @property
    def pending(self) -> int:
        """Operations waiting for the next commit (for metrics)."""
        return len(self._queue) + sum(len(g.ops) for g in list(self._retries))

    def __repr__(self) -> str:
        state = "running" if self._thread is not None else "stopped"
        return f"<StoreWriter {state} pending={self.pending}>"

    # --- what the gateway calls --------------------------------------------------------

    def accept(
        self, msg: NewMessage, *, replace_present: bool = False, then: Then | None = None
    ) -> asyncio.Future[list[NewMessage]] | None:
        """Write `msg` and debit its cost; the future resolves once both are committed.

        With `replace_present` (submit_sm's replace_if_present_flag) the account's
        messages still waiting with the same source_addr, dest_addr and service_type are
        withdrawn as DELETED and refunded first, in the same transaction; the future's
        result lists them. It fails with InsufficientCredit when the account's balance in
        the commit cannot pay for it after the account's messages queued before it,
        AccountNotFound, or the database error that rolled the whole commit back.

        Every method here returns such a future, or, given `then`, returns None and
        calls `then(result, error)` on the event loop instead (error None on success):
        the hot path's way, which spares a future and a loop turn per operation.
        """
        _check_aware(msg.created_at, msg.schedule_at, msg.expires_at)
        target = self._target(then)
        self._put((_ACCEPT, msg, replace_present, target))
        return None if then else target

    def handed(
        self, message_id: int, upstream: str, upstream_id: str | None, sent_at: datetime,
        *, parts: tuple[str, ...] = (), forget_body: bool = False, then: Then | None = None,
    ) -> asyncio.Future[None] | None:
        """An upstream took the message: ACCEPTED -> ENROUTE (a final status already
        written is kept), its id there (None for a message split in `parts`, each
        segment's id, "" for one not taken), the claim cleared; with `forget_body`
        the body goes (accounts that keep no bodies)."""
        _check_aware(sent_at)
        target = self._target(then)
        self._put((_HANDED, message_id, upstream, upstream_id, sent_at, parts, forget_body,
                   target))
        return None if then else target

    def retry(
        self, message_id: int, next_attempt_at: datetime, error: str, *, counts: bool,
        upstream: str | None = None, parts: tuple[str, ...] = (), then: Then | None = None,
    ) -> asyncio.Future[None] | None:
        """A temporary failure: release the claim, try again at `next_attempt_at`.
        `counts` False when no upstream was even tried. `parts`: segments `upstream`
        did take, so that they are never sent twice."""
        if any(parts) and upstream is None:
            raise ValueError("parts taken by an upstream need that upstream's name")
        _check_aware(next_attempt_at)
        target = self._target(then)
        self._put((_RETRY, message_id, next_attempt_at, error[:64], counts, upstream, parts,
                   target))
        return None if then else target

    def outcome(
        self, message_id: int, status: str, error_code: int, done_at: datetime | None, *,
        delivery: DeliveryRow | None = None, alert: AlertRow | None = None,
        then: Then | None = None,
    ) -> asyncio.Future[None] | None:
        """The message reached `status`; a None done_at keeps the stored one. Its
        receipt (`delivery`) and an alert request are committed with it."""
        if status not in _STATUSES:
            raise ValueError(f"unknown message status {status!r} for message {message_id}")
        _check_aware(done_at)
        if delivery is not None:
            _check_delivery(delivery)
        if alert is not None:
            _check_aware(alert.created_at, alert.expires_at)
        target = self._target(then)
        self._put((_OUTCOME, message_id, status, error_code, done_at, delivery, alert, target))
        return None if then else target

    def inbound(
        self, message: NewMessage, delivery: DeliveryRow, *, upstream: str | None = None
    ) -> asyncio.Future[None]:
        """An MO: its history row (done when created) and its delivery, together.
        `upstream`: the connector it came from."""
        _check_aware(message.created_at, message.schedule_at, message.expires_at)
        _check_delivery(delivery)
        future = self._future()
        self._put((_INBOUND, message, delivery, upstream, future))
        return future

    def delivered(
        self, delivery_id: int, *, then: Then | None = None
    ) -> asyncio.Future[None] | None:
        """The customer acknowledged the delivery; the future resolves once that is
        committed (until then a read of due deliveries may still list it)."""
        target = self._target(then)
        self._put((_DELIVERED, delivery_id, target))
        return None if then else target

    def reschedule(
        self, delivery_id: int, next_attempt_at: datetime, *, then: Then | None = None
    ) -> asyncio.Future[None] | None:
        """A failed delivery attempt: count it and try again at `next_attempt_at`."""
        _check_aware(next_attempt_at)
        target = self._target(then)
        self._put((_RESCHEDULE, delivery_id, next_attempt_at, target))
        return None if then else target

    def balances(
        self, account_ids: Sequence[int], *, then: Then | None = None
    ) -> asyncio.Future[dict[int, int]] | None:
        """Read the accounts' balances in the next commit, after every operation queued
        before: the result (account id -> minor units; an unknown account is left out)
        is what `on_balances` is told too. A node uses it to see what other nodes and
        the admin changed."""
        target = self._target(then)
        self._put((_BALANCES, tuple(account_ids), target))
        return None if then else target

    async def flush(self) -> None:
        """Return once the commit holding every operation queued before the call has
        run (bookkeeping whose commit failed waits for its retry apart, not for this)."""
        future = self._future()
        self._put((_FLUSH, future))
        await future

    def _future(self) -> asyncio.Future[Any]:
        if self._loop is None:
            raise StoreError("the store writer is not running")
        return self._loop.create_future()

    def _target(self, then: Then | None) -> asyncio.Future[Any] | Then:
        return self._future() if then is None else then

    def _put(self, op: _Op) -> None:
        if self._thread is None or self._stopping:
            raise StoreError("the store writer is not running")
        self._queue.append(op)
        if self._idle:
            self._wakeup.set()

    # --- the writer's thread -------------------------------------------------------------

    def _main(self, opened: asyncio.Future[None]) -> None:
        try:
            self._driver.open()
        except BaseException as exc:  # noqa: BLE001 - start() raises it
            self._to_loop(_set_exception, opened, exc)
            self._to_loop(_set_result, self._exited)
            return
        self._to_loop(_set_result, opened)
        try:
            self._commit_loop()
        finally:
            # Only with work left if the loop above died of a bug: nobody may wait
            # forever for a commit that will not come.
            left = [op for g in self._retries for op in g.ops]
            self._retries = []
            while self._queue:
                left.append(self._queue.popleft())
            if left:
                self._to_loop(_fail, left, StoreError("the store writer stopped"))
            try:
                self._driver.close()
            finally:
                self._to_loop(_set_result, self._exited)

    def _commit_loop(self) -> None:
        while True:
            group = self._due_retry(time.monotonic())
            if group is not None:
                self._commit_retry(group)
            elif self._queue:
                self._commit(self._take())
            elif self._stopping:
                self._last_retries()
                if not self._queue:
                    return
            else:
                self._sleep()

    def _take(self) -> list[_Op]:
        ops: list[_Op] = []
        popleft = self._queue.popleft
        try:
            for _ in range(self._max_batch):
                ops.append(popleft())
        except IndexError:
            pass
        return ops

    def _sleep(self) -> None:
        timeout = None
        if self._retries:
            timeout = max(0.0, min(g.not_before for g in self._retries) - time.monotonic())
        self._idle = True
        # Queued between the check in _commit_loop and the flag: not slept on.
        if not self._queue and not self._stopping:
            self._wakeup.wait(timeout)
        self._wakeup.clear()
        self._idle = False

    def _due_retry(self, now: float) -> _RetryGroup | None:
        for group in self._retries:
            if group.not_before <= now:
                self._retries.remove(group)
                return group
        return None

    def _commit(self, ops: list[_Op]) -> None:
        work = _Work(ops)
        started = time.perf_counter()
        try:
            refused, replaced, balances = self._driver.commit(work)
        except Exception as exc:  # noqa: BLE001 - the error goes to the accepts
            log.warning("store writer: commit of %d operations failed: %r", len(ops), exc)
            self._to_loop(_fail, work.accepts + work.balances, exc)
            # Bookkeeping is idempotent: it is tried again, alone, a little later.
            kept = [op for op in ops if op[0] not in (_ACCEPT, _BALANCES)]
            if kept:
                self._retries.append(
                    _RetryGroup(time.monotonic() + RETRY_DELAY, kept, RETRY_DELAY))
            return
        written = len(work.accepts) + len(work.inbound) - len(refused)
        self._to_loop(self._committed, work, refused, replaced, balances,
                      time.perf_counter() - started, written)

    def _commit_retry(self, group: _RetryGroup) -> None:
        started = time.perf_counter()
        try:
            self._driver.commit(_Work(group.ops))
        except Exception as exc:  # noqa: BLE001 - kept for the next try
            delay = min(group.delay * 2, MAX_RETRY_DELAY)
            log.warning("store writer: %d operations failed again (%r); next try in %.1fs",
                        len(group.ops), exc, delay)
            # Halve the group each time, so one operation that can never be written
            # ends up alone and holds nobody else back.
            half = (len(group.ops) + 1) // 2
            for ops in (group.ops[:half], group.ops[half:]):
                if ops:
                    self._retries.append(_RetryGroup(time.monotonic() + delay, ops, delay))
            return
        work = _Work(group.ops)
        self._to_loop(self._committed, work, {}, {}, {}, time.perf_counter() - started,
                      len(work.inbound))

    def _last_retries(self) -> None:
        """At stop: one more try for each group waiting to be retried."""
        groups, self._retries = self._retries, []
        for group in groups:
            try:
                self._driver.commit(_Work(group.ops))
            except Exception as exc:  # noqa: BLE001 - reported to each caller
                log.error("store writer: %d operations lost at stop: %r", len(group.ops), exc)
                self._to_loop(_fail, group.ops, exc)
            else:
                self._to_loop(_resolve, group.ops)

    def _to_loop(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            log.error("store writer: event loop closed; a commit's result is lost")

    # --- back on the event loop ------------------------------------------------------------

    def _committed(
        self, work: _Work, refused: dict[int, Exception], replaced: dict[int, list[NewMessage]],
        balances: dict[int, int], seconds: float, written: int,
    ) -> None:
        if balances and self.on_balances is not None:
            try:
                self.on_balances(balances)
            except Exception:  # the callers below must hear of their commit regardless
                log.exception("store writer: on_balances failed")
        for i, op in enumerate(work.accepts):
            error = refused.get(i)
            if error is None:
                _settle(op[3], replaced.get(i, []), None)
            else:
                _settle(op[3], None, error)
        for op in work.balances:
            _settle(op[2], {a: balances[a] for a in op[1] if a in balances}, None)
        for ops in (work.handed, work.retries, work.outcomes, work.inbound, work.delivered,
                    work.reschedules, work.flushes):
            _resolve(ops)
        if self._on_commit is not None:
            try:
                self._on_commit(seconds, written)
            except Exception:  # metrics never stop the writer
                log.exception("store writer: on_commit failed")


def _check_aware(*values: datetime | None) -> None:
    for value in values:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware UTC times")


def _check_delivery(delivery: DeliveryRow) -> None:
    if delivery.kind not in DELIVERY_KINDS:
        raise ValueError(f"delivery kind must be one of {DELIVERY_KINDS}: {delivery.kind!r}")
    _check_aware(delivery.created_at, delivery.next_attempt_at, delivery.expires_at)


def _settle(target: asyncio.Future[Any] | Then, result: Any, error: BaseException | None) -> None:
    """Tell the caller of one operation how it ended: its future (unless it gave up on
    it; the row is committed anyway), or its `then`."""
    if isinstance(target, asyncio.Future):
        if target.done():
            return
        if error is None:
            target.set_result(result)
        else:
            target.set_exception(error)
        return
    try:
        target(result, error)
    except Exception:  # one caller's bug must not keep the others from hearing
        log.exception("store writer: a caller's callback failed")


def _resolve(ops: Sequence[_Op]) -> None:
    """Committed: bookkeeping operations (not accepts or reads) are told so."""
    for op in ops:
        if op[0] != _ACCEPT and op[0] != _BALANCES:
            _settle(op[-1], None, None)


def _set_result(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _set_exception(future: asyncio.Future[None], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _fail(ops: Sequence[_Op], exc: BaseException) -> None:
    for op in ops:
        _settle(op[-1], None, exc)


# --- what one commit does, for either engine ------------------------------------------

# A request to the driver: (method name, *arguments); the answer is sent back in.
_Request = tuple[Any, ...]


def _plan(work: _Work, now: datetime) -> Generator[_Request, Any, _Settled]:
    """The bookkeeping, then the accepts (withdrawals, debits, message rows).

    Each accept is paid for in queue order from its account's balance as read (and
    locked) in this commit: the first messages that fit are written, the rest are
    refused one by one, so a node never refuses what the database could pay for.
    """
    refused: dict[int, Exception] = {}
    replaced: dict[int, list[NewMessage]] = {}
    accepts = work.accepts
    wanted = {op[1].account_id for op in accepts}
    for op in work.balances:
        wanted.update(op[1])
    # Bookkeeping first: it never depends on the accepts of its own commit (hand-overs,
    # outcomes and retries follow a commit that is over), and the account rows locked
    # below stay locked until COMMIT, so the less that runs after them the less long
    # another node's commit for the same account waits.
    yield ("bookkeeping", work)
    if not wanted:
        return refused, replaced, {}
    # Every account in the commit, in id order (PostgreSQL locks them so).
    balances: dict[int, int] = yield ("balances", sorted(wanted))
    # account -> [total debited, messages that cost something]
    totals: dict[int, list[int]] = {}
    withdrawn: list[tuple[NewMessage, datetime]] = []
    credits: dict[int, int] = {}
    taken: set[int] = set()
    for i, op in enumerate(accepts):
        msg = op[1]
        account_id = msg.account_id
        balance = balances.get(account_id)
        if balance is None:
            refused[i] = AccountNotFound(f"id={account_id}")
            continue
        found: list[NewMessage] = []
        if op[2]:  # replace_if_present_flag: what it withdraws is refunded first
            rows: list[NewMessage] = yield ("candidates", msg)
            # Two replacing messages of one commit: the first takes what both match.
            found = [r for r in rows if r.id not in taken]
        refund = sum(r.cost for r in found)
        if balance + refund < msg.cost:
            # Not paid for even with the refund: nothing of it is withdrawn either.
            refused[i] = InsufficientCredit(account_id, msg.cost)
            continue
        if op[2]:
            replaced[i] = found
            taken.update(r.id for r in found)
            withdrawn.extend((r, msg.created_at) for r in found)
            if refund:
                credits[account_id] = credits.get(account_id, 0) + refund
        balances[account_id] = balance + refund - msg.cost
        if msg.cost:
            entry = totals.get(account_id)
            if entry is None:
                entry = totals[account_id] = [0, 0]
            entry[0] += msg.cost
            entry[1] += 1
    if withdrawn:
        yield ("withdraw", withdrawn, sorted(credits.items()))
    payers = [(account_id, total, count) for account_id, (total, count) in totals.items()]
    ledger_ids: dict[int, int] = (yield ("debit", payers, now)) if payers else {}
    written = [op[1] for i, op in enumerate(accepts) if i not in refused]
    if written:
        yield ("insert_messages", written, ledger_ids)
    return refused, replaced, balances


def _debit_note(count: int) -> str:
    return f"{count} message" if count == 1 else f"{count} messages"


# Columns of a message row as the writer inserts it; attempts, last_error and the
# rest keep their defaults.
MESSAGE_COLUMNS = (*MESSAGE_FIELDS, "next_attempt_at", "claimed_by", "ledger_id",
                   "upstream", "done_at")

_Ts = Callable[[datetime | None], Any]


def _message_row(
    m: NewMessage, ts: _Ts, node: str, lease: timedelta, ledger_id: int | None,
    upstream: str | None = None, done_at: datetime | None = None,
) -> tuple[Any, ...]:
    """MESSAGE_COLUMNS of `m`. A waiting MT message carries its scheduling (see
    store.outbox): claimed by this node if the outbox may send it now (claimable)."""
    claimed_by = next_at = None
    if m.status == "ACCEPTED" and m.direction == "MT":
        if m.schedule_at is None or m.schedule_at <= m.created_at:
            claimed_by, next_at = node, m.created_at + lease
        else:
            next_at = m.schedule_at
    return (
        m.id, m.account_id, m.direction, m.source_addr, m.source_ton, m.source_npi,
        m.dest_addr, m.dest_ton, m.dest_npi, m.esm_class, m.registered_delivery,
        m.data_coding, m.body, m.segments, m.cost, m.status, ts(m.created_at),
        ts(m.schedule_at), ts(m.expires_at), m.service_type, m.protocol_id,
        m.priority_flag, m.tlvs, m.group_id, ts(next_at), claimed_by, ledger_id,
        upstream, ts(done_at),
    )


def _delivery_row(d: DeliveryRow, ts: _Ts, node: str) -> tuple[Any, ...]:
    return (d.id, d.account_id, d.message_id, d.kind, d.body, ts(d.created_at),
            ts(d.next_attempt_at), ts(d.expires_at), node if d.claimed else None)


def _bookkeeping(
    work: _Work, ts: _Ts, node: str, lease: timedelta
) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """(statement, rows) for every operation but accepts, in the order they run."""
    steps: list[tuple[str, list[tuple[Any, ...]]]] = []
    parts: list[tuple[Any, ...]] = []
    if work.handed:
        rows = []
        for _, mid, upstream, upstream_id, sent_at, taken, forget, _f in work.handed:
            rows.append((upstream, upstream_id, ts(sent_at), forget, mid))
            parts.extend((mid, n, len(taken), upstream, pid)
                         for n, pid in enumerate(taken, start=1) if pid)
        steps.append(("handed", rows))
    if work.retries:
        rows = []
        for _, mid, next_at, error, counts, upstream, taken, _f in work.retries:
            rows.append((1 if counts else 0, ts(next_at), error, mid))
            parts.extend((mid, n, len(taken), upstream, pid)
                         for n, pid in enumerate(taken, start=1) if pid)
        steps.append(("retry", rows))
    if parts:
        steps.append(("parts", parts))
    deliveries: list[tuple[Any, ...]] = []
    if work.outcomes:
        alerts = []
        rows = []
        for _, mid, status, error_code, done_at, delivery, alert, _f in work.outcomes:
            rows.append((status, error_code, ts(done_at), mid))
            if delivery is not None:
                deliveries.append(_delivery_row(delivery, ts, node))
            if alert is not None:
                alerts.append((alert.account_id, alert.ms_addr, alert.ms_ton, alert.ms_npi,
                               alert.esme_addr, alert.esme_ton, alert.esme_npi,
                               ts(alert.created_at), ts(alert.expires_at)))
        steps.append(("outcome", rows))
        if alerts:
            steps.append(("alerts", alerts))
    if work.inbound:
        rows = []
        for _, msg, delivery, upstream, _f in work.inbound:
            rows.append(_message_row(msg, ts, node, lease, None, upstream, msg.created_at))
            deliveries.append(_delivery_row(delivery, ts, node))
        steps.append(("inbound", rows))
    if deliveries:
        steps.append(("deliveries", deliveries))
    if work.reschedules:
        steps.append(("reschedule", [(ts(op[2]), op[1]) for op in work.reschedules]))
    if work.delivered:
        steps.append(("delivered", [(op[1],) for op in work.delivered]))
    return steps


# --- statements, written once in PostgreSQL's notation ---------------------------------

_COLUMNS = ", ".join(MESSAGE_COLUMNS)
_VALUES = ", ".join(f"${n}" for n in range(1, len(MESSAGE_COLUMNS) + 1))
_INSERT_MESSAGES = f"INSERT INTO messages ({_COLUMNS}) VALUES ({_VALUES})"

_STATEMENTS = {
    "insert_messages": _INSERT_MESSAGES,
    # Bookkeeping may be written twice (tried again after a failed commit): inserts of
    # rows with given ids do nothing the second time.
    "inbound": _INSERT_MESSAGES + " ON CONFLICT (id) DO NOTHING",
    "handed": (
        "UPDATE messages SET"
        # A receipt processed before this commit already set the final state: keep it.
        " status = CASE status WHEN 'ACCEPTED' THEN 'ENROUTE' ELSE status END,"
        " upstream = $1, upstream_id = $2, sent_at = $3, claimed_by = NULL,"
        " body = CASE WHEN $4::boolean THEN NULL ELSE body END"
        " WHERE id = $5"
    ),
    "retry": (
        "UPDATE messages SET attempts = attempts + $1, next_attempt_at = $2,"
        " last_error = $3, claimed_by = NULL WHERE id = $4"
    ),
    # A receipt may have created the part's row before the hand-over commits.
    "parts": (
        "INSERT INTO message_parts (message_id, part_no, parts, upstream, upstream_id)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id, part_no) DO UPDATE SET"
        " upstream = excluded.upstream, upstream_id = excluded.upstream_id,"
        " parts = excluded.parts"
    ),
    "outcome": (
        "UPDATE messages SET status = $1, error_code = $2,"
        " done_at = COALESCE($3, done_at) WHERE id = $4"
    ),
    # One request per (account, mobile, ESME address); the latest expiry wins.
    "alerts": (
        "INSERT INTO alert_requests (account_id, ms_addr, ms_ton, ms_npi, esme_addr,"
        " esme_ton, esme_npi, created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (account_id, ms_addr, esme_addr) DO UPDATE SET"
        " expires_at = excluded.expires_at, alerted_at = NULL"
    ),
    "deliveries": (
        "INSERT INTO deliveries (id, account_id, message_id, kind, body, state, attempts,"
        " created_at, next_attempt_at, expires_at, claimed_by)"
        " VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING"
    ),
    "reschedule": (
        "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $1,"
        " claimed_by = NULL WHERE id = $2 AND state = 'pending'"
    ),
    "delivered": "UPDATE deliveries SET state = 'delivered' WHERE id = $1 AND state = 'pending'",
    "withdraw": (
        "UPDATE messages SET status = 'DELETED', done_at = $1"
        " WHERE id = $2 AND status = 'ACCEPTED'"
    ),
    "refund": (
        "INSERT INTO ledger (account_id, kind, amount, message_id, note, created_at)"
        " VALUES ($1, 'refund', $2, $3, 'replace_if_present', $4)"
    ),
    "credit": "UPDATE accounts SET balance = balance + $1 WHERE id = $2",
    # Waiting (ACCEPTED, not claimed by a live claim) with the same addresses.
    "candidates": (
        f"SELECT {', '.join(MESSAGE_FIELDS)} FROM messages"
        " WHERE account_id = $1 AND status = 'ACCEPTED' AND direction = 'MT'"
        " AND source_addr = $2 AND dest_addr = $3 AND service_type = $4"
        " AND (claimed_by IS NULL OR next_attempt_at <= $5) ORDER BY id"
    ),
}

_PG_DEBIT = (
    # The rows are locked already (balances), so this update cannot fail its condition;
    # it stays as the last line of defence, and the count of rows returned is checked.
    "WITH v AS (SELECT * FROM unnest($1::int[], $2::bigint[], $3::int[], $4::text[])"
    " AS v(account_id, total, n, note)),"
    " paid AS (UPDATE accounts a SET balance = a.balance - v.total FROM v"
    " WHERE a.id = v.account_id AND a.balance >= v.total RETURNING a.id)"
    " INSERT INTO ledger (account_id, kind, amount, note, created_at, message_count)"
    " SELECT v.account_id, 'debit', -v.total, v.note, $5, v.n"
    " FROM v JOIN paid ON paid.id = v.account_id RETURNING id, account_id"
)
_PG_BALANCES = (
    # Locked in id order, like store.ledger's transfers: concurrent commits on several
    # nodes queue instead of deadlocking. NO KEY UPDATE leaves the key-share locks of
    # concurrent ledger inserts free.
    "SELECT id, balance FROM accounts WHERE id = ANY($1::int[]) ORDER BY id FOR NO KEY UPDATE"
)
_SQLITE_DEBIT = "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?"
_SQLITE_LEDGER = (
    "INSERT INTO ledger (id, account_id, kind, amount, note, created_at, message_count)"
    " VALUES (?, ?, 'debit', ?, ?, ?, ?)"
)


def _qmark(sql: str) -> str:
    """$1, $2::boolean ... -> ? (each placeholder appears once, in order)."""
    return re.sub(r"\$\d+(::\w+)?", "?", sql)


_SQLITE_STATEMENTS = {name: _qmark(sql) for name, sql in _STATEMENTS.items()}
_PG_STATEMENTS = dict(_STATEMENTS)
_PG_STATEMENTS["candidates"] += " FOR UPDATE SKIP LOCKED"

# Positions of the timestamps in a candidates row (SQLite hands back text).
_TIMESTAMP_FIELDS = tuple(
    i for i, name in enumerate(MESSAGE_FIELDS) if name in ("created_at", "schedule_at",
                                                          "expires_at")
)


# --- SQLite: sqlite3 on one thread ---------------------------------------------------------


def _sqlite_ts(value: datetime | None) -> str | None:
    """What UTCDateTime stores on SQLite: naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware UTC times")
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _sqlite_datetime(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


class _SqliteDriver:
    """One sqlite3 connection, used only on the writer's thread; every commit is
    BEGIN IMMEDIATE ... COMMIT."""

    def __init__(self, path: Path, synchronous: str, node: str, lease: timedelta) -> None:
        self._path = path
        self._synchronous = synchronous
        self._node, self._lease = node, lease
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        # mode=rw: the store is migrated already; never create an empty file.
        uri = self._path.resolve().as_uri() + "?mode=rw"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, cached_statements=64,
                               check_same_thread=True)
        for pragma in ("journal_mode=WAL", f"synchronous={self._synchronous}",
                       "foreign_keys=ON", "busy_timeout=5000"):
            conn.execute(f"PRAGMA {pragma}")
        self._conn = conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def commit(self, work: _Work) -> _Settled:
        conn = self._conn
        if conn is None:
            raise StoreError("the store writer's connection is closed")
        conn.execute("BEGIN IMMEDIATE")
        try:
            plan = _plan(work, datetime.now(UTC))
            answer = None
            while True:
                try:
                    request = plan.send(answer)
                except StopIteration as done:
                    settled: _Settled = done.value
                    break
                answer = getattr(self, request[0])(*request[1:])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return settled

    # Requests of _plan, on the writer's thread inside the transaction.

    def balances(self, account_ids: list[int]) -> dict[int, int]:
        assert self._conn is not None
        found: dict[int, int] = {}
        for start in range(0, len(account_ids), 10_000):  # under SQLite's variable limit
            chunk = account_ids[start:start + 10_000]
            marks = ", ".join("?" * len(chunk))
            found.update(self._conn.execute(
                f"SELECT id, balance FROM accounts WHERE id IN ({marks})", chunk
            ).fetchall())
        return found

    def candidates(self, msg: NewMessage) -> list[NewMessage]:
        assert self._conn is not None
        rows = self._conn.execute(_SQLITE_STATEMENTS["candidates"], (
            msg.account_id, msg.source_addr, msg.dest_addr, msg.service_type,
            _sqlite_ts(msg.created_at),
        )).fetchall()
        found = []
        for row in rows:
            values = list(row)
            for i in _TIMESTAMP_FIELDS:
                values[i] = _sqlite_datetime(values[i])
            found.append(NewMessage(*values))
        return found

    def withdraw(
        self, withdrawn: list[tuple[NewMessage, datetime]], credits: list[tuple[int, int]]
    ) -> None:
        conn = self._conn
        assert conn is not None
        conn.executemany(_SQLITE_STATEMENTS["withdraw"],
                         [(_sqlite_ts(at), m.id) for m, at in withdrawn])
        conn.executemany(_SQLITE_STATEMENTS["refund"], [
            (m.account_id, m.cost, m.id, _sqlite_ts(at)) for m, at in withdrawn if m.cost
        ])
        conn.executemany(_SQLITE_STATEMENTS["credit"], [(amount, a) for a, amount in credits])

    def debit(self, payers: list[tuple[int, int, int]], now: datetime) -> dict[int, int]:
        conn = self._conn
        assert conn is not None
        cursor = conn.executemany(_SQLITE_DEBIT, [(total, a, total) for a, total, _ in payers])
        if cursor.rowcount != len(payers):
            raise StoreError("a balance changed under the write lock")
        # The write lock is held (BEGIN IMMEDIATE): nobody else inserts ledger rows
        # until COMMIT, so the ids after the largest are ours to give.
        first = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM ledger").fetchone()[0]
        at = _sqlite_ts(now)
        conn.executemany(_SQLITE_LEDGER, [
            (first + i, a, -total, _debit_note(n), at, n)
            for i, (a, total, n) in enumerate(payers)
        ])
        return {a: first + i for i, (a, _, _) in enumerate(payers)}

    def insert_messages(self, written: list[NewMessage], ledger_ids: dict[int, int]) -> None:
        assert self._conn is not None
        node, lease, get = self._node, self._lease, ledger_ids.get
        self._conn.executemany(_SQLITE_STATEMENTS["insert_messages"], [
            _message_row(m, _sqlite_ts, node, lease, get(m.account_id) if m.cost else None)
            for m in written
        ])

    def bookkeeping(self, work: _Work) -> None:
        conn = self._conn
        assert conn is not None
        for name, rows in _bookkeeping(work, _sqlite_ts, self._node, self._lease):
            conn.executemany(_SQLITE_STATEMENTS[name], rows)


# --- PostgreSQL: an asyncpg connection of its own ------------------------------------------


def _pg_ts(value: datetime | None) -> datetime | None:
    # asyncpg takes aware datetimes as they are; naive ones were refused at the call.
    return value


class _PostgresDriver:
    """One asyncpg connection on an event loop of the writer's thread, opened again
    after it broke."""

    def __init__(
        self, dsn: str, connect_args: dict[str, Any], node: str, lease: timedelta
    ) -> None:
        self._dsn = dsn
        self._connect_args = connect_args
        self._node, self._lease = node, lease
        self._conn: asyncpg.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def open(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._connect())
        except BaseException:
            self._loop.close()
            self._loop = None
            raise

    async def _connect(self) -> None:
        self._conn = await asyncpg.connect(self._dsn, **self._connect_args)

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        conn, self._conn = self._conn, None
        try:
            if conn is not None and not conn.is_closed():
                loop.run_until_complete(conn.close())
        finally:
            loop.close()

    def commit(self, work: _Work) -> _Settled:
        if self._loop is None:
            raise StoreError("the store writer's connection is closed")
        return self._loop.run_until_complete(self._commit(work))

    async def _commit(self, work: _Work) -> _Settled:
        if self._conn is None or self._conn.is_closed():
            await self._connect()
        conn = self._conn
        assert conn is not None
        async with conn.transaction():
            plan = _plan(work, datetime.now(UTC))
            answer = None
            while True:
                try:
                    request = plan.send(answer)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                answer = await getattr(self, request[0])(conn, *request[1:])

    # Requests of _plan, inside the transaction.

    async def balances(self, conn: asyncpg.Connection, account_ids: list[int]) -> dict[int, int]:
        return {r[0]: r[1] for r in await conn.fetch(_PG_BALANCES, account_ids)}

    async def candidates(self, conn: asyncpg.Connection, msg: NewMessage) -> list[NewMessage]:
        rows = await conn.fetch(_PG_STATEMENTS["candidates"], msg.account_id, msg.source_addr,
                                msg.dest_addr, msg.service_type, msg.created_at)
        return [NewMessage(*row) for row in rows]

    async def withdraw(
        self, conn: asyncpg.Connection, withdrawn: list[tuple[NewMessage, datetime]],
        credits: list[tuple[int, int]],
    ) -> None:
        await conn.executemany(_PG_STATEMENTS["withdraw"], [(at, m.id) for m, at in withdrawn])
        refunds = [(m.account_id, m.cost, m.id, at) for m, at in withdrawn if m.cost]
        if refunds:
            await conn.executemany(_PG_STATEMENTS["refund"], refunds)
        if credits:
            await conn.executemany(_PG_STATEMENTS["credit"],
                                   [(amount, a) for a, amount in credits])

    async def debit(
        self, conn: asyncpg.Connection, payers: list[tuple[int, int, int]], now: datetime
    ) -> dict[int, int]:
        rows = await conn.fetch(
            _PG_DEBIT, [p[0] for p in payers], [p[1] for p in payers], [p[2] for p in payers],
            [_debit_note(p[2]) for p in payers], now,
        )
        if len(rows) != len(payers):
            raise StoreError("a balance changed under its row lock")
        return {r[1]: r[0] for r in rows}

    async def insert_messages(
        self, conn: asyncpg.Connection, written: list[NewMessage], ledger_ids: dict[int, int]
    ) -> None:
        node, lease, get = self._node, self._lease, ledger_ids.get
        rows = [_message_row(m, _pg_ts, node, lease, get(m.account_id) if m.cost else None)
                for m in written]
        if len(rows) >= COPY_MIN_ROWS:
            await conn.copy_records_to_table("messages", records=rows, columns=MESSAGE_COLUMNS)
        else:
            await conn.executemany(_PG_STATEMENTS["insert_messages"], rows)

    async def bookkeeping(self, conn: asyncpg.Connection, work: _Work) -> None:
        for name, rows in _bookkeeping(work, _pg_ts, self._node, self._lease):
            await conn.executemany(_PG_STATEMENTS[name], rows)
