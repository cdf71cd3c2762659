"""Engine factory and schema migration for the two supported back ends.

SQLite (aiosqlite, WAL) is the embedded default, its file created private (0600, in a
0700 directory when the gateway makes it: store.files); PostgreSQL (asyncpg) is for several
gateway nodes sharing one store. Alembic owns the schema on both engines: `migrate()`
applies the migrations shipped in store/migrations under a lock (so nodes starting together
migrate once), `schema_state()` and `migrations()` tell where a store stands (for
`smppgw db` and for a node that must not migrate itself).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from store.errors import SchemaNotAtHead, StoreError
from store.files import private_dir, private_sqlite_file

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_SQLITE_BUSY_TIMEOUT_MS = 5000  # how long a statement waits for a lock held elsewhere
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
            f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}",
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


# The key of the PostgreSQL advisory lock held while migrating: any constant the
# application owns ("smppgw" in ASCII, 0x736d70706777), the same on every node.
MIGRATION_LOCK_KEY = 0x736D70706777
# How long a migration waits for SQLite's write lock (a gateway on the file holds it a
# few milliseconds at a time; another migration, as long as that takes).
_SQLITE_MIGRATION_WAIT_MS = 300_000


@dataclass(frozen=True)
class Migration:
    """One migration shipped in store/migrations."""

    revision: str
    description: str  # the first paragraph of its docstring, on one line
    down_revisions: tuple[str, ...]


@dataclass(frozen=True)
class SchemaState:
    """Where a store's schema stands against the migrations this code ships."""

    current: tuple[str, ...]  # the store's alembic_version rows; () on an empty store
    heads: tuple[str, ...]  # what this code needs
    applied: frozenset[str]  # every migration the store has (current and its ancestors)
    unknown: tuple[str, ...]  # current revisions this code does not ship (a newer schema)

    @property
    def at_head(self) -> bool:
        return set(self.current) == set(self.heads)

    @property
    def empty(self) -> bool:
        return not self.current

    @property
    def newer(self) -> bool:
        return bool(self.unknown)

    @property
    def pending(self) -> tuple[str, ...]:
        """The migrations `migrate()` would apply, oldest first (none on a newer schema)."""
        if self.newer:
            return ()
        return tuple(m.revision for m in migrations() if m.revision not in self.applied)


@dataclass(frozen=True)
class SchemaUpgrade:
    """What `migrate()` did: the store's revisions before and after."""

    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def applied(self) -> bool:
        return set(self.before) != set(self.after)


def revisions_text(revisions: Iterable[str]) -> str:
    """Revisions as an operator reads them: "0011", "0010+0011", or "empty"."""
    return "+".join(sorted(revisions)) or "empty"


@functools.cache
def _script() -> ScriptDirectory:
    # Parsed once per process: the migrations shipped do not change while it runs, and
    # reading them costs ~50 ms at every start (hundreds of starts in the test suite).
    return ScriptDirectory.from_config(alembic_config())


def head_revisions() -> tuple[str, ...]:
    """The revision(s) this code's schema is at once every migration is applied."""
    return tuple(sorted(_script().get_heads()))


def migrations() -> list[Migration]:
    """Every migration shipped, oldest first: each after the ones it builds on, and in
    revision order where branches leave the choice."""
    waiting: dict[str, Migration] = {}
    for script in _script().walk_revisions():
        down = script.down_revision
        downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
        waiting[script.revision] = Migration(
            script.revision, " ".join((script.doc or "").split()), downs)
    ordered: list[Migration] = []
    done: set[str] = set()
    while waiting:
        ready = min(rev for rev, m in waiting.items() if done.issuperset(m.down_revisions))
        ordered.append(waiting.pop(ready))
        done.add(ready)
    return ordered


def _schema_state(sync_conn: sa.Connection) -> SchemaState:
    script = _script()
    current = tuple(sorted(MigrationContext.configure(sync_conn).get_current_heads()))
    known = {m.revision for m in script.walk_revisions()}
    unknown = tuple(rev for rev in current if rev not in known)
    applied: set[str] = set()
    if current and not unknown:
        applied = {s.revision for s in script.iterate_revisions(current, "base")}
    return SchemaState(current, tuple(sorted(script.get_heads())), frozenset(applied), unknown)


async def schema_state(target: str | AsyncEngine) -> SchemaState:
    """Read the store's schema revision (writes nothing; an empty store reads as empty)."""
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_schema_state)
    finally:
        if isinstance(target, str):
            await engine.dispose()


def _newer_schema(state: SchemaState) -> SchemaNotAtHead:
    return SchemaNotAtHead(
        state,
        f"the store's schema is at {revisions_text(state.current)}, newer than this smppgw "
        f"knows (it ships up to {revisions_text(state.heads)}); run the smppgw version that "
        "migrated it (or a newer one)",
    )


def require_schema_at_head(state: SchemaState) -> None:
    """SchemaNotAtHead, with what the operator should do, unless the store is at head."""
    if state.at_head:
        return
    if state.newer:
        raise _newer_schema(state)
    needs = revisions_text(state.heads)
    stands = (" has no schema yet" if state.empty
              else f"'s schema is at {revisions_text(state.current)}")
    raise SchemaNotAtHead(
        state,
        f"the store{stands} but this smppgw needs {needs}; run `smppgw db upgrade` "
        "(once, on one node) and start again",
    )


async def migrate(target: str | AsyncEngine, *, revision: str = "heads") -> SchemaUpgrade:
    """Apply the pending migrations (up to `revision`, every head by default) against a
    store URL or an engine already made; returns the revisions before and after.

    Nodes starting together migrate once: the migration runs in one transaction that
    first takes a lock (PostgreSQL: an advisory lock; SQLite: the write lock, waited for
    as long as another migration takes), and reads the store's revision only then.
    Raises SchemaNotAtHead on a schema newer than this code, touching nothing.
    """
    engine = make_engine(target) if isinstance(target, str) else target
    cfg = alembic_config()

    def _upgrade(sync_conn: sa.Connection) -> SchemaUpgrade:
        if sync_conn.dialect.name == "postgresql":
            # Held until this transaction ends; a second node waits here, then finds
            # the schema at head and applies nothing.
            sync_conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        before = _schema_state(sync_conn)
        if before.newer:
            raise _newer_schema(before)
        if before.at_head and revision == "heads":
            return SchemaUpgrade(before.current, before.current)  # the common start
        # env.py picks the connection up from here instead of opening its own.
        cfg.attributes["connection"] = sync_conn
        # "heads": independent branches (one per feature) are all applied.
        command.upgrade(cfg, revision)
        after = tuple(sorted(MigrationContext.configure(sync_conn).get_current_heads()))
        return SchemaUpgrade(before.current, after)

    try:
        async with writer(engine).connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # Before BEGIN IMMEDIATE (the first statement begins): the write lock is
                # the migration lock, and a migration may hold it for a while.
                await _sqlite_busy_timeout(conn, _SQLITE_MIGRATION_WAIT_MS)
            try:
                async with conn.begin():
                    return await conn.run_sync(_upgrade)
            finally:
                if sqlite:
                    await _sqlite_busy_timeout(conn, _SQLITE_BUSY_TIMEOUT_MS)
    finally:
        if isinstance(target, str):
            await engine.dispose()


async def _sqlite_busy_timeout(conn: Any, milliseconds: int) -> None:
    # Through the driver's connection, outside any transaction SQLAlchemy would begin.
    def _set(sync_conn: sa.Connection) -> None:
        cursor = sync_conn.connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(milliseconds)}")
        cursor.close()

    await conn.run_sync(_set)
