"""The schema Alembic builds is the schema tables.py declares, on both engines."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import store_fixtures
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from store_fixtures import StoreDB

from store import tables
from store.engine import alembic_config, make_engine, migrate, writer
from store.errors import StoreError
from store.outbox import OutboxStore
from store.tables import UTCDateTime, metadata

REPO = Path(__file__).resolve().parent.parent
store_db = store_fixtures.store_db
blank_db = store_fixtures.blank_db


def _diff(sync_conn: sa.Connection, target: sa.MetaData) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(sync_conn), target))


async def test_migrated_schema_matches_metadata(store_db: StoreDB) -> None:
    async with store_db.engine.connect() as conn:
        assert await conn.run_sync(_diff, metadata) == []


async def test_comparison_would_notice_a_missing_column(store_db: StoreDB) -> None:
    # Guards the test above against comparing nothing with nothing.
    changed = sa.MetaData()
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["accounts"].append_column(sa.Column("nickname", sa.String(20)))
    async with store_db.engine.connect() as conn:
        diff = await conn.run_sync(_diff, changed)
    assert [d[0] for d in diff] == ["add_column"]


async def test_migrate_twice_is_a_no_op(store_db: StoreDB) -> None:
    await migrate(store_db.engine)
    async with store_db.engine.connect() as conn:
        version = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert sorted(v for (v,) in version) == sorted(heads)


async def test_migrate_accepts_a_url(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'a' / 'b' / 'store.db'}"
    await migrate(url)
    engine = make_engine(url)
    async with engine.connect() as conn:
        assert await conn.run_sync(_diff, metadata) == []
    await engine.dispose()


async def test_sqlite_connections_get_wal_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="normal")
    async with engine.connect() as conn:
        pragmas = {
            name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    await engine.dispose()
    assert pragmas == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1,
                       "busy_timeout": 5000}


@pytest.mark.parametrize(
    "url",
    ["mysql+aiomysql://u@h/db", "sqlite:///x.db", "postgresql://u@h/db", "not a url",
     "sqlite+aiosqlite:///:memory:"],
)
def test_make_engine_refuses_unsupported_urls(url: str) -> None:
    with pytest.raises(StoreError, match="store"):
        make_engine(url)


def test_make_engine_refuses_unknown_synchronous_mode(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="sqlite_synchronous"):
        make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="SOMETIMES")


def test_build_ships_the_migrations(tmp_path: Path) -> None:
    # build_py is the step that decides which files go into a wheel; running it alone
    # avoids needing the `wheel` package in the test environment.
    pytest.importorskip("setuptools")
    subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q",
         "build_py", "--build-lib", str(tmp_path)],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    shipped = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.py")}
    assert {"store/migrations/env.py", "store/migrations/versions/0001_initial.py"} <= shipped


async def _upgrade(db: StoreDB, target: str) -> None:
    cfg = alembic_config()

    def run(sync_conn: sa.Connection) -> None:
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, target)

    async with writer(db.engine).begin() as conn:
        await conn.run_sync(run)


# upstream_attempts as migration 0003 made it (gone from store.tables since 0006).
_attempts_0005 = sa.Table(
    "upstream_attempts", sa.MetaData(),
    sa.Column("message_id", sa.BigInteger, primary_key=True),
    sa.Column("attempts", sa.Integer),
    sa.Column("in_flight", sa.Boolean),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("last_error", sa.String(64)),
)


async def test_0006_moves_the_outbox_scheduling_onto_the_messages(blank_db: StoreDB) -> None:
    await _upgrade(blank_db, "0005")
    t0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
    base = {"account_id": 1, "direction": "MT", "source_addr": "ACME", "source_ton": 5,
            "source_npi": 0, "dest_addr": "336", "dest_ton": 1, "dest_npi": 1, "esm_class": 0,
            "registered_delivery": 0, "data_coding": 0, "body": b"x", "segments": 1,
            "cost": 0, "status": "ACCEPTED", "created_at": t0, "schedule_at": None}
    async with blank_db.engine.begin() as conn:
        await conn.execute(tables.accounts.insert().values(id=1, system_id="acme",
                                                           password_hash="h"))
        await conn.execute(tables.messages.insert(), [
            {**base, "id": 1},  # claimed by a node
            {**base, "id": 2},  # backing off after an error
            {**base, "id": 3},  # never touched
            {**base, "id": 4, "schedule_at": t0 + timedelta(hours=2)},
            {**base, "id": 5, "status": "ENROUTE"},  # gone upstream: its row was dead
        ])
        await conn.execute(_attempts_0005.insert(), [
            {"message_id": 1, "attempts": 2, "in_flight": True,
             "next_attempt_at": t0 + timedelta(seconds=60), "claimed_by": "node-1",
             "last_error": "ESME_RTHROTTLED"},
            {"message_id": 2, "attempts": 1, "in_flight": False,
             "next_attempt_at": t0 + timedelta(seconds=30), "claimed_by": "node-1",
             "last_error": "ESME_RSYSERR"},
            {"message_id": 5, "attempts": 3, "in_flight": True,
             "next_attempt_at": t0, "claimed_by": "node-2", "last_error": None},
        ])
    await _upgrade(blank_db, "heads")
    async with blank_db.engine.connect() as conn:
        rows = (await conn.execute(
            sa.select(tables.messages.c.id, tables.messages.c.attempts,
                      tables.messages.c.next_attempt_at, tables.messages.c.claimed_by,
                      tables.messages.c.last_error).order_by(tables.messages.c.id)
        )).all()
        assert [tuple(r) for r in rows] == [
            (1, 2, t0 + timedelta(seconds=60), "node-1", "ESME_RTHROTTLED"),
            (2, 1, t0 + timedelta(seconds=30), None, "ESME_RSYSERR"),
            (3, 0, t0, None, None),
            (4, 0, t0 + timedelta(hours=2), None, None),
            (5, 0, None, None, None),
        ]
        assert "upstream_attempts" not in await conn.run_sync(
            lambda c: sa.inspect(c).get_table_names())
        assert await conn.run_sync(_diff, metadata) == []
    # What the outbox claims at t0 + 45 s: the one backing off and the untouched one.
    claimed = await OutboxStore(blank_db.engine).claim("node-3", t0 + timedelta(seconds=45),
                                                       timedelta(seconds=60), 10)
    assert [r["id"] for r in claimed] == [3, 2]
