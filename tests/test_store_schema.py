"""The schema Alembic builds is the schema tables.py declares, on both engines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import store_fixtures
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from store_fixtures import StoreDB

from store.engine import make_engine, migrate
from store.errors import StoreError
from store.tables import metadata

REPO = Path(__file__).resolve().parent.parent
store_db = store_fixtures.store_db


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

    from store.engine import alembic_config

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
