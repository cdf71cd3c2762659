"""The admin socket: a Unix socket (mode 0600) speaking one JSON object per line.

Request:  {"op": "account.create", "args": {...}}
Answer:   {"ok": true, "result": {...}}  or  {"ok": false, "error": "why"}

Every operation that changes something refreshes the in-memory account directory (so
the next bind sees it at once) and writes an audit row; neither a password nor its
hash ever reaches the audit log or the server's log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auth.identifiers import generate_system_id, validate_system_id
from auth.ipacl import canonical
from auth.passwords import generate_password, hash_password
from store.errors import StoreError
from store.money import format_credits, parse_credits

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger(__name__)
MAX_REQUEST = 1 << 20


class AdminError(Exception):
    """Bad input from the operator: reported back as {"ok": false, "error": ...}."""


def _public(row: dict, *, bound: int = 0) -> dict[str, Any]:
    ips = list(row.get("allowed_ips") or [])
    out = {
        "system_id": row["system_id"],
        "status": row["status"],
        "balance": format_credits(row["balance"]),
        "allowed_ips": ips,
        "contact_email": row.get("contact_email"),
        "bound_sessions": bound,
    }
    created = row.get("created_at")
    if created is not None:
        out["created_at"] = created.isoformat()
    notes = []
    if not ips:
        notes.append("no allowed IP: this account cannot bind until one is added")
    if row["status"] != "active":
        notes.append(f"status is {row['status']}: binds are refused")
    out["can_bind"] = not notes
    out["notes"] = notes
    return out


class AdminServer:
    def __init__(self, gateway: Gateway, path: Path) -> None:
        self.gw = gateway
        self.path = Path(path)
        self._server: asyncio.base_events.Server | None = None
        self._ops: dict[str, Callable[[dict, str], Awaitable[Any]]] = {
            "account.create": self.account_create,
            "account.show": self.account_show,
            "account.list": self.account_list,
            "password.rotate": self.password_rotate,
            "ip.add": self.ip_add,
            "ip.remove": self.ip_remove,
            "ip.list": self.ip_list,
            "credits.add": self.credits_add,
            "balance.show": self.balance_show,
            "sessions.list": self.sessions_list,
            "audit.list": self.audit_list,
        }

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
                writer.write(_line(await self.execute(line, actor)))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def execute(self, line: bytes, actor: str = "admin") -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return {"ok": False, "error": f"request is not JSON: {exc}"}
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"ok": False, "error": 'request must be an object with a string "op"'}
        op = self._ops.get(request["op"])
        if op is None:
            return {
                "ok": False,
                "error": f"unknown op {request['op']!r}; known: {', '.join(sorted(self._ops))}",
            }
        args = request.get("args") or {}
        if not isinstance(args, dict):
            return {"ok": False, "error": '"args" must be an object'}
        try:
            return {"ok": True, "result": await op(args, actor)}
        except (AdminError, StoreError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # an operator must get an answer, not a hung socket
            log.exception("admin op %s failed", request["op"])
            return {"ok": False, "error": f"internal error: {exc.__class__.__name__}"}

    # --- helpers -------------------------------------------------------------------

    async def _account(self, args: dict) -> dict:
        system_id = _required(args, "system_id")
        row = await self.gw.account_store.get(system_id)
        if row is None:
            raise AdminError(f"unknown account {system_id!r}")
        return row

    async def _changed(self, actor: str, action: str, system_id: str, before, after) -> None:
        await self.gw.account_store.audit(actor, action, system_id, before, after)
        await self.gw.accounts.refresh(system_id)

    def _bound(self, system_id: str) -> int:
        return len(self.gw.bound_sessions(system_id))

    # --- operations ----------------------------------------------------------------

    async def account_create(self, args: dict, actor: str) -> dict:
        system_id = args.get("system_id")
        system_id = validate_system_id(system_id) if system_id else generate_system_id()
        credits = parse_credits(args.get("credits", 0))
        if credits < 0:
            raise AdminError("credits must not be negative")
        ips = [canonical(ip) for ip in _list(args, "allowed_ips")]
        password = generate_password()
        row = await self.gw.account_store.create(
            system_id,
            hash_password(password),
            credits=credits,
            allowed_ips=ips,
            contact_email=args.get("contact_email"),
        )
        row = await self.gw.account_store.get(system_id)
        await self._changed(actor, "account.create", system_id, None, _public(row))
        result = _public(row)
        result["password"] = password  # shown once, here, and stored nowhere in clear
        return result

    async def account_show(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        return _public(row, bound=self._bound(row["system_id"]))

    async def account_list(self, args: dict, actor: str) -> list[dict]:
        rows = await self.gw.account_store.load_all()
        return [_public(r, bound=self._bound(r["system_id"])) for r in rows]

    async def password_rotate(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        system_id = row["system_id"]
        password = generate_password()
        await self.gw.account_store.set_password_hash(system_id, hash_password(password))
        await self._changed(
            actor, "password.rotate", system_id, {"password": "old"}, {"password": "new"}
        )
        unbound = 0
        if args.get("unbind"):
            for session in self.gw.bound_sessions(system_id):
                session.request_unbind()
                unbound += 1
        return {"system_id": system_id, "password": password, "sessions_unbound": unbound}

    async def ip_add(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        network = canonical(_required(args, "ip"))
        await self.gw.account_store.add_allowed_ip(row["system_id"], network)
        after = await self.gw.account_store.get(row["system_id"])
        await self._changed(
            actor, "ip.add", row["system_id"],
            {"allowed_ips": row["allowed_ips"]}, {"allowed_ips": after["allowed_ips"]},
        )
        return _public(after, bound=self._bound(row["system_id"]))

    async def ip_remove(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        network = canonical(_required(args, "ip"))
        await self.gw.account_store.remove_allowed_ip(row["system_id"], network)
        after = await self.gw.account_store.get(row["system_id"])
        await self._changed(
            actor, "ip.remove", row["system_id"],
            {"allowed_ips": row["allowed_ips"]}, {"allowed_ips": after["allowed_ips"]},
        )
        return _public(after, bound=self._bound(row["system_id"]))

    async def ip_list(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        return _public(row)

    async def credits_add(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        amount = parse_credits(_required(args, "amount"))
        if amount <= 0:
            raise AdminError("amount must be a positive number of credits")
        balance = await self.gw.account_store.add_credits(
            row["system_id"], amount, kind="topup", note=args.get("note")
        )
        account = self.gw.accounts.get(row["system_id"])
        if account is not None:
            account.balance += amount
        await self.gw.account_store.audit(
            actor, "credits.add", row["system_id"],
            {"balance": format_credits(row["balance"])}, {"balance": format_credits(balance)},
        )
        return {"system_id": row["system_id"], "added": format_credits(amount),
                "balance": format_credits(balance)}

    async def balance_show(self, args: dict, actor: str) -> dict:
        row = await self._account(args)
        return {"system_id": row["system_id"], "balance": format_credits(row["balance"])}

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
        limit = int(args.get("limit", 100))
        rows = await self.gw.account_store.list_audit(limit)
        for row in rows:
            if row.get("at") is not None and hasattr(row["at"], "isoformat"):
                row["at"] = row["at"].isoformat()
        return rows


def _required(args: dict, key: str) -> str:
    value = args.get(key)
    if value is None or value == "":
        raise AdminError(f"missing argument {key!r}")
    return str(value)


def _list(args: dict, key: str) -> list[str]:
    value = args.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise AdminError(f"{key!r} must be a list")
    return [str(v) for v in value]


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
