"""A measurement, not a test: rows/s of accept through StoreWriter against the
SQLAlchemy WriteBehindBatcher, on SQLite with synchronous=FULL, one commit per batch.

    .venv/bin/python tests/test_store_writer_throughput.py [rounds]

Each round queues a batch of new messages (four accounts) in one turn of the loop and
waits for all of them: one transaction of the batch's rows and their debits. The one
test below only runs it small, so that the script keeps working.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from store.accounts import AccountStore
from store.batcher import WriteBehindBatcher
from store.engine import make_engine, migrate
from store.invariants import ledger_violations
from store.writer import NewMessage, StoreWriter

ACCOUNTS = 4


@dataclass
class Result:
    who: str
    batch: int
    rows_per_s: float
    commit_p50_ms: float
    commit_p99_ms: float


def _messages(first_id: int, count: int, accounts: Sequence[int]) -> list[NewMessage]:
    now = datetime.now(UTC)
    return [
        NewMessage(
            id=first_id + i, account_id=accounts[i % len(accounts)], direction="MT",
            source_addr="ACME", source_ton=5, source_npi=0, dest_addr="33612345678",
            dest_ton=1, dest_npi=1, esm_class=0, registered_delivery=1, data_coding=0,
            body=b"hello world, a typical short message of some sixty characters",
            segments=1, cost=3, status="ACCEPTED", created_at=now,
            expires_at=now + timedelta(days=2),
        )
        for i in range(count)
    ]


async def _rounds(
    submit: Callable[[NewMessage], Awaitable[object]], batch: int, rounds: int,
    accounts: Sequence[int], first_id: int,
) -> tuple[float, list[float]]:
    """Total seconds, and each round's seconds (one commit each)."""
    batches = [_messages(first_id + r * batch, batch, accounts) for r in range(rounds)]
    each = []
    started = time.perf_counter()
    for messages in batches:
        t = time.perf_counter()
        await asyncio.gather(*(submit(m) for m in messages))
        each.append(time.perf_counter() - t)
    return time.perf_counter() - started, each


def _result(who: str, batch: int, rounds: int, total: float, each: list[float]) -> Result:
    each = sorted(each)
    p99 = each[min(len(each) - 1, int(len(each) * 0.99))]
    return Result(who, batch, batch * rounds / total, statistics.median(each) * 1000, p99 * 1000)


async def measure(directory: Path, batches: Sequence[int], rounds: int) -> list[Result]:
    results = []
    for n, batch in enumerate(batches):
        url = f"sqlite+aiosqlite:///{directory / f'm{n}' / 'store.db'}"
        engine = make_engine(url, sqlite_synchronous="FULL")
        await migrate(engine)
        store = AccountStore(engine)
        accounts = [(await store.create(f"acc{i}", "h", credits=10**12))["id"]
                    for i in range(ACCOUNTS)]

        batcher = WriteBehindBatcher(engine, max_batch=batch, max_delay=0.0,
                                     claim_for=("node-1", timedelta(seconds=60)))
        await batcher.start()
        await _rounds(batcher.enqueue, batch, 2, accounts, 10**9)  # warm up
        total, each = await _rounds(batcher.enqueue, batch, rounds, accounts, 2 * 10**9)
        await batcher.stop()
        results.append(_result("SQLAlchemy batcher", batch, rounds, total, each))

        writer = StoreWriter(url, node="node-1", claim_lease=timedelta(seconds=60),
                             sqlite_synchronous="FULL", max_batch=batch)
        await writer.start()
        await _rounds(writer.accept, batch, 2, accounts, 3 * 10**9)
        total, each = await _rounds(writer.accept, batch, rounds, accounts, 4 * 10**9)
        await writer.stop()
        results.append(_result("StoreWriter", batch, rounds, total, each))

        assert await ledger_violations(engine) == []
        await engine.dispose()
    return results


def table(results: Sequence[Result]) -> str:
    lines = [f"{'writer':<20} {'batch':>6} {'rows/s':>10} {'commit p50':>11} {'p99':>8}"]
    lines += [f"{r.who:<20} {r.batch:>6} {r.rows_per_s:>10,.0f} {r.commit_p50_ms:>9.2f}ms"
              f" {r.commit_p99_ms:>6.2f}ms" for r in results]
    return "\n".join(lines)


async def test_the_measurement_runs(tmp_path: Path) -> None:
    results = await measure(tmp_path, [10], rounds=3)
    assert [r.who for r in results] == ["SQLAlchemy batcher", "StoreWriter"]
    assert all(r.rows_per_s > 0 for r in results)


if __name__ == "__main__":
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with tempfile.TemporaryDirectory() as tmp:
        print(table(asyncio.run(measure(Path(tmp), [100, 1000], rounds))))
