"""The one way tests start a gateway: whole, in-process, on free loopback ports over a
real SQLite file (or the PostgreSQL a test names), stopped when the test ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from gw_helpers import MakeGateway, gateway_settings

from gateway.app import Gateway


@pytest.fixture
async def make_gateway(tmp_path):
    """`await make_gateway(**settings)`: a started gateway with these settings over
    gw_helpers' test defaults. `state_dir=` reuses a state directory (a restart);
    `start=False` gives it unstarted. Every gateway made is stopped at the end."""
    made: list[Gateway] = []

    async def make(*, state_dir: Path | None = None, start: bool = True, **overrides) -> Gateway:
        state = state_dir or tmp_path / f"gw{len(made)}"
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
