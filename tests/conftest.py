"""The one way tests start a gateway: whole, in-process, on free loopback ports over a
real SQLite file (or the PostgreSQL a test names), stopped when the test ends."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest
from gw_helpers import MakeGateway, gateway_settings

from gateway.app import Gateway
from store.engine import make_engine, migrate


@pytest.fixture(scope="session")
def migrated_store(tmp_path_factory) -> Path:
    """An SQLite store migrated to the head once per run: a new gateway's state starts
    as a copy of it (migrating from nothing costs ~0.5 s, a third of a gateway's start,
    times the hundreds of gateways the suite starts). Migrations themselves are tested
    from nothing in the store tests."""
    folder = tmp_path_factory.mktemp("migrated")

    async def build() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{folder / 'work.db'}")
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    asyncio.run(build())
    with sqlite3.connect(folder / "work.db") as conn:  # one file, no WAL beside it
        conn.execute(f"VACUUM INTO '{folder / 'smppgw.db'}'")
    return folder / "smppgw.db"


@pytest.fixture
async def make_gateway(tmp_path, migrated_store):
    """`await make_gateway(**settings)`: a started gateway with these settings over
    gw_helpers' test defaults. `state_dir=` reuses a state directory (a restart);
    `start=False` gives it unstarted. Every gateway made is stopped at the end."""
    made: list[Gateway] = []

    async def make(*, state_dir: Path | None = None, start: bool = True, **overrides) -> Gateway:
        state = state_dir or tmp_path / f"gw{len(made)}"
        if "database_url" not in overrides and not (state / "smppgw.db").exists():
            state.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copyfile(migrated_store, state / "smppgw.db")
            (state / "smppgw.db").chmod(0o600)
        gw = Gateway(gateway_settings(state, **overrides))
        made.append(gw)
        if start:
            await gw.start()
        return gw

    try:
        yield make
    finally:
        for gw in reversed(made):
            await gw.stop()


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> Gateway:
    return await make_gateway()


@pytest.fixture
async def browser():
    """A real headless Chromium (Debian's `chromium`, driven by Playwright through
    executable_path) for the web panel's browser tests (web_helpers.needs_chromium)."""
    playwright_api = pytest.importorskip("playwright.async_api",
                                         reason="playwright not installed")
    from web_helpers import CHROMIUM

    async with playwright_api.async_playwright() as p:
        # --no-sandbox: the suite may run as root (CI containers), where the sandbox cannot.
        launched = await p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()
