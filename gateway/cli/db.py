"""`smppgw db upgrade|current|history`: the store's schema, as an operator reads and
migrates it. A PostgreSQL store is not migrated by the nodes themselves (auto_migrate is
off there): `smppgw db upgrade` is run once, on one node, before they start.

Settings are loaded as `smppgw serve` loads them; nothing printed shows a URL's password.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.loader import load_settings
from config.redaction import redact
from config.settings import ConfigError, Settings
from gateway.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from store.errors import StoreError

if TYPE_CHECKING:
    from store.engine import SchemaState

UPGRADE_HINT = "run `smppgw db upgrade`"


class _Engine:
    """store.engine, imported when a `db` command runs: SQLAlchemy and Alembic cost
    about 0.7 s to import, which every other `smppgw` command should not pay."""

    def __getattr__(self, name: str) -> Any:
        import store.engine

        return getattr(store.engine, name)


engine = _Engine()


def add_parser(commands: argparse._SubParsersAction) -> None:
    db = commands.add_parser("db", help="the store's schema: upgrade, current, history")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    for name, helptext, func in (
        ("upgrade", "apply the pending migrations (once, on one node)", _upgrade),
        ("current", "the store's revision; exit 1 unless at this smppgw's head", _current),
        ("history", "every migration this smppgw ships, and which the store has", _history),
    ):
        action = actions.add_parser(name, help=helptext, description=helptext)
        action.add_argument("--config", type=Path, help="TOML settings file (as for serve)")
        action.add_argument("--state-dir", type=Path,
                            help="state directory (its smppgw.db when no database_url)")
        action.add_argument("--database-url", help="store URL (overrides the settings)")
        action.set_defaults(func=_runner(func))


Action = Callable[[Settings], Coroutine[Any, Any, int]]


def _runner(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        overrides = {"state_dir": args.state_dir, "database_url": args.database_url}
        try:
            settings = load_settings(args.config, overrides=overrides)
        except ConfigError as exc:
            print(f"smppgw: configuration error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        url = settings.effective_database_url
        print(f"smppgw: store {redact(url)}")
        try:
            return asyncio.run(action(settings))
        except StoreError as exc:
            print(f"smppgw: {redact(str(exc))}", file=sys.stderr)
            return EXIT_ERROR
        except Exception as exc:  # noqa: BLE001  (driver and network errors alike)
            print(f"smppgw: cannot reach the store {redact(url)}: {_reason(exc)}",
                  file=sys.stderr)
            return EXIT_ERROR

    return run


def _reason(exc: BaseException) -> str:
    """The driver's own words, on one line and without a password (SQLAlchemy wraps
    them with the SQL and a link)."""
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return redact(lines[0] if lines else type(inner).__name__)


def _absent_file(settings: Settings) -> Path | None:
    """The SQLite file when it does not exist yet: read as an empty store, not created
    by merely looking."""
    url = engine.store_url(settings.effective_database_url)
    if url.drivername != "sqlite+aiosqlite":
        return None
    path = engine.sqlite_file(url)
    return None if path.exists() else path


async def _state(settings: Settings) -> SchemaState:
    if _absent_file(settings) is not None:
        heads = engine.head_revisions()
        return engine.SchemaState((), heads, frozenset(), ())
    return await engine.schema_state(settings.effective_database_url)


async def _upgrade(settings: Settings) -> int:
    upgrade = await engine.migrate(settings.effective_database_url)
    if upgrade.applied:
        print(f"smppgw: schema upgraded from {engine.revisions_text(upgrade.before)} "
              f"to {engine.revisions_text(upgrade.after)}")
    else:
        print(f"smppgw: schema already at head {engine.revisions_text(upgrade.after)}")
    return EXIT_OK


async def _current(settings: Settings) -> int:
    state = await _state(settings)
    head = engine.revisions_text(state.heads)
    if state.at_head:
        print(f"smppgw: schema at {head} (head)")
        return EXIT_OK
    if state.newer:
        print(f"smppgw: schema at {engine.revisions_text(state.current)}, newer than this "
              f"smppgw's head {head}: run the smppgw version that migrated it")
        return EXIT_ERROR
    where = "empty (no migration applied)" if state.empty else (
        f"at {engine.revisions_text(state.current)}")
    print(f"smppgw: schema {where}, behind this smppgw's head {head} "
          f"(pending: {', '.join(state.pending)}); {UPGRADE_HINT}")
    return EXIT_ERROR


async def _history(settings: Settings) -> int:
    state = await _state(settings)
    heads = set(state.heads)
    for migration in engine.migrations():
        if state.newer:
            mark = "?"
        else:
            mark = "applied" if migration.revision in state.applied else "pending"
        tag = " (head)" if migration.revision in heads else ""
        print(f"{migration.revision}  {mark:<7}  {migration.description}{tag}")
    if state.newer:
        print(f"smppgw: the store is at {engine.revisions_text(state.current)}, which this smppgw "
              "does not ship")
    return EXIT_OK
