"""A CSV export of 100,000 history rows streams with bounded memory, through the admin
socket and through `smppgw admin history export` with its progress bar on a TTY."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import pty
import sys
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gw_helpers import MakeGateway, gateway_settings
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.passwords import hash_password
from store import tables
from store.accounts import AccountStore
from store.engine import make_engine, migrate

ROWS = 100_000


async def _fill(engine: AsyncEngine, account_id: int, n: int) -> None:
    # Recent rows: the gateway's retention job purges history older than six months.
    start = datetime.now(UTC) - timedelta(days=3)
    batch = []
    async with engine.begin() as conn:
        for i in range(n):
            batch.append({
                "id": 1_000_000 + i, "account_id": account_id, "direction": "MT",
                "source_addr": "ovh123", "source_ton": 5, "source_npi": 0,
                "dest_addr": f"336{i:08d}", "dest_ton": 1, "dest_npi": 1, "esm_class": 0,
                "registered_delivery": 1, "data_coding": 0,
                "body": f"Your code is {i:06d}, valid 10 minutes".encode(),
                "segments": 1, "cost": 0, "status": "DELIVERED", "error_code": 0,
                "upstream": "sim", "upstream_id": f"u{i}",
                "created_at": start + timedelta(seconds=i), "sent_at": None, "done_at": None,
            })
            if len(batch) == 10_000:
                await conn.execute(tables.messages.insert(), batch)
                batch = []
        if batch:
            await conn.execute(tables.messages.insert(), batch)


@pytest.fixture(scope="module")
def big_state(tmp_path_factory) -> Path:
    """One state directory with 100,000 history rows, shared by the tests below.

    Built with the store alone (no gateway running), so nothing but the rows is left
    behind for the tests' own gateways.
    """
    state = tmp_path_factory.mktemp("export") / "state"
    settings = gateway_settings(state)

    async def build() -> None:
        engine = make_engine(settings.effective_database_url)
        try:
            await migrate(engine)
            account = await AccountStore(engine).create(
                "smpp-export", hash_password("secret12"), allowed_ips=["127.0.0.1"]
            )
            await _fill(engine, account["id"], ROWS)
        finally:
            await engine.dispose()

    asyncio.run(build())
    return state


async def test_export_of_100k_rows_streams_in_bounded_memory(
    big_state: Path, make_gateway: MakeGateway, tmp_path: Path
) -> None:
    gw = await make_gateway(state_dir=big_state)
    out = tmp_path / "history.csv"
    reader, writer = await asyncio.open_unix_connection(
        gw.endpoints.admin_socket, limit=1 << 22
    )
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        writer.write(json.dumps({"op": "history.export", "args": {}}).encode() + b"\n")
        rows = 0
        with out.open("w", newline="") as f:
            csv_out = csv.writer(f)
            header = json.loads(await reader.readline())
            csv_out.writerow(header["result"]["columns"])
            while True:
                line = json.loads(await reader.readline())
                if "rows" not in line:
                    break
                csv_out.writerows(line["rows"])
                rows += len(line["rows"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        writer.close()
    assert header["result"]["total"] == ROWS and rows == ROWS and line == {
        "end": True, "count": ROWS
    }
    size = out.stat().st_size
    growth = peak - base
    # Server and client share this process, so the bound covers both: a few pages of
    # 1,000 rows in flight (measured about 4.7 MB), never the whole export, which as
    # Python rows would take several times the CSV's 14 MB.
    assert size > 12_000_000
    assert growth < 8_000_000, (growth, size)


async def test_cli_export_writes_the_csv_with_a_progress_bar_on_a_tty(
    big_state: Path, make_gateway: MakeGateway, tmp_path: Path
) -> None:
    out = tmp_path / "export.csv"
    gw = await make_gateway(state_dir=big_state)
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "admin", "--socket",
            gw.endpoints.admin_socket, "history", "export", "--status", "DELIVERED",
            "--output", str(out),
            stdout=asyncio.subprocess.PIPE, stderr=slave,
        )
        os.close(slave)
        loop = asyncio.get_running_loop()
        chunks: list[bytes] = []

        def drain_tty() -> None:
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    return
                if not data:
                    return
                chunks.append(data)

        reading = loop.run_in_executor(None, drain_tty)
        await proc.communicate()
        await reading
    finally:
        os.close(master)
    code, tty = proc.returncode, b"".join(chunks)
    assert code == 0, tty
    text = tty.decode()
    assert "100%" in text and f"{ROWS}/{ROWS} rows" in text and "exported 100000 rows" in text
    with out.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        first = next(reader)
        count = 1 + sum(1 for _ in reader)
    assert header[:4] == ["id", "system_id", "direction", "created_at"]
    assert count == ROWS
    assert first[header.index("body")] == "Your code is 000000, valid 10 minutes"
