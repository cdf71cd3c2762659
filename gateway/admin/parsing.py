"""Operator arguments read into typed values, and the two ways an operation says no.

AdminError is a refusal of a well-formed request (unknown account, nothing to change);
AdminUsageError, raised by every reader here, says the arguments themselves are wrong
(the CLI exits 2 for it, 1 for a refusal). Arguments arrive as JSON from the socket (or
as strings from `smppgw admin`), so each parser takes either form. The per-account
settings table maps the names operators use to store columns, each with its parser.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from auth.senders import validate_sender, validate_state
from store.bounds import MAX_BIGINT
from store.money import parse_credits


class AdminError(Exception):
    """A request refused: reported back as {"ok": false, "error": ...}."""


class AdminUsageError(AdminError):
    """The arguments cannot be read (malformed, out of range, missing, unknown name):
    reported back as {"ok": false, "error": ..., "usage": true}."""


def shown(value: Any, most: int = 40) -> str:
    """repr() of an operator's value for an error message, cut short if long."""
    text = repr(value)
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} characters)"


def as_int(value: Any, name: str | None = None) -> int:
    what = f"{name} must be an integer" if name else "expected an integer"
    if isinstance(value, (bool, float)) or not isinstance(value, (int, str)):
        raise AdminUsageError(f"{what}, got {shown(value)}")
    try:
        return int(str(value).strip())
    except ValueError:  # not digits, or more than Python converts (4300 digits)
        raise AdminUsageError(f"{what}, got {shown(value)}") from None


def as_id(value: Any, name: str, *, least: int = 1) -> int:
    """A message or row id: an integer the store's BIGINT columns can hold."""
    number = as_int(value, name)
    if not least <= number <= MAX_BIGINT:
        raise AdminUsageError(
            f"{name} must be between {least} and {MAX_BIGINT}, got {shown(value)}")
    return number


def as_limit(value: Any, name: str, most: int) -> int:
    """A page size or count: 1 to `most`."""
    number = as_int(value, name)
    if not 1 <= number <= most:
        raise AdminUsageError(f"{name} must be between 1 and {most}, got {shown(value)}")
    return number


def as_float(value: Any) -> float:
    try:
        return float(str(value))
    except ValueError:
        raise AdminUsageError(f"expected a number, got {value!r}") from None


def as_flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise AdminUsageError(f"expected true or false, got {value!r}")


def money_or_off(value: Any) -> int | None:
    """Credits in minor units, or None for "", "off" or "none" (the feature is off)."""
    if value is None or str(value).strip().lower() in ("", "off", "none"):
        return None
    return as_credits(value)


def as_credits(value: Any) -> int:
    """Credits in minor units (store.money's rules), a usage error if unreadable."""
    try:
        return parse_credits(value)
    except (ValueError, TypeError) as exc:
        raise AdminUsageError(str(exc)) from None


def as_time(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise AdminUsageError(
            f"{name} {value!r} is not an ISO 8601 time, e.g. 2026-11-25 or 2026-11-25T10:00Z"
        ) from None
    # A time without zone is read as UTC: the store keeps UTC only.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def destination(text: str) -> str:
    """An international number as the STOP list keeps it: digits, no '+'."""
    digits = text.strip().removeprefix("+")
    if not digits.isdigit() or not 3 <= len(digits) <= 21:
        raise AdminUsageError(f"destination {text!r} must be an international number (digits)")
    return digits


def required(args: dict, key: str) -> str:
    value = args.get(key)
    if value is None or value == "":
        raise AdminUsageError(f"missing argument {key!r}")
    return str(value)


def str_list(args: dict, key: str) -> list[str]:
    return [str(v) for v in raw_list(args, key)]


def raw_list(args: dict, key: str) -> list[Any]:
    """A list argument; a single value stands for a list of one."""
    value = args.get(key) or []
    if isinstance(value, (str, dict, int)):
        value = [value]
    if not isinstance(value, list):
        raise AdminUsageError(f"{key!r} must be a list")
    return value


def sender_arg(entry: Any) -> dict[str, Any]:
    """A sender given as "ovh" or {"address": ..., "kind": ..., "state": ...}."""
    if isinstance(entry, str):
        entry = {"address": entry}
    if not isinstance(entry, dict) or not entry.get("address"):
        raise AdminUsageError(
            f"a sender must be a string or an object with an address: {entry!r}")
    address, kind = validate_sender(str(entry["address"]), entry.get("kind") or None)
    state = validate_state(entry.get("state") or "enabled") if "state" in entry else "enabled"
    return {"address": address, "kind": kind, "state": state, "comment": entry.get("comment")}


# Per-account settings the operator names -> store column, and how to read the value.
SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "window": ("window_size", as_int),
    "throughput": ("throughput", as_float),
    "bind_limit": ("bind_limit", as_int),
    "gsm_packed": ("gsm_packed", as_flag),
    "max_segments": ("max_segments", as_int),
    "keep_bodies": ("keep_bodies", as_flag),
    "vendor_tlvs": ("vendor_tlvs", as_flag),
    "dlr_retention_days": ("dlr_retention_days", as_int),
    "stop_mode": ("stop_mode", str),
    "addressing": ("addressing", str),
    "outbind_address": ("outbind_address", lambda v: v or None),
    "outbind_system_id": ("outbind_system_id", lambda v: v or None),
    "outbind_password": ("outbind_password", lambda v: v or None),
    "contact_email": ("contact_email", lambda v: v or None),
    "auto_topup_threshold": ("auto_topup_threshold", money_or_off),
    "auto_topup_amount": ("auto_topup_amount", money_or_off),
    "auto_topup_monthly_cap": ("auto_topup_monthly_cap", money_or_off),
    "low_balance_threshold": ("low_balance_threshold", money_or_off),
}
MONEY_SETTINGS = {
    "auto_topup_threshold", "auto_topup_amount", "auto_topup_monthly_cap",
    "low_balance_threshold",
}


def parse_settings(values: dict[str, Any]) -> dict[str, Any]:
    """Operator setting names and values -> store columns and typed values."""
    out = {}
    for name, value in values.items():
        if name not in SETTINGS:
            raise AdminUsageError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
        column, parse = SETTINGS[name]
        out[column] = parse(value)
    return out
