"""The demo account a fresh install starts with, so the first bind needs no admin step."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.app import Gateway

DEMO_CREDITS = "1000"
DEMO_IPS = ["127.0.0.1", "::1"]
# Enabled at once, so the first submit works: one alphanumeric, one international.
DEMO_SENDERS = ["ovh", "ovh123", "33700000000"]


async def ensure_demo_account(gateway: Gateway) -> dict | None:
    """Create the demo account on an empty store; return it (with its password) if created."""
    if not gateway.settings.create_demo_account or len(gateway.accounts):
        return None
    request = {
        "op": "account.create",
        "args": {"credits": DEMO_CREDITS, "allowed_ips": DEMO_IPS, "senders": DEMO_SENDERS},
    }
    answer = await gateway.admin.execute(json.dumps(request).encode(), actor="serve:demo")
    if not answer["ok"]:
        raise RuntimeError(f"could not create the demo account: {answer['error']}")
    return answer["result"]
