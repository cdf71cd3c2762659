"""Write-behind group commit for accepted messages and their debits, through SQLAlchemy.

`submit()` parks a message and returns once its row and its debit are committed, so the
gateway may then send submit_sm_resp (principle 3). One background task commits many
messages per transaction: a flush starts when `max_batch` items wait or `max_delay`
after the first of them arrived, and whatever arrives during a flush waits for the next.

Superseded by store.writer.StoreWriter (the driver itself, one debit per account per
commit, every hot-path write); kept until the gateway switches over. NewMessage and
claimable live in store.writer and are re-exported here for the callers of this module.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from store.engine import writer
from store.errors import AccountNotFound, InsufficientCredit, StoreError
from store.outbox import withdraw_waiting
from store.tables import accounts, ledger, messages
from store.writer import MESSAGE_FIELDS as _FIELDS
from store.writer import NewMessage, claimable

__all__ = ["NewMessage", "WriteBehindBatcher", "claimable"]

log = logging.getLogger(__name__)


# (message, future of the commit, replace_if_present_flag)
_Pending = tuple[NewMessage, "asyncio.Future[list[NewMessage]]", bool]


class WriteBehindBatcher:
    """Group-commits NewMessage rows and their 'debit' ledger rows."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 1000,
        max_delay: float = 0.002,
        claim_for: tuple[str, timedelta] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_delay < 0:
            raise ValueError("max_delay must not be negative")
        self._engine = writer(engine)
        # (node, lease): messages due now are committed already claimed by this node's
        # outbox, which then sends them from memory instead of reading them back.
        self._claim_for = claim_for
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._pending: list[_Pending] = []
        self._first_at = 0.0  # loop time the oldest pending item arrived
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        if self._task is not None:
            raise StoreError("batcher already started")
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="store-write-behind-batcher")

    async def stop(self) -> None:
        """Stop accepting work, flush everything pending, and wait for the last commit."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        await task

    async def submit(self, msg: NewMessage, *, replace_present: bool = False) -> list[NewMessage]:
        """Return once `msg` and its debit are committed.

        With `replace_present` (submit_sm's replace_if_present_flag), messages of the
        account still waiting with the same source, destination and service_type are
        withdrawn and refunded in the same transaction; they are returned.
        Raises InsufficientCredit if the account's balance cannot cover the account's
        share of the batch (nothing is written for that account), AccountNotFound, or
        the database error that rolled back the whole batch.
        """
        return await self.enqueue(msg, replace_present=replace_present)

    def enqueue(
        self, msg: NewMessage, *, replace_present: bool = False
    ) -> asyncio.Future[list[NewMessage]]:
        """submit() without a coroutine: the future resolves when `msg` is committed.

        For the session hot path, which reacts with a done-callback instead of a task
        per submit_sm. The future's outcome is what submit() returns or raises.
        """
        if self._task is None or self._stopping:
            raise StoreError("the write-behind batcher is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[NewMessage]] = loop.create_future()
        self._pending.append((msg, future, replace_present))
        if len(self._pending) == 1:
            self._first_at = loop.time()
            self._wake.set()
        elif len(self._pending) >= self._max_batch:
            self._wake.set()
        return future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._pending:
                    if self._stopping:
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if len(self._pending) < self._max_batch and not self._stopping:
                    remaining = self._first_at + self._max_delay - loop.time()
                    if remaining > 0:
                        self._wake.clear()
                        try:
                            await asyncio.wait_for(self._wake.wait(), remaining)
                        except TimeoutError:
                            pass
                        continue
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                if self._pending:
                    # What is left has been waiting since before this flush.
                    self._first_at = loop.time()
                try:
                    await self._flush(batch)
                except BaseException:
                    # Cancelled mid-commit: whether it committed is unknown, and the
                    # submitters must hear that rather than wait forever.
                    _fail(batch, StoreError("the write-behind batcher was cancelled"))
                    raise
        finally:
            # Only reached with work pending if the task was cancelled: never leave a
            # submitter waiting forever.
            leftover, self._pending = self._pending, []
            _fail(leftover, StoreError("the write-behind batcher stopped"))

    async def _flush(self, batch: list[_Pending]) -> None:
        totals: dict[int, int] = {}
        for msg, _, _ in batch:
            totals[msg.account_id] = totals.get(msg.account_id, 0) + msg.cost
        replaced: dict[int, list[NewMessage]] = {}
        try:
            async with self._engine.begin() as conn:
                for msg, _, replace in batch:
                    if replace:
                        # Before the debit: the refund may be what pays for the new one.
                        rows = await withdraw_waiting(
                            conn, msg.account_id, msg.created_at, note="replace_if_present",
                            source_addr=msg.source_addr, dest_addr=msg.dest_addr,
                            service_type=msg.service_type,
                        )
                        replaced[msg.id] = [NewMessage.from_row(r) for r in rows]
                refused = await self._debit(conn, totals)
                if replaced and any(msg.account_id in refused for msg, _, _ in batch):
                    # Not paid for after all: nothing of this batch may stand.
                    raise _Refused(refused)
                accepted = [msg for msg, _, _ in batch if msg.account_id not in refused]
                if accepted:
                    await conn.execute(messages.insert(), [self._row(m) for m in accepted])
                    debits = [
                        {"account_id": msg.account_id, "kind": "debit", "amount": -msg.cost,
                         "message_id": msg.id, "note": None, "created_at": msg.created_at}
                        for msg in accepted
                        if msg.cost
                    ]
                    if debits:
                        await conn.execute(ledger.insert(), debits)
        except _Refused as exc:
            # Rolled back because a replacement was refused: the other accounts' messages
            # are sent again on their own, the refused ones get their error.
            retry = [item for item in batch if item[0].account_id not in exc.refused]
            for msg, future, _ in batch:
                if msg.account_id in exc.refused and not future.done():
                    future.set_exception(exc.refused[msg.account_id])
            if retry:
                await self._flush(retry)
            return
        except Exception as exc:  # noqa: BLE001 - any failure is handed to the submitters
            # The transaction rolled back: nothing of this batch was written.
            log.warning("write-behind batch of %d failed: %r", len(batch), exc)
            _fail(batch, exc)
            return
        for msg, future, _ in batch:
            if future.done():  # the submitter was cancelled; its row is committed anyway
                continue
            error = refused.get(msg.account_id)
            if error is None:
                future.set_result(replaced.get(msg.id, []))
            else:
                future.set_exception(error)

    def _row(self, msg: NewMessage) -> dict[str, Any]:
        """The messages row; an ACCEPTED MT one carries its scheduling (store.outbox):
        claimed by this node's outbox if it is due now, else due when scheduled."""
        row = {name: getattr(msg, name) for name in _FIELDS}
        row["claimed_by"] = row["next_attempt_at"] = None
        if msg.status == "ACCEPTED" and msg.direction == "MT":
            if self._claim_for is not None and claimable(msg):
                row["claimed_by"], lease = self._claim_for
                row["next_attempt_at"] = msg.created_at + lease
            else:
                row["next_attempt_at"] = msg.schedule_at or msg.created_at
        return row

    async def _debit(self, conn: AsyncConnection, totals: dict[int, int]) -> dict[int, Exception]:
        """Debit each account's batch total if it can pay; returns the refused accounts."""
        refused: dict[int, Exception] = {}
        # Account order is the same in every transaction on every node, so concurrent
        # batches and transfers on PostgreSQL wait for each other instead of deadlocking.
        for account_id in sorted(totals):
            total = totals[account_id]
            # Runs even for a total of 0: it doubles as the check that the account exists.
            result = await conn.execute(
                accounts.update()
                .where(accounts.c.id == account_id, accounts.c.balance >= total)
                .values(balance=accounts.c.balance - total)
            )
            if result.rowcount == 1:
                continue
            exists = (
                await conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id))
            ).first()
            refused[account_id] = (
                InsufficientCredit(account_id, total)
                if exists
                else AccountNotFound(f"id={account_id}")
            )
        return refused

    @property
    def pending(self) -> int:
        """Messages waiting for the next commit (for metrics)."""
        return len(self._pending)

    def __repr__(self) -> str:
        state = "running" if self._task is not None else "stopped"
        return f"<WriteBehindBatcher {state} pending={len(self._pending)}>"




class _Refused(Exception):
    """A batch with a replacement hit an account that cannot pay: roll it all back."""

    def __init__(self, refused: dict[int, Exception]) -> None:
        super().__init__("refused accounts in a batch with replacements")
        self.refused = refused


def _fail(items: list[_Pending], exc: BaseException) -> None:
    for _, future, _ in items:
        if not future.done():
            future.set_exception(exc)
