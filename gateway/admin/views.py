"""What the operator sees of stored rows: the account record with its settings and the
notes that explain why it cannot bind or submit, and times as ISO 8601 text.

These shapes are the admin socket's JSON answers and the audit log's before/after.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.admin.parsing import MONEY_SETTINGS, SETTINGS
from store.money import format_credits

# Settings kept out of the record: personal data and a credential.
_UNSHOWN_SETTINGS = ("contact_email", "outbind_password")


def settings_view(row: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (column, _) in SETTINGS.items():
        if name in _UNSHOWN_SETTINGS:
            continue
        value = row.get(column)
        if name in MONEY_SETTINGS:
            value = None if value is None else format_credits(value)
        out[name] = value
    return out


def account_view(row: dict, *, bound: int = 0) -> dict[str, Any]:
    """An account row as the operator sees it; `bound` is its number of bound sessions."""
    ips = list(row.get("allowed_ips") or [])
    sender_rows = list(row.get("senders") or [])
    out = {
        "system_id": row["system_id"],
        "status": row["status"],
        "balance": format_credits(row["balance"]),
        "allowed_ips": ips,
        "contact_email": row.get("contact_email"),
        "bound_sessions": bound,
        "senders_enabled": [s["address"] for s in sender_rows if s["state"] == "enabled"],
        "stop_listed": len(row.get("stop_list") or ()),
    }
    created = row.get("created_at")
    if created is not None:
        out["created_at"] = created.isoformat()
    out.update(settings_view(row))
    notes = []
    if not ips:
        notes.append("no allowed IP: this account cannot bind until one is added")
    if row["status"] != "active":
        notes.append(f"status is {row['status']}: binds are refused")
    out["can_bind"] = not notes
    if not out["senders_enabled"]:
        notes.append("no enabled sender: submits will be refused")
    out["notes"] = notes
    return out


def iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
