"""The store's schema tools: `smppgw db upgrade|current|history`, a node that finds its
schema behind (or newer) and refuses to start rather than migrate a shared PostgreSQL,
nodes migrating one store at once, and the demo account only on the embedded default."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
import store_fixtures
from alembic.script import ScriptDirectory
from gw_helpers import MakeGateway
from store_fixtures import PG_URL, StoreDB

from gateway.demo import DEMO_CREDITS, ensure_demo_account
from store.engine import MIGRATIONS_DIR, alembic_config, make_engine, migrate
from store.errors import SchemaNotAtHead

blank_db = store_fixtures.blank_db
gateway_store = store_fixtures.gateway_store

SMPPGW = [sys.executable, "-m", "gateway.cli"]
SECRET = "s3cret-db"

_SCRIPT = ScriptDirectory.from_config(alembic_config())
HEAD = "+".join(sorted(_SCRIPT.get_heads()))


def _below_head() -> str:
    """A revision the head builds on: a store migrated by an older smppgw."""
    (head,) = _SCRIPT.get_heads()
    down = _SCRIPT.get_revision(head).down_revision
    return down if isinstance(down, str) else min(down)


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMPPGW_")}
    env.update({f"SMPPGW_{name.upper()}": value for name, value in settings.items()})
    return env


def smppgw(*args: str, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SMPPGW, *args], capture_output=True, text=True,
                          env=_env(**settings), timeout=120, check=False)


def _versions(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                rows = await conn.exec_driver_sql("SELECT version_num FROM alembic_version")
                return {row[0] for row in rows}
        finally:
            await engine.dispose()

    return asyncio.run(read())


@asynccontextmanager
async def _empty_pg_database() -> AsyncIterator[str]:
    """A PostgreSQL database of its own with no schema at all (a `smppgw serve` cannot be
    handed a search_path), reached with a password in its URL; skip without a server."""
    server = sa.make_url(PG_URL).set(drivername="postgresql")
    try:
        conn = await asyncpg.connect(server.render_as_string(False), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {exc!r}")
    name = f"dbtools_{secrets.token_hex(6)}"
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    # Any password passes a server that trusts local connections; it must never show.
    url = sa.make_url(PG_URL).set(database=name, password=SECRET)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(server.render_as_string(False), timeout=3)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()


# --- smppgw db ---------------------------------------------------------------------------


def test_db_current_says_behind_until_db_upgrade_brings_a_fresh_store_to_head(
    tmp_path: Path,
) -> None:
    state = tmp_path / "var"
    before = smppgw("db", "current", "--state-dir", str(state))
    assert before.returncode == 1, before.stderr
    assert f"schema empty (no migration applied), behind this smppgw's head {HEAD}" in before.stdout
    assert "run `smppgw db upgrade`" in before.stdout
    assert not (state / "smppgw.db").exists()  # looking creates nothing

    upgraded = smppgw("db", "upgrade", "--state-dir", str(state))
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"smppgw: schema upgraded from empty to {HEAD}\n" in upgraded.stdout
    assert _versions(f"sqlite+aiosqlite:///{state / 'smppgw.db'}") == set(HEAD.split("+"))

    again = smppgw("db", "upgrade", "--state-dir", str(state))
    assert again.returncode == 0 and f"schema already at head {HEAD}" in again.stdout

    after = smppgw("db", "current", "--state-dir", str(state))
    assert after.returncode == 0, after.stdout + after.stderr
    assert f"smppgw: schema at {HEAD} (head)" in after.stdout


def test_db_upgrade_says_from_which_revision_to_which(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'smppgw.db'}"
    old = _below_head()
    asyncio.run(migrate(url, revision=old))
    current = smppgw("db", "current", database_url=url)
    assert current.returncode == 1
    assert f"schema at {old}, behind this smppgw's head {HEAD}" in current.stdout
    upgraded = smppgw("db", "upgrade", database_url=url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"smppgw: schema upgraded from {old} to {HEAD}" in upgraded.stdout


def test_db_history_lists_every_migration_file_and_which_the_store_has(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'smppgw.db'}"
    asyncio.run(migrate(url, revision="0001"))
    shipped = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = re.search(r'^revision = "([^"]+)"', path.read_text(), re.MULTILINE)
        assert found, path
        shipped.add(found.group(1))
    history = smppgw("db", "history", database_url=url)
    assert history.returncode == 0, history.stderr
    rows = dict(re.findall(r"^(\S+)  (applied|pending) ", history.stdout, re.MULTILINE))
    assert set(rows) == shipped
    assert rows["0001"] == "applied"
    assert {rev for rev, mark in rows.items() if mark == "applied"} == {"0001"}
    assert "Initial schema: accounts" in history.stdout
    assert re.search(rf"^{re.escape(HEAD)} .*\(head\)$", history.stdout, re.MULTILINE)


def test_db_current_on_a_store_it_cannot_reach_says_so_without_password_or_traceback(
    tmp_path: Path,
) -> None:
    port = _closed_port()
    url = f"postgresql+asyncpg://gw:{SECRET}@127.0.0.1:{port}/smppgw"
    result = smppgw("db", "current", database_url=url)
    assert result.returncode == 1
    assert f"cannot reach the store postgresql+asyncpg://gw:***@127.0.0.1:{port}/smppgw" \
        in result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed, here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_db_upgrade_refuses_a_schema_newer_than_this_smppgw(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'smppgw.db'}"
    asyncio.run(migrate(url))
    asyncio.run(_set_version(url, "9999"))
    upgraded = smppgw("db", "upgrade", database_url=url)
    assert upgraded.returncode == 1
    assert "the store's schema is at 9999, newer than this smppgw knows" in upgraded.stderr
    assert _versions(url) == {"9999"}
    current = smppgw("db", "current", database_url=url)
    assert current.returncode == 1 and "newer than this smppgw's head" in current.stdout


async def _set_version(url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("UPDATE alembic_version SET version_num = ?"
                                       if url.startswith("sqlite")
                                       else "UPDATE alembic_version SET version_num = $1",
                                       (revision,))
    finally:
        await engine.dispose()


# --- a node and its schema -----------------------------------------------------------------


def _serve(state: Path, database_url: str) -> subprocess.CompletedProcess:
    """`smppgw serve` expected to stop by itself (it refuses to start)."""
    return subprocess.run(
        [*SMPPGW, "serve", "--state-dir", str(state), "--smpp-port", "0",
         "--metrics-port", "-1", "--web-port", "-1"],
        capture_output=True, text=True, env=_env(database_url=database_url), timeout=120,
        check=False)


@pytest.mark.parametrize("schema", ["empty", "behind"])
async def test_postgresql_node_refuses_to_start_on_a_schema_behind_and_says_what_to_run(
    tmp_path: Path, schema: str
) -> None:
    async with _empty_pg_database() as url:
        if schema == "behind":
            await migrate(url, revision=_below_head())
            stands = f"the store's schema is at {_below_head()}"
        else:
            stands = "the store has no schema yet"
        refused = await asyncio.to_thread(_serve, tmp_path / "var", url)
        assert refused.returncode == 1
        assert (f"smppgw: cannot start: {stands} but this smppgw needs {HEAD}; run "
                "`smppgw db upgrade` (once, on one node) and start again") in refused.stderr
        assert "ready" not in refused.stdout and "Traceback" not in refused.stderr
        assert SECRET not in refused.stdout + refused.stderr
        # It did not migrate: the schema is as it was.
        if schema == "behind":
            assert await asyncio.to_thread(_versions, url) == {_below_head()}

        upgraded = await asyncio.to_thread(smppgw, "db", "upgrade", database_url=url)
        assert upgraded.returncode == 0, upgraded.stderr
        assert f"to {HEAD}" in upgraded.stdout and SECRET not in upgraded.stdout


async def test_node_refuses_a_schema_newer_than_it_knows_even_with_auto_migrate(
    make_gateway: MakeGateway, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store' / 'smppgw.db'}"
    await migrate(url)
    await _set_version(url, "9999")
    gw = await make_gateway(database_url=url, start=False)
    assert gw.settings.effective_auto_migrate
    with pytest.raises(SchemaNotAtHead, match="newer than this smppgw knows"):
        await gw.start()


async def test_postgresql_node_with_auto_migrate_on_migrates_its_store(
    make_gateway: MakeGateway,
) -> None:
    async with _empty_pg_database() as url:
        gw = await make_gateway(database_url=url, auto_migrate=True)
        assert gw.settings.embedded_store is False
        assert await asyncio.to_thread(_versions, url) == set(HEAD.split("+"))


@pytest.mark.parametrize("blank_db", ["sqlite", "postgresql"], indirect=True)
async def test_two_nodes_migrating_one_fresh_store_at_once_migrate_it_once(
    blank_db: StoreDB,
) -> None:
    other = blank_db.other_engine()
    try:
        upgrades = await asyncio.gather(migrate(blank_db.engine), migrate(other))
    finally:
        await other.dispose()
    heads = tuple(HEAD.split("+"))
    assert sorted(u.before for u in upgrades) == [(), heads]  # one migrated, one waited
    assert all(u.after == heads for u in upgrades)
    async with blank_db.engine.connect() as conn:
        rows = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).all()
    assert sorted(row[0] for row in rows) == sorted(heads)


# --- the demo account ----------------------------------------------------------------------


async def test_demo_account_is_created_on_the_embedded_default_store(
    make_gateway: MakeGateway,
) -> None:
    gw = await make_gateway(create_demo_account=True)
    assert gw.settings.database_url is None
    demo = await ensure_demo_account(gw.admin, gw.settings, gw.accounts)
    assert demo is not None and demo["password"]
    assert demo["balance"].split(".")[0] == DEMO_CREDITS
    # Once: a second start finds the account there.
    assert await ensure_demo_account(gw.admin, gw.settings, gw.accounts) is None


@pytest.mark.parametrize("gateway_store", ["sqlite", "postgresql"], indirect=True)
async def test_no_demo_account_on_a_configured_store(
    make_gateway: MakeGateway, gateway_store: str
) -> None:
    gw = await make_gateway(database_url=gateway_store, create_demo_account=True)
    assert await ensure_demo_account(gw.admin, gw.settings, gw.accounts) is None
    assert len(gw.accounts) == 0


async def test_a_node_that_migrates_logs_from_which_revision_to_which_and_only_then(
    make_gateway: MakeGateway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store' / 'smppgw.db'}"
    await migrate(url, revision=_below_head())
    caplog.set_level(logging.INFO, logger="gateway.app")
    first = await make_gateway(database_url=url)
    upgraded = [r.getMessage() for r in caplog.records if "schema upgraded" in r.getMessage()]
    assert upgraded == [f"schema upgraded from {_below_head()} to {HEAD}"]
    await first.stop()
    caplog.clear()
    await make_gateway(database_url=url)
    assert not [r for r in caplog.records if "schema upgraded" in r.getMessage()]
