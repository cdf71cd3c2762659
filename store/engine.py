"""Engine factory and schema migration for the two supported back ends.

SQLite (aiosqlite, WAL) is the embedded default, its file created private (0600, in a
0700 directory when the gateway makes it: store.files); PostgreSQL (asyncpg) is for several
gateway nodes sharing one store. `migrate()` runs the Alembic migrations shipped in
store/migrations, so the schema is owned by Alembic on both engines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from store.errors import StoreError
from store.files import private_dir, private_sqlite_file

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_SUPPORTED = "sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db"

# Execution option read by the SQLite "begin" hook; see writer().
_SQLITE_BEGIN = "smppgw_sqlite_begin"


def make_engine(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    connect_args: dict[str, Any] | None = None,
) -> AsyncEngine:
    """Create the AsyncEngine for a store URL.

    `connect_args` is passed to the driver (e.g. asyncpg `server_settings`).
    Raises StoreError for anything but sqlite+aiosqlite and postgresql+asyncpg.
    """
    parsed = store_url(url)
    if parsed.drivername == "sqlite+aiosqlite":
        return _make_sqlite_engine(parsed, sqlite_synchronous, connect_args or {})
    return create_async_engine(
        parsed,
        pool_pre_ping=True,
        # The hot path's writes go through store.writer's own connection; a handful
        # per node covers the outbox's claims, receipt lookups and admin traffic.
        pool_size=10,
        max_overflow=10,
        pool_recycle=3600,
        connect_args=connect_args or {},
    )


def store_url(url: str) -> sa.URL:
    """Parse a store URL; StoreError unless sqlite+aiosqlite or postgresql+asyncpg."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        # The URL itself is not quoted: it may hold a password (and the store does not
        # import config.redaction). SQLAlchemy's reason names no part of it but the port.
        raise StoreError(f"invalid store URL ({exc}); expected {_SUPPORTED}") from None
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise StoreError(
            f"unsupported store URL scheme {parsed.drivername!r}; expected {_SUPPORTED}"
        )
    return parsed


def asyncpg_dsn(url: sa.URL) -> str:
    """A postgresql+asyncpg store URL as asyncpg.connect takes it (password included),
    for the connections the store opens outside SQLAlchemy."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_synchronous_mode(value: str) -> str:
    """The PRAGMA synchronous value, upper-cased; StoreError for an unknown one."""
    mode = value.upper()
    if mode not in _SQLITE_SYNCHRONOUS:
        raise StoreError(
            f"sqlite_synchronous must be one of {', '.join(_SQLITE_SYNCHRONOUS)}, "
            f"got {mode!r}"
        )
    return mode


def sqlite_file(url: sa.URL) -> Path:
    """The database file of an SQLite store URL (never in memory: WAL and several
    connections need one shared file)."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise StoreError(f"the SQLite store needs a file path, got {url.render_as_string()!r}")
    return Path(database).expanduser()


def _make_sqlite_engine(
    url: sa.URL, synchronous: str, connect_args: dict[str, Any]
) -> AsyncEngine:
    synchronous = sqlite_synchronous_mode(synchronous)
    path = sqlite_file(url)
    # The directory may be the operator's (any path in database_url): created private
    # when missing, left alone otherwise. `smppgw serve` checks the state directory.
    private_dir(path.parent, check_existing=False)
    private_sqlite_file(path)
    engine = create_async_engine(url, connect_args=connect_args)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below): the sqlite3 module's own implicit
        # transactions skip SELECTs, so reads inside a transaction would see no snapshot.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            f"PRAGMA synchronous={synchronous}",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=5000",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Write transactions take the write lock up front (BEGIN IMMEDIATE): a deferred
        # transaction that reads and then writes fails with SQLITE_BUSY, without waiting,
        # when another connection committed in between.
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "")
        conn.exec_driver_sql(f"BEGIN {mode}".rstrip())

    return engine


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) whose transactions start as SQLite write transactions.

    Repositories use it for every transaction that writes. PostgreSQL ignores the option.
    """
    return engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})


def alembic_config() -> Config:
    """An Alembic Config pointing at the migrations shipped inside the package."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


async def migrate(target: str | AsyncEngine) -> None:
    """Run `alembic upgrade heads` against a store URL (or an engine already made)."""
    engine = make_engine(target) if isinstance(target, str) else target
    cfg = alembic_config()

    def _upgrade(sync_conn: sa.Connection) -> None:
        # env.py picks the connection up from here instead of opening its own.
        cfg.attributes["connection"] = sync_conn
        # "heads": independent branches (one per feature, all on 0001) are all applied.
        command.upgrade(cfg, "heads")

    try:
        async with writer(engine).begin() as conn:
            await conn.run_sync(_upgrade)
    finally:
        if isinstance(target, str):
            await engine.dispose()
