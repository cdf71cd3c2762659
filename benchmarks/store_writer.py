"""A measurement: how fast StoreWriter commits accepted messages on SQLite with
synchronous=FULL, beside the floor of the same writes made with sqlite3 alone.

    .venv/bin/python -m benchmarks.store_writer [rounds] [--batches 1,10,100,1000]

For each batch size, on a fresh migrated store file: two warm-up batches, then
`rounds` batches of new messages (four accounts, 3 units each), each batch queued at
once and awaited before the next. Reported for each: rows/s (messages committed over
the wall time of the rounds), how many commits that took (the writer may split a batch)
and the p50/p99 of the commit durations (StoreWriter's on_commit; the floor's rounds).

The floor writes the same rows with sqlite3 on the calling thread, one transaction per
batch: the balances read, one balance update and one debit ledger row per account,
and an executemany of the message rows, already built. No writer of this file can
commit these rows faster; the gap is what the writer itself costs.

Each store is checked afterwards: every row asked for is there and the books balance
(store.invariants). Nothing is written outside a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from store.accounts import AccountStore
from store.engine import make_engine, migrate
from store.invariants import ledger_violations
from store.tables import messages as messages_table
from store.writer import MESSAGE_FIELDS, NewMessage, StoreWriter

BATCHES = (1, 10, 100, 1000)
ROUNDS = 50
WARM_UP = 2
ACCOUNTS = 4
COST = 3
NODE = "node-1"
LEASE = timedelta(seconds=60)
# Message ids of the measured rounds start here; the warm-up's come before.
FIRST_ID = 10**9


@dataclass
class Result:
    who: str
    batch: int
    rows_asked: int
    rows_written: int
    commits: int
    rows_per_s: float
    commit_p50_ms: float
    commit_p99_ms: float
    ledger_violations: list[str] = field(default_factory=list)


def _messages(first_id: int, count: int, accounts: Sequence[int]) -> list[NewMessage]:
    now = datetime.now(UTC)
    return [
        NewMessage(
            id=first_id + i, account_id=accounts[i % len(accounts)], direction="MT",
            source_addr="ACME", source_ton=5, source_npi=0, dest_addr="33612345678",
            dest_ton=1, dest_npi=1, esm_class=0, registered_delivery=1, data_coding=0,
            body=b"hello world, a typical short message of some sixty characters",
            segments=1, cost=COST, status="ACCEPTED", created_at=now,
            expires_at=now + timedelta(days=2),
        )
        for i in range(count)
    ]


def _percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest rank."""
    return sorted_values[max(0, math.ceil(p * len(sorted_values)) - 1)]


async def _store(path: Path) -> tuple[str, Any, list[int]]:
    """A migrated store file with ACCOUNTS accounts rich enough for any run."""
    url = f"sqlite+aiosqlite:///{path}"
    engine = make_engine(url, sqlite_synchronous="FULL")
    await migrate(engine)
    store = AccountStore(engine)
    accounts = [(await store.create(f"acc{i}", "h", credits=10**12))["id"]
                for i in range(ACCOUNTS)]
    return url, engine, accounts


async def _check(engine: Any, result: Result) -> Result:
    async with engine.connect() as conn:
        result.rows_written = (await conn.execute(
            sa.select(sa.func.count()).where(messages_table.c.id >= FIRST_ID)
        )).scalar_one()
    result.ledger_violations = await ledger_violations(engine)
    await engine.dispose()
    return result


async def _writer(directory: Path, batch: int, rounds: int) -> Result:
    url, engine, accounts = await _store(directory / f"writer-{batch}.db")
    commits: list[tuple[float, int]] = []
    writer = StoreWriter(url, node=NODE, claim_lease=LEASE, sqlite_synchronous="FULL",
                         max_batch=batch, on_commit=lambda s, n: commits.append((s, n)))
    await writer.start()
    try:
        for r in range(WARM_UP):
            await asyncio.gather(*map(writer.accept, _messages(1 + r * batch, batch, accounts)))
        batches = [_messages(FIRST_ID + r * batch, batch, accounts) for r in range(rounds)]
        commits.clear()
        started = time.perf_counter()
        for msgs in batches:
            await asyncio.gather(*map(writer.accept, msgs))
        elapsed = time.perf_counter() - started
        measured = [s for s, n in commits if n]
    finally:
        await writer.stop()
    measured.sort()
    result = Result("StoreWriter", batch, batch * rounds, 0, len(measured),
                    batch * rounds / elapsed, statistics.median(measured) * 1000,
                    _percentile(measured, 0.99) * 1000)
    return await _check(engine, result)


# The floor: the same rows as the writer writes them on SQLite (claimed, with their
# debit), in the text form UTCDateTime keeps there.
_FLOOR_COLUMNS = (*MESSAGE_FIELDS, "next_attempt_at", "claimed_by", "ledger_id")
_FLOOR_INSERT = (f"INSERT INTO messages ({', '.join(_FLOOR_COLUMNS)})"
                 f" VALUES ({', '.join('?' * len(_FLOOR_COLUMNS))})")


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(" ", "microseconds")[:26]


def _floor_rows(msgs: Sequence[NewMessage]) -> list[tuple[int, tuple[Any, ...]]]:
    """(account id, the row but its ledger_id), built before the clock starts."""
    rows = []
    for m in msgs:
        values = [getattr(m, name) for name in MESSAGE_FIELDS]
        values = [_ts(v) if isinstance(v, datetime) else v for v in values]
        rows.append((m.account_id, (*values, _ts(m.created_at + LEASE), NODE)))
    return rows


def _floor_commit(conn: sqlite3.Connection, rows: list[tuple[int, tuple[Any, ...]]]) -> None:
    totals: dict[int, int] = {}
    for account_id, _ in rows:
        totals[account_id] = totals.get(account_id, 0) + 1
    now = _ts(datetime.now(UTC))
    conn.execute("BEGIN IMMEDIATE")
    ids = sorted(totals)
    balances = dict(conn.execute(
        f"SELECT id, balance FROM accounts WHERE id IN ({', '.join('?' * len(ids))})", ids))
    ledger_ids = {}
    for account_id in ids:
        count = totals[account_id]
        total = count * COST
        assert balances[account_id] >= total
        conn.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?",
                     (total, account_id))
        ledger_ids[account_id] = conn.execute(
            "INSERT INTO ledger (account_id, kind, amount, note, created_at, message_count)"
            " VALUES (?, 'debit', ?, ?, ?, ?)",
            (account_id, -total, f"{count} messages", now, count),
        ).lastrowid
    conn.executemany(_FLOOR_INSERT, [(*row, ledger_ids[a]) for a, row in rows])
    conn.execute("COMMIT")


async def _floor(directory: Path, batch: int, rounds: int) -> Result:
    path = directory / f"floor-{batch}.db"
    _, engine, accounts = await _store(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            conn.execute(f"PRAGMA {pragma}")
        for r in range(WARM_UP):
            _floor_commit(conn, _floor_rows(_messages(1 + r * batch, batch, accounts)))
        batches = [_floor_rows(_messages(FIRST_ID + r * batch, batch, accounts))
                   for r in range(rounds)]
        each = []
        started = time.perf_counter()
        for rows in batches:
            t = time.perf_counter()
            _floor_commit(conn, rows)
            each.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    each.sort()
    result = Result("sqlite3 floor", batch, batch * rounds, 0, rounds, batch * rounds / elapsed,
                    statistics.median(each) * 1000, _percentile(each, 0.99) * 1000)
    return await _check(engine, result)


async def measure(directory: Path, batches: Sequence[int], rounds: int) -> list[Result]:
    results = []
    for batch in batches:
        results.append(await _writer(directory, batch, rounds))
        results.append(await _floor(directory, batch, rounds))
    return results


def table(results: Sequence[Result]) -> str:
    header = f"{'':<14} {'batch':>6} {'rows/s':>10} {'commits':>8} {'commit p50':>11} {'p99':>9}"
    lines = [header]
    lines += [f"{r.who:<14} {r.batch:>6} {r.rows_per_s:>10,.0f} {r.commits:>8}"
              f" {r.commit_p50_ms:>9.2f}ms {r.commit_p99_ms:>7.2f}ms" for r in results]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store_writer",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("rounds", nargs="?", type=int, default=ROUNDS,
                        help=f"batches measured per batch size (default {ROUNDS})")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)),
                        help="batch sizes, comma-separated (default %(default)s)")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if args.rounds < 1 or any(b < 1 for b in batches):
        parser.error("rounds and batch sizes must be at least 1")
    with tempfile.TemporaryDirectory(prefix="smppgw-store-writer-") as tmp:
        results = asyncio.run(measure(Path(tmp), batches, args.rounds))
    print(table(results))
    for r in results:
        if r.rows_written != r.rows_asked or r.ledger_violations:
            print(f"{r.who} at batch {r.batch}: {r.rows_written} of {r.rows_asked} rows,"
                  f" {r.ledger_violations}")
    return results


if __name__ == "__main__":
    main()
