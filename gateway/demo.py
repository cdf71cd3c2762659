"""The demo account a fresh install starts with, so the first bind needs no admin step.

It is created through the admin socket's own `account.create`, as an operator would,
so it is validated and audited like any other account. Only on the embedded default
store (no database_url): a store an operator configured (shared PostgreSQL above all)
gets no account with a known-to-be-printed password and free credits.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.settings import Settings
    from gateway.accounts import AccountDirectory
    from gateway.admin.server import AdminServer

DEMO_CREDITS = "1000"
DEMO_IPS = ["127.0.0.1", "::1"]
# Enabled at once, so the first submit works: one alphanumeric, one international.
DEMO_SENDERS = ["ovh", "ovh123", "33700000000"]


async def ensure_demo_account(
    admin: AdminServer, settings: Settings, directory: AccountDirectory
) -> dict | None:
    """Create the demo account on an empty embedded store; return it (with its password)
    if created."""
    if not settings.create_demo_account or settings.database_url is not None:
        return None
    if len(directory):
        return None
    request = {
        "op": "account.create",
        "args": {"credits": DEMO_CREDITS, "allowed_ips": DEMO_IPS, "senders": DEMO_SENDERS},
    }
    answer = await admin.execute(json.dumps(request).encode(), actor="serve:demo")
    if not answer["ok"]:
        raise RuntimeError(f"could not create the demo account: {answer['error']}")
    return answer["result"]
