"""Helpers for tests that run a whole gateway: settings on free ports, admin calls."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from config.settings import Settings
from gateway.app import Gateway

# What the `make_gateway` fixture of conftest.py gives: `await make_gateway(**settings)`.
MakeGateway = Callable[..., Awaitable[Gateway]]


def gateway_settings(state_dir: Path, **overrides) -> Settings:
    values = {
        "state_dir": state_dir,
        "smpp_host": "127.0.0.1",
        "smpp_port": 0,
        "metrics_port": 0,
        "web_port": 0,
        "simulator_delay_ms": 20.0,
        "create_demo_account": False,
        "dlr_retry_interval": 1.0,
        # Tests send bursts; the ones about flow limits set their own.
        "default_throughput": 100_000.0,
    }
    values.update(overrides)
    return Settings(**values)


class AdminFailed(Exception):
    pass


async def admin(gw: Gateway, op: str, **args) -> dict | list:
    """One request over the gateway's real admin socket; raises AdminFailed on ok=false."""
    reader, writer = await asyncio.open_unix_connection(gw.endpoints.admin_socket)
    try:
        writer.write(json.dumps({"op": op, "args": args}).encode() + b"\n")
        await writer.drain()
        answer = json.loads(await reader.readline())
    finally:
        writer.close()
    if not answer["ok"]:
        raise AdminFailed(answer["error"])
    return answer["result"]


# Enabled senders every test account gets, one of each kind the tests submit from.
TEST_SENDERS = (
    {"address": "ovh123", "kind": "alphanumeric"},
    {"address": "ovh", "kind": "alphanumeric"},
    {"address": "33700000000", "kind": "numeric"},
)


async def new_account(
    gw: Gateway, credits: str = "1000", ips=("127.0.0.1",), **extra
) -> dict:
    """An account over the admin socket, with TEST_SENDERS enabled; `extra` goes to
    account.create as is (contact_email, settings, senders...)."""
    args = {"credits": credits, "allowed_ips": list(ips), "senders": list(TEST_SENDERS)}
    args.update(extra)
    return await admin(gw, "account.create", **args)


async def history_statuses(gw: Gateway, system_id: str) -> dict[str, int]:
    """How many of the account's messages the history holds, by status."""
    account = gw.accounts.get(system_id)
    rows = await gw.messages.query(account.id, limit=1_000_000)
    return dict(Counter(row["status"] for row in rows))
