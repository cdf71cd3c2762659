"""Shared fixtures: a whole gateway on free loopback ports over a real SQLite file."""

from __future__ import annotations

import pytest
from gw_helpers import gateway_settings

from gateway.app import Gateway


@pytest.fixture
async def gateway(tmp_path):
    gw = Gateway(gateway_settings(tmp_path / "state"))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


