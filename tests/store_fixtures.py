"""Fixtures for the store tests: a migrated, empty store on SQLite and on PostgreSQL.

PostgreSQL tests get a schema of their own (search_path) that is dropped afterwards,
so they can run next to each other and next to other people's tests on one database.
Set SMPPGW_TEST_PG_URL to point them elsewhere; they skip if it cannot be reached.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncEngine

from store.engine import alembic_config, make_engine, migrate, writer
from store.invariants import ledger_violations
from store.writer import NewMessage, StoreWriter

PG_URL = os.environ.get("SMPPGW_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

_pg_unreachable: str | None = None
_pg_checked = False


async def _pg_skip_reason() -> str | None:
    global _pg_checked, _pg_unreachable
    if not _pg_checked:
        _pg_checked = True
        try:
            conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), timeout=3)
            await conn.close()
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            _pg_unreachable = f"PostgreSQL at {PG_URL} is unreachable: {exc!r}"
    return _pg_unreachable


@dataclass
class StoreDB:
    """A migrated store, plus what it takes to open a second, independent engine."""

    kind: str
    url: str
    engine: AsyncEngine
    connect_args: dict[str, Any] = field(default_factory=dict)

    def other_engine(self) -> AsyncEngine:
        """A separate engine (own pool): sees only what is committed."""
        return make_engine(self.url, connect_args=self.connect_args)


@asynccontextmanager
async def _database(kind: str, tmp_path: Any) -> AsyncIterator[StoreDB]:
    """An empty database (no schema yet) of the given kind."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'state' / 'store.db'}"
        engine = make_engine(url)
        try:
            yield StoreDB("sqlite", url, engine)
        finally:
            await engine.dispose()
        return

    reason = await _pg_skip_reason()
    if reason:
        pytest.skip(reason)
    schema = f"t_{secrets.token_hex(6)}"
    admin = make_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    connect_args = {"server_settings": {"search_path": schema}}
    engine = make_engine(PG_URL, connect_args=connect_args)
    try:
        yield StoreDB("postgresql", PG_URL, engine, connect_args)
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_db(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[StoreDB]:
    async with _database(request.param, tmp_path) as db:
        await migrate(db.engine)
        yield db


@pytest.fixture(params=["sqlite", "postgresql"])
async def blank_db(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[StoreDB]:
    """A database with no schema, for tests of the migrations themselves."""
    async with _database(request.param, tmp_path) as db:
        yield db


@pytest.fixture(params=["sqlite", "postgresql"])
async def gateway_store(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[str]:
    """A database_url for whole gateways (in this process or as `smppgw serve`): an
    SQLite file, or a PostgreSQL database of its own, created and migrated (as an
    operator runs `smppgw db upgrade`: nodes do not migrate PostgreSQL themselves) and
    dropped after the test (a gateway process cannot be handed a search_path)."""
    if request.param == "sqlite":
        (tmp_path / "db").mkdir(exist_ok=True)
        yield f"sqlite+aiosqlite:///{tmp_path / 'db' / 'smppgw.db'}"
        return
    reason = await _pg_skip_reason()
    if reason:
        pytest.skip(reason)
    name = f"gw_{secrets.token_hex(6)}"
    server = PG_URL.replace("+asyncpg", "")
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    try:
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
        await migrate(url)
        yield url
    finally:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


# The claim lease of make_writer's writers unless a test gives its own.
LEASE = timedelta(seconds=60)
MakeWriter = Callable[..., Awaitable[StoreWriter]]


@pytest.fixture
async def make_writer(store_db: StoreDB) -> AsyncIterator[MakeWriter]:
    """`await make_writer(**options)`: a started StoreWriter on the test store, stopped
    at the end (node "node-1" and a LEASE claim unless given). Several stand for
    several nodes (their own connections)."""
    made: list[StoreWriter] = []

    async def make(**options: Any) -> StoreWriter:
        options.setdefault("node", "node-1")
        options.setdefault("claim_lease", LEASE)
        writer = StoreWriter(store_db.url, connect_args=store_db.connect_args, **options)
        await writer.start()
        made.append(writer)
        return writer

    yield make
    for made_writer in made:
        await made_writer.stop()


@pytest.fixture
async def books_balance(store_db: StoreDB) -> AsyncIterator[None]:
    """The money invariants, checked after the test (use with pytest.mark.usefixtures)."""
    yield
    assert await ledger_violations(store_db.engine) == []


def new_message(
    message_id: int,
    account_id: int,
    *,
    cost: int = 5,
    created_at: datetime | None = None,
    **overrides: Any,
) -> NewMessage:
    """A plausible MT message row; override any field by name."""
    values: dict[str, Any] = {
        "id": message_id,
        "account_id": account_id,
        "direction": "MT",
        "source_addr": "ACME",
        "source_ton": 5,
        "source_npi": 0,
        "dest_addr": "33612345678",
        "dest_ton": 1,
        "dest_npi": 1,
        "esm_class": 0,
        "registered_delivery": 1,
        "data_coding": 0,
        "body": b"hello",
        "segments": 1,
        "cost": cost,
        "status": "ACCEPTED",
        "created_at": created_at or datetime.now(UTC),
    }
    values.update(overrides)
    return NewMessage(**values)


async def run_alembic(db: StoreDB, action: str, target: str) -> None:
    """`alembic upgrade|downgrade TARGET` on a test database, as the migration tests
    step through revisions."""
    cfg = alembic_config()

    def run(sync_conn: sa.Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        getattr(command, action)(cfg, target)

    async with writer(db.engine).begin() as conn:
        await conn.run_sync(run)
