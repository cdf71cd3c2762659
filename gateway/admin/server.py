"""The admin socket: a Unix socket (mode 0600) speaking one JSON object per line.

Request:  {"op": "account.create", "args": {...}}
Answer:   {"ok": true, "result": {...}}  or  {"ok": false, "error": "why"}, with
          "usage": true when the arguments themselves are wrong (not a refusal)

A streaming op (history.export) answers with a header line {"ok": true, "result":
{"stream": ..., "columns": [...], "total": N}}, then lines {"rows": [[...], ...]}, then
{"end": true, "count": N} (or {"end": true, "error": "why"}).

Every operation that changes something refreshes the in-memory account directory (so
the next bind or submit sees it at once) and writes an audit row, whose actor is the
connecting process's uid; neither a password nor its hash ever reaches the audit log or
the server's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any

from gateway.admin.context import AdminContext
from gateway.admin.ops import OPS, STREAMS
from gateway.admin.parsing import AdminError, AdminUsageError
from store.errors import StoreError

log = logging.getLogger(__name__)
MAX_REQUEST = 1 << 20

# What an operator may get wrong: answered with its message, never logged as a fault.
# What an operation refuses with (a message for the caller, not a crash).
REFUSALS = (AdminError, StoreError, ValueError, TypeError)
# Among them, the arguments that cannot be read: the parsing helpers' AdminUsageError,
# and the ValueError/TypeError the validators of auth and store raise on operator input
# (a StoreError or a plain AdminError refuses a well-formed request).
USAGE_ERRORS = (AdminUsageError, ValueError, TypeError)


def refusal(exc: BaseException) -> dict[str, Any]:
    """The answer for one of REFUSALS: its message, and whether it is a usage error."""
    answer: dict[str, Any] = {"ok": False, "error": str(exc)}
    if isinstance(exc, USAGE_ERRORS):
        answer["usage"] = True
    return answer


class AdminServer:
    def __init__(self, context: AdminContext, path: Path) -> None:
        self.context = context
        self.path = Path(path)
        self._server: asyncio.base_events.Server | None = None

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
                if "error" not in request and request["op"] in STREAMS:
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
            return {"ok": False, "error": request["error"], "usage": True}
        op = OPS.get(request["op"])
        if op is None:
            known = sorted([*OPS, *STREAMS])
            return {
                "ok": False,
                "error": f"unknown op {request['op']!r}; known: {', '.join(known)}",
            }
        try:
            return {"ok": True, "result": await op(self.context, request["args"], actor)}
        except REFUSALS as exc:
            return refusal(exc)
        except Exception as exc:  # an operator must get an answer, not a hung socket
            log.exception("admin op %s failed", request["op"])
            return {"ok": False, "error": f"internal error: {exc.__class__.__name__}"}

    async def _stream(self, request: dict, writer: asyncio.StreamWriter) -> None:
        messages = STREAMS[request["op"]](self.context, request["args"])
        try:
            async with contextlib.aclosing(messages):
                async for message in messages:
                    writer.write(_line(message))
                    # Back-pressure: a slow reader slows the stream instead of filling memory.
                    await writer.drain()
        except REFUSALS as exc:
            writer.write(_line(refusal(exc)))


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
