"""The `smppgw admin` client: one request over the admin socket, the answer printed as
a table or record (or JSON with --json), and history exports streamed to CSV with a
progress bar. Exits non-zero with the server's message when the server says no.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from gateway.cli.admin_args import add_admin_parser, admin_request
from gateway.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_UNREACHABLE

# The columns of `account list` and `nodes` as a table; other lists show every field.
ACCOUNT_COLUMNS = ["system_id", "status", "balance", "allowed_ips", "bound_sessions", "can_bind"]
NODE_COLUMNS = ["name", "state", "heartbeat_age", "sessions", "smpp", "host", "pid",
                "started_at"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    add_admin_parser(commands).set_defaults(func=run)


def default_socket() -> Path:
    env = os.environ.get("SMPPGW_ADMIN_SOCKET")
    if env:
        return Path(env)
    return Path(os.environ.get("SMPPGW_STATE_DIR", "var")) / "admin.sock"


def admin_call(path: Path, op: str, args: dict[str, Any], timeout: float = 30.0) -> dict:
    """Send one request to the admin socket and return the decoded answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps({"op": op, "args": args}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def _table(rows: list[dict], columns: list[str]) -> str:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _print_record(record: dict) -> None:
    width = max(len(k) for k in record) if record else 0
    for key, value in record.items():
        print(f"{key.ljust(width)}  {_cell(value)}")


def _export(path: Path, body: dict[str, Any], output: str, timeout: float = 300.0) -> int:
    """Stream history.export into a CSV file (or stdout), one page in memory at a time."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps({"op": "history.export", "args": body}).encode() + b"\n")
        stream = sock.makefile("rb")
        header = json.loads(stream.readline() or b"{}")
        if not header.get("ok"):
            print(f"smppgw admin: {header.get('error', 'export failed')}", file=sys.stderr)
            return EXIT_ERROR
        total = int(header["result"]["total"])
        progress = _Progress(total) if sys.stderr.isatty() else None
        target = (
            contextlib.nullcontext(sys.stdout)
            if output == "-"
            else open(output, "w", newline="", encoding="utf-8")  # noqa: SIM115 - entered below
        )
        with target as out:
            writer = csv.writer(out)
            writer.writerow(header["result"]["columns"])
            written = 0
            for raw in stream:
                message = json.loads(raw)
                if "rows" in message:
                    writer.writerows(message["rows"])
                    written += len(message["rows"])
                    if progress:
                        progress.show(written)
                    continue
                if message.get("error"):
                    print(f"\nsmppgw admin: export failed after {written} rows: "
                          f"{message['error']}", file=sys.stderr)
                    return EXIT_ERROR
                break
        if progress:
            progress.done(written)
        if output != "-":
            print(f"exported {written} rows to {output}", file=sys.stderr)
        return EXIT_OK


class _Progress:
    """A one-line progress bar on stderr, redrawn at most every 1%."""

    def __init__(self, total: int, width: int = 30) -> None:
        self.total = max(total, 1)
        self.width = width
        self._shown = -1

    def show(self, done: int) -> None:
        percent = min(100, done * 100 // self.total)
        if percent == self._shown:
            return
        self._shown = percent
        filled = self.width * percent // 100
        bar = "#" * filled + "-" * (self.width - filled)
        sys.stderr.write(f"\r[{bar}] {percent:3d}% {done}/{self.total} rows")
        sys.stderr.flush()

    def done(self, written: int) -> None:
        self.show(min(self.total, written))
        sys.stderr.write("\n")


def run(args: argparse.Namespace) -> int:
    """`smppgw admin ...`: one request, its answer printed; the exit code says how it went."""
    op, body = admin_request(args)
    path = Path(args.socket) if args.socket else default_socket()
    try:
        if op == "history.export":
            return _export(path, body, args.output)
        answer = admin_call(path, op, body)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        print(
            f"smppgw admin: cannot reach the admin socket {path}: {exc.strerror or exc}. "
            "Is `smppgw serve` running with this state directory?",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    except (OSError, ValueError) as exc:
        print(f"smppgw admin: {path}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if not answer.get("ok"):
        print(f"smppgw admin: {answer.get('error', 'request failed')}", file=sys.stderr)
        return EXIT_ERROR
    result = answer.get("result")
    if args.json:
        print(json.dumps(result, indent=None, default=str))
        return EXIT_OK
    if isinstance(result, list):
        if not result:
            print("(none)")
        elif op == "account.list":
            print(_table(result, ACCOUNT_COLUMNS))
        elif op == "nodes.list":
            print(_table(result, NODE_COLUMNS))
        else:
            print(_table(result, list(result[0].keys())))
    elif isinstance(result, dict):
        _print_record(result)
        if "password" in result:
            print("\nThe password is shown only now; it is stored as a hash.", file=sys.stderr)
    return EXIT_OK
