"""The admin socket: a Unix socket (mode 0600) speaking one JSON object per line.

Request:  {"op": "account.create", "args": {...}}
Answer:   {"ok": true, "result": {...}}  or  {"ok": false, "error": "why"}

A streaming op (history.export) answers with a header line {"ok": true, "result":
{"stream": ..., "columns": [...], "total": N}}, then lines {"rows": [[...], ...]}, then
{"end": true, "count": N} (or {"end": true, "error": "why"}).

Every operation that changes something refreshes the in-memory account directory (so
the next bind or submit sees it at once) and writes an audit row; neither a password
nor its hash ever reaches the audit log or the server's log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import smtplib
import socket
import struct
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auth.identifiers import generate_system_id, validate_system_id
from auth.ipacl import canonical
from auth.passwords import generate_password, hash_password
from auth.senders import validate_sender, validate_state
from gateway.mail import Mailer, password_mail
from pdu.text import display_text
from store.accounts import AccountStore
from store.errors import InsufficientCredit, StoreError
from store.history import EXPORT_COLUMNS, HistoryFilter, HistoryStore
from store.invariants import ledger_violations
from store.money import format_credits, parse_credits
from store.rates import RateStore, validate_prefix

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger(__name__)
MAX_REQUEST = 1 << 20
EXPORT_PAGE = 1000

Op = Callable[[dict, str], Awaitable[Any]]


class AdminError(Exception):
    """Bad input from the operator: reported back as {"ok": false, "error": ...}."""


# Per-account settings the operator names -> store column, and how to read the value.
def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise AdminError(f"expected an integer, got {value!r}")
    try:
        return int(str(value))
    except ValueError:
        raise AdminError(f"expected an integer, got {value!r}") from None


def _float(value: Any) -> float:
    try:
        return float(str(value))
    except ValueError:
        raise AdminError(f"expected a number, got {value!r}") from None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise AdminError(f"expected true or false, got {value!r}")


def _money_or_off(value: Any) -> int | None:
    if value is None or str(value).strip().lower() in ("", "off", "none"):
        return None
    return parse_credits(value)


SETTINGS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "window": ("window_size", _int),
    "throughput": ("throughput", _float),
    "bind_limit": ("bind_limit", _int),
    "gsm_packed": ("gsm_packed", _flag),
    "max_segments": ("max_segments", _int),
    "keep_bodies": ("keep_bodies", _flag),
    "vendor_tlvs": ("vendor_tlvs", _flag),
    "dlr_retention_days": ("dlr_retention_days", _int),
    "stop_mode": ("stop_mode", str),
    "addressing": ("addressing", str),
    "outbind_address": ("outbind_address", lambda v: v or None),
    "outbind_system_id": ("outbind_system_id", lambda v: v or None),
    "outbind_password": ("outbind_password", lambda v: v or None),
    "contact_email": ("contact_email", lambda v: v or None),
    "auto_topup_threshold": ("auto_topup_threshold", _money_or_off),
    "auto_topup_amount": ("auto_topup_amount", _money_or_off),
    "auto_topup_monthly_cap": ("auto_topup_monthly_cap", _money_or_off),
    "low_balance_threshold": ("low_balance_threshold", _money_or_off),
}
_MONEY_SETTINGS = {
    "auto_topup_threshold", "auto_topup_amount", "auto_topup_monthly_cap",
    "low_balance_threshold",
}


def _settings_public(row: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (column, _) in SETTINGS.items():
        if name in ("contact_email", "outbind_password"):
            continue
        value = row.get(column)
        if name in _MONEY_SETTINGS:
            value = None if value is None else format_credits(value)
        out[name] = value
    return out


def _public(row: dict, *, bound: int = 0) -> dict[str, Any]:
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
    out.update(_settings_public(row))
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


def _sender_public(row: dict) -> dict[str, Any]:
    return {
        "address": row["address"], "kind": row["kind"], "state": row["state"],
        "comment": row.get("comment"),
        "updated_at": _iso(row.get("updated_at")),
    }


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


class AdminServer:
    def __init__(self, gateway: Gateway, path: Path) -> None:
        self.gw = gateway
        self.path = Path(path)
        self._server: asyncio.base_events.Server | None = None
        self.mailer: Mailer = getattr(gateway, "mailer", None) or Mailer(gateway.settings)
        # The directory alerts through the same metrics and mailer as everything else.
        gateway.accounts.attach(metrics=gateway.metrics, mailer=self.mailer)
        self.rates = RateStore(gateway.engine)
        self.history = HistoryStore(gateway.engine)
        self._ops: dict[str, Op] = {
            "account.create": self.account_create,
            "account.show": self.account_show,
            "account.list": self.account_list,
            "account.set": self.account_set,
            "account.suspend": self.account_suspend,
            "account.resume": self.account_resume,
            "password.rotate": self.password_rotate,
            "ip.add": self.ip_add,
            "ip.remove": self.ip_remove,
            "ip.list": self.ip_list,
            "sender.add": self.sender_add,
            "sender.list": self.sender_list,
            "sender.set_state": self.sender_set_state,
            "sender.remove": self.sender_remove,
            "rate.set": self.rate_set,
            "rate.list": self.rate_list,
            "rate.remove": self.rate_remove,
            "rate.quote": self.rate_quote,
            "credits.add": self.credits_add,
            "credits.transfer": self.credits_transfer,
            "credits.auto_topup": self.credits_auto_topup,
            "credits.alert": self.credits_alert,
            "balance.show": self.balance_show,
            "ledger.list": self.ledger_list,
            "ledger.check": self.ledger_check,
            "history.query": self.history_query,
            "history.delete": self.history_delete,
            "stop.add": self.stop_add,
            "stop.list": self.stop_list,
            "stop.remove": self.stop_remove,
            "sessions.list": self.sessions_list,
            "audit.list": self.audit_list,
        }
        self._streams: dict[str, Callable[[dict, asyncio.StreamWriter], Awaitable[None]]] = {
            "history.export": self.history_export,
        }

    @property
    def store(self) -> AccountStore:
        return self.gw.account_store

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.path.unlink()  # a stale socket from a process that did not stop cleanly
        # Create the socket already private: a umask, not a chmod afterwards, leaves
        # no window in which another user could connect.
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._handle, str(self.path), limit=MAX_REQUEST
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        actor = _peer_actor(writer)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(_line({"ok": False, "error": "request line too long"}))
                    break
                if not line:
                    break
                request = _parse(line)
                if "error" not in request and request["op"] in self._streams:
                    await self._stream(request, writer)
                else:
                    writer.write(_line(await self._run(request, actor)))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def execute(self, line: bytes, actor: str = "admin") -> dict[str, Any]:
        """Run one request line (not a streaming one) and return its answer."""
        return await self._run(_parse(line), actor)

    async def _run(self, request: dict, actor: str) -> dict[str, Any]:
        if "error" in request:
            return {"ok": False, "error": request["error"]}
        op = self._ops.get(request["op"])
        if op is None:
            known = sorted([*self._ops, *self._streams])
            return {
                "ok": False,
                "error": f"unknown op {request['op']!r}; known: {', '.join(known)}",
            }
        try:
            return {"ok": True, "result": await op(request["args"], actor)}
        except (AdminError, StoreError, ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # an operator must get an answer, not a hung socket
            log.exception("admin op %s failed", request["op"])
            return {"ok": False, "error": f"internal error: {exc.__class__.__name__}"}

    async def _stream(self, request: dict, writer: asyncio.StreamWriter) -> None:
        try:
            await self._streams[request["op"]](request["args"], writer)
        except (AdminError, StoreError, ValueError, TypeError) as exc:
            writer.write(_line({"ok": False, "error": str(exc)}))

    # --- helpers -------------------------------------------------------------------

    async def _account(self, args: dict, key: str = "system_id") -> dict:
        system_id = _required(args, key)
        row = await self.store.get(system_id)
        if row is None:
            raise AdminError(f"unknown account {system_id!r}")
        return row

    async def _changed(self, actor: str, action: str, system_id: str, before, after) -> None:
        await self.store.audit(actor, action, system_id, before, after)
        await self.gw.accounts.refresh(system_id)

    def _bound(self, system_id: str) -> int:
        return len(self.gw.bound_sessions(system_id))

    def _defaults(self) -> dict[str, Any]:
        s = self.gw.settings
        return {
            "window_size": s.default_window,
            "throughput": s.default_throughput,
            "bind_limit": s.default_bind_limit,
            "gsm_packed": s.default_gsm_packed,
            "max_segments": s.default_max_segments,
            "keep_bodies": s.default_keep_bodies,
            "vendor_tlvs": s.vendor_tlvs,
            "dlr_retention_days": s.default_dlr_retention_days,
            "stop_mode": s.default_stop_mode,
            "addressing": s.default_addressing,
        }

    # --- accounts ------------------------------------------------------------------

    async def account_create(self, args: dict, actor: str) -> dict:
        system_id = args.get("system_id")
        system_id = validate_system_id(system_id) if system_id else generate_system_id()
        credits = parse_credits(args.get("credits", 0))
        ips = [canonical(ip) for ip in _list(args, "allowed_ips")]
        limit = self.gw.settings.max_allowed_ips
        if len(set(ips)) > limit:
            raise AdminError(f"at most {limit} allowed IP entries per account, got {len(ips)}")
        settings = self._defaults()
        settings.update(_parse_settings(args.get("settings") or {}))
        sender_rows = [_sender_arg(entry) for entry in _raw_list(args, "senders")]
        password = generate_password()
        await self.store.create(
            system_id,
            hash_password(password),
            credits=credits,
            allowed_ips=ips,
            contact_email=args.get("contact_email") or None,
            settings=settings,
            sender_list=sender_rows,
        )
        row = await self.store.get(system_id)
        assert row is not None
        await self._changed(actor, "account.create", system_id, None, _public(row))
        result = _public(row)
        result["password"] = password  # shown once, here, and stored nowhere in clear
        return result

    async def account_show(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        return _public(row, bound=self._bound(row["system_id"]))

    async def account_list(self, args: dict, actor: str) -> list[dict]:
        rows = await self.store.load_all()
        return [_public(r, bound=self._bound(r["system_id"])) for r in rows]

    async def account_set(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        values = _parse_settings({k: v for k, v in args.items() if k != "system_id"})
        if not values:
            raise AdminError(f"nothing to change; settings: {', '.join(SETTINGS)}")
        return await self._set(row, values, actor, "account.set")

    async def _set(self, row: dict, values: dict[str, Any], actor: str, action: str) -> dict:
        system_id = row["system_id"]
        await self.store.update_settings(system_id, values)
        after = await self.store.get(system_id)
        assert after is not None
        before_pub, after_pub = _public(row), _public(after)
        changed = [k for k in after_pub if before_pub.get(k) != after_pub.get(k)]
        await self._changed(
            actor, action, system_id,
            {k: before_pub.get(k) for k in changed}, {k: after_pub.get(k) for k in changed},
        )
        return _public(after, bound=self._bound(system_id))

    async def account_suspend(self, args: dict, actor: str) -> dict:
        return await self._set_status(args, actor, "suspended")

    async def account_resume(self, args: dict, actor: str) -> dict:
        return await self._set_status(args, actor, "active")

    async def _set_status(self, args: dict, actor: str, status: str) -> dict:
        row = await self._account(args)
        system_id = row["system_id"]
        await self.store.set_status(system_id, status)
        await self._changed(
            actor, f"account.{'suspend' if status == 'suspended' else 'resume'}", system_id,
            {"status": row["status"]}, {"status": status},
        )
        unbound = 0
        if status == "suspended" and _flag(args.get("unbind", False)):
            for session in self.gw.bound_sessions(system_id):
                session.request_unbind()
                unbound += 1
        after = await self.store.get(system_id)
        assert after is not None
        result = _public(after, bound=self._bound(system_id))
        result["sessions_unbound"] = unbound
        return result

    async def password_rotate(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        system_id = row["system_id"]
        password = generate_password()
        await self.store.set_password_hash(system_id, hash_password(password))
        await self._changed(
            actor, "password.rotate", system_id, {"password": "old"}, {"password": "new"}
        )
        unbound = 0
        if _flag(args.get("unbind", False)):
            for session in self.gw.bound_sessions(system_id):
                session.request_unbind()
                unbound += 1
        result = {"system_id": system_id, "password": password, "sessions_unbound": unbound}
        result["emailed_to"] = await self._mail_password(row, password)
        return result

    async def _mail_password(self, row: dict, password: str) -> str | None:
        """Mail the new password to the contact; what happened, for the operator."""
        to = row.get("contact_email")
        if not self.mailer.enabled:
            return None
        if not to:
            return "not sent: the account has no contact e-mail"
        subject, body = password_mail(row["system_id"], password)
        try:
            await self.mailer.send(to, subject, body)
        except (OSError, smtplib.SMTPException) as exc:
            log.warning("password mail for %s to %s failed: %r", row["system_id"], to, exc)
            return f"not sent: {exc.__class__.__name__}: {exc}"
        return to

    # --- allowed IPs ------------------------------------------------------------------

    async def ip_add(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        network = canonical(_required(args, "ip"))
        await self.store.add_allowed_ip(
            row["system_id"], network, max_count=self.gw.settings.max_allowed_ips
        )
        return await self._ip_changed(row, actor, "ip.add")

    async def ip_remove(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        network = canonical(_required(args, "ip"))
        await self.store.remove_allowed_ip(row["system_id"], network)
        return await self._ip_changed(row, actor, "ip.remove")

    async def _ip_changed(self, row: dict, actor: str, action: str) -> dict:
        after = await self.store.get(row["system_id"])
        assert after is not None
        await self._changed(
            actor, action, row["system_id"],
            {"allowed_ips": row["allowed_ips"]}, {"allowed_ips": after["allowed_ips"]},
        )
        return _public(after, bound=self._bound(row["system_id"]))

    async def ip_list(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        return _public(row)

    # --- senders ------------------------------------------------------------------

    async def sender_add(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        entry = _sender_arg(
            {"address": _required(args, "sender"), "kind": args.get("kind"),
             "state": args.get("state") or "pending", "comment": args.get("comment")}
        )
        added = await self.store.add_sender(
            row["system_id"], entry["address"], entry["kind"],
            state=entry["state"], comment=entry["comment"],
        )
        await self._changed(actor, "sender.add", row["system_id"], None, _sender_public(added))
        return _sender_public(added)

    async def sender_list(self, args: dict, actor: str) -> list[dict]:
        row = await self._account(args)
        return [_sender_public(s) for s in await self.store.list_senders(row["system_id"])]

    async def sender_set_state(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        address = _required(args, "sender")
        state = validate_state(_required(args, "state"))
        before = await self.store.get_sender(row["system_id"], address)
        after = await self.store.set_sender_state(
            row["system_id"], address, state, args.get("comment")
        )
        await self._changed(
            actor, "sender.set_state", row["system_id"],
            _sender_public(before), _sender_public(after),
        )
        return _sender_public(after)

    async def sender_remove(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        address = _required(args, "sender")
        before = await self.store.get_sender(row["system_id"], address)
        await self.store.remove_sender(row["system_id"], address)
        await self._changed(actor, "sender.remove", row["system_id"], _sender_public(before), None)
        return {"system_id": row["system_id"], "removed": address}

    # --- rates --------------------------------------------------------------------

    async def _rate_scope(self, args: dict) -> str | None:
        if not args.get("system_id"):
            return None
        return (await self._account(args))["system_id"]

    async def rate_set(self, args: dict, actor: str) -> dict:
        scope = await self._rate_scope(args)
        prefix = validate_prefix(_required(args, "prefix"))
        price = parse_credits(_required(args, "price"))
        old = await self.rates.set_rate(prefix, price, scope)
        await self.gw.account_store.audit(
            actor, "rate.set", scope or "*",
            None if old is None else {"prefix": prefix, "price": format_credits(old)},
            {"prefix": prefix, "price": format_credits(price)},
        )
        await self.gw.accounts.refresh_rates()
        return {"scope": scope or "global", "prefix": prefix, "price": format_credits(price),
                "previous": None if old is None else format_credits(old)}

    async def rate_remove(self, args: dict, actor: str) -> dict:
        scope = await self._rate_scope(args)
        prefix = validate_prefix(_required(args, "prefix"))
        old = await self.rates.remove_rate(prefix, scope)
        await self.store.audit(
            actor, "rate.remove", scope or "*",
            {"prefix": prefix, "price": format_credits(old)}, None,
        )
        await self.gw.accounts.refresh_rates()
        return {"scope": scope or "global", "prefix": prefix, "removed": format_credits(old)}

    async def rate_list(self, args: dict, actor: str) -> list[dict]:
        scope = await self._rate_scope(args)
        rows = await self.rates.list_rates(scope)
        return [
            {"scope": scope or "global", "prefix": r["prefix"], "price": format_credits(r["price"]),
             "updated_at": _iso(r["updated_at"])}
            for r in rows
        ]

    async def rate_quote(self, args: dict, actor: str) -> dict:
        """What one segment to `destination` costs this account, as the submit path sees it."""
        row = await self._account(args)
        account = self.gw.accounts.get(row["system_id"])
        assert account is not None
        destination = _required(args, "destination")
        price = self.gw.accounts.price(account, destination)
        return {"system_id": row["system_id"], "destination": destination,
                "price": format_credits(price)}

    # --- credits ------------------------------------------------------------------

    async def credits_add(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        amount = parse_credits(_required(args, "amount"))
        if amount <= 0:
            raise AdminError("amount must be a positive number of credits")
        balance = await self.store.add_credits(
            row["system_id"], amount, kind="topup", note=args.get("note")
        )
        account = self.gw.accounts.get(row["system_id"])
        if account is not None:
            self.gw.accounts.credited(account, amount)
        await self.store.audit(
            actor, "credits.add", row["system_id"],
            {"balance": format_credits(row["balance"])}, {"balance": format_credits(balance)},
        )
        return {"system_id": row["system_id"], "added": format_credits(amount),
                "balance": format_credits(balance)}

    async def credits_transfer(self, args: dict, actor: str) -> dict:
        src = await self._account(args, "from")
        dst = await self._account(args, "to")
        if src["system_id"] == dst["system_id"]:
            raise AdminError("cannot transfer credit from an account to itself")
        amount = parse_credits(_required(args, "amount"))
        if amount <= 0:
            raise AdminError("amount must be a positive number of credits")
        directory = self.gw.accounts
        source = directory.get(src["system_id"])
        target = directory.get(dst["system_id"])
        # Reserve in memory first, as a submit does, so this node never promises the
        # same credit to a queued submit and to the transfer.
        if source is not None and not directory.reserve(source, amount):
            raise InsufficientCredit(src["system_id"], amount)
        try:
            src_balance, dst_balance = await self.store.transfer(
                src["system_id"], dst["system_id"], amount
            )
        except BaseException:
            if source is not None:
                directory.release(source, amount)
            raise
        if source is not None:
            directory.settle(source, amount)
            directory.after_debit(source)
        if target is not None:
            directory.credited(target, amount)
        await self.store.audit(
            actor, "credits.transfer", src["system_id"],
            {"from": format_credits(src["balance"]), "to": format_credits(dst["balance"])},
            {"from": format_credits(src_balance), "to": format_credits(dst_balance),
             "target": dst["system_id"], "amount": format_credits(amount)},
        )
        return {"from": src["system_id"], "to": dst["system_id"],
                "amount": format_credits(amount), "from_balance": format_credits(src_balance),
                "to_balance": format_credits(dst_balance)}

    async def credits_auto_topup(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        if _flag(args.get("off", False)):
            values = {"auto_topup_threshold": None, "auto_topup_amount": None,
                      "auto_topup_monthly_cap": None}
        else:
            threshold = parse_credits(_required(args, "threshold"))
            amount = parse_credits(_required(args, "amount"))
            if amount <= 0:
                raise AdminError("amount must be a positive number of credits")
            cap = _money_or_off(args.get("monthly_cap"))
            if cap is not None and cap < amount:
                raise AdminError("monthly_cap is below the top-up amount: it would never top up")
            values = {"auto_topup_threshold": threshold, "auto_topup_amount": amount,
                      "auto_topup_monthly_cap": cap}
        return await self._set(row, values, actor, "credits.auto_topup")

    async def credits_alert(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        threshold = None if _flag(args.get("off", False)) else parse_credits(
            _required(args, "threshold")
        )
        return await self._set(row, {"low_balance_threshold": threshold}, actor, "credits.alert")

    async def balance_show(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        return {"system_id": row["system_id"], "balance": format_credits(row["balance"])}

    async def ledger_list(self, args: dict, actor: str) -> list[dict]:
        row = await self._account(args)
        limit = _int(args.get("limit", 50))
        entries = await self.store.ledger_entries(row["id"], limit)
        return [
            {"id": e["id"], "at": _iso(e["created_at"]), "kind": e["kind"],
             "amount": format_credits(e["amount"]), "message_id": e["message_id"],
             "note": e["note"]}
            for e in entries
        ]

    async def ledger_check(self, args: dict, actor: str) -> dict:
        problems = await ledger_violations(self.gw.engine)
        return {"ok": not problems, "problems": problems}

    # --- history ------------------------------------------------------------------

    async def _filter(self, args: dict) -> HistoryFilter:
        account_id = None
        if args.get("system_id"):
            account_id = (await self._account(args))["id"]
        message_id = args.get("message_id")
        return HistoryFilter(
            account_id=account_id,
            since=_time(args.get("since"), "since"),
            until=_time(args.get("until"), "until"),
            sender=args.get("sender") or None,
            receiver=args.get("receiver") or None,
            status=(args.get("status") or "").upper() or None,
            message_id=None if message_id in (None, "") else _int(message_id),
            direction=(args.get("direction") or "").upper() or None,
        )

    async def history_query(self, args: dict, actor: str) -> list[dict]:
        flt = await self._filter(args)
        after = args.get("after_id")
        rows = await self.history.query(
            flt, limit=_int(args.get("limit", 100)),
            after_id=None if after in (None, "") else _int(after),
        )
        return [dict(zip(EXPORT_COLUMNS, _export_row(r), strict=True)) for r in rows]

    async def history_delete(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        ids = [_int(i) for i in _raw_list(args, "message_ids")]
        if not ids:
            raise AdminError("missing argument 'message_ids'")
        deleted = await self.history.delete(row["id"], ids)
        await self.store.audit(
            actor, "history.delete", row["system_id"], {"message_ids": ids}, {"deleted": deleted}
        )
        return {"system_id": row["system_id"], "deleted": deleted, "asked": len(ids)}

    async def history_export(self, args: dict, writer: asyncio.StreamWriter) -> None:
        flt = await self._filter(args)
        total = await self.history.count(flt)
        writer.write(_line({"ok": True, "result": {
            "stream": "history", "columns": list(EXPORT_COLUMNS), "total": total}}))
        count = 0
        try:
            async for page in self.history.pages(flt, EXPORT_PAGE):
                writer.write(_line({"rows": [_export_row(r) for r in page]}))
                count += len(page)
                # Back-pressure: a slow reader slows the export instead of filling memory.
                await writer.drain()
        except (StoreError, OSError) as exc:
            writer.write(_line({"end": True, "error": str(exc), "count": count}))
            return
        writer.write(_line({"end": True, "count": count}))

    # --- STOP list ----------------------------------------------------------------

    async def stop_add(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        destination = _destination(_required(args, "destination"))
        added = await self.store.add_stop(row["system_id"], destination, args.get("note"))
        if added:
            await self._changed(
                actor, "stop.add", row["system_id"], None, {"destination": destination}
            )
        return {"system_id": row["system_id"], "destination": destination, "added": added}

    async def stop_remove(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        destination = _destination(_required(args, "destination"))
        await self.store.remove_stop(row["system_id"], destination)
        await self._changed(
            actor, "stop.remove", row["system_id"], {"destination": destination}, None
        )
        return {"system_id": row["system_id"], "destination": destination, "removed": True}

    async def stop_list(self, args: dict, actor: str) -> list[dict]:
        row = await self._account(args)
        return [
            {"destination": e["destination"], "note": e["note"], "since": _iso(e["created_at"])}
            for e in await self.store.list_stop(row["system_id"])
        ]

    # --- sessions and audit ----------------------------------------------------------

    async def sessions_list(self, args: dict, actor: str) -> list[dict]:
        from gateway.session import BIND_TYPE

        return [
            {
                "system_id": s.account.system_id,
                "peer": s.peer,
                "bind_type": BIND_TYPE.get(s.state, s.state.value),
                "tls": s.tls,
            }
            for s in self.gw.bound_sessions(args.get("system_id"))
        ]

    async def audit_list(self, args: dict, actor: str) -> list[dict]:
        limit = _int(args.get("limit", 100))
        target, action = args.get("target"), args.get("action")
        # Filtering after the fetch keeps the store API small; ask for more to fill it.
        fetch = limit if not (target or action) else max(limit * 20, 1000)
        rows = await self.store.list_audit(fetch)
        if target:
            rows = [r for r in rows if r["target"] == target]
        if action:
            rows = [r for r in rows if r["action"] == action or r["action"].startswith(action)]
        rows = rows[:limit]
        for row in rows:
            row["at"] = _iso(row.get("at"))
        return rows


# --- argument parsing -----------------------------------------------------------------


def _parse(line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {"error": f"request is not JSON: {exc}"}
    if not isinstance(request, dict) or not isinstance(request.get("op"), str):
        return {"error": 'request must be an object with a string "op"'}
    args = request.get("args") or {}
    if not isinstance(args, dict):
        return {"error": '"args" must be an object'}
    return {"op": request["op"], "args": args}


def _parse_settings(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in values.items():
        if name not in SETTINGS:
            raise AdminError(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
        column, parse = SETTINGS[name]
        out[column] = parse(value)
    return out


def _sender_arg(entry: Any) -> dict[str, Any]:
    """A sender given as "ovh" or {"address": ..., "kind": ..., "state": ...}."""
    if isinstance(entry, str):
        entry = {"address": entry}
    if not isinstance(entry, dict) or not entry.get("address"):
        raise AdminError(f"a sender must be a string or an object with an address: {entry!r}")
    address, kind = validate_sender(str(entry["address"]), entry.get("kind") or None)
    state = validate_state(entry.get("state") or "enabled") if "state" in entry else "enabled"
    return {"address": address, "kind": kind, "state": state, "comment": entry.get("comment")}


def _destination(text: str) -> str:
    digits = text.strip().removeprefix("+")
    if not digits.isdigit() or not 3 <= len(digits) <= 21:
        raise AdminError(f"destination {text!r} must be an international number (digits)")
    return digits


def _time(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise AdminError(
            f"{name} {value!r} is not an ISO 8601 time, e.g. 2026-11-25 or 2026-11-25T10:00Z"
        ) from None
    # A time without zone is read as UTC: the store keeps UTC only.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _export_row(row: dict[str, Any]) -> list[Any]:
    out = []
    for column in EXPORT_COLUMNS:
        value = row.get(column)
        if column == "cost" and value is not None:
            value = format_credits(int(value))
        elif column == "body" and value is not None:
            value = display_text(bytes(value), row.get("data_coding") or 0)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out.append(value)
    return out


def _required(args: dict, key: str) -> str:
    value = args.get(key)
    if value is None or value == "":
        raise AdminError(f"missing argument {key!r}")
    return str(value)


def _list(args: dict, key: str) -> list[str]:
    return [str(v) for v in _raw_list(args, key)]


def _raw_list(args: dict, key: str) -> list[Any]:
    value = args.get(key) or []
    if isinstance(value, (str, dict, int)):
        value = [value]
    if not isinstance(value, list):
        raise AdminError(f"{key!r} must be a list")
    return value


def _line(obj: Any) -> bytes:
    return json.dumps(obj, default=str).encode() + b"\n"


def _peer_actor(writer: asyncio.StreamWriter) -> str:
    """'uid:N' of the connecting process, for the audit log (SO_PEERCRED on Linux)."""
    sock = writer.get_extra_info("socket")
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return f"uid:{uid}"
    except (OSError, AttributeError):
        return "admin"

