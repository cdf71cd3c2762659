"""The `smppgw admin` client: one request over the admin socket, the answer printed as
a table or record (or JSON with --json), and history exports streamed to CSV with a
progress bar. Exits non-zero with the server's message when the server says no: 2 when
the arguments are wrong (the server's answer says "usage"), 1 when a valid request is
refused, 3 when the socket cannot be reached (gateway.cli.exits).

Nested values (the audit log's before/after, lists of objects) are shown as key=value
pairs or JSON text in a cell, never as Python reprs; a password is shown only by the
operations that generate one, once.
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

from gateway.cli.admin_args import CommandLineError, add_admin_parser, admin_request
from gateway.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE

# The columns of `account list` and `nodes` as a table; other lists show every field.
ACCOUNT_COLUMNS = ["system_id", "status", "balance", "allowed_ips", "bound_sessions", "can_bind"]
NODE_COLUMNS = ["name", "state", "heartbeat_age", "sessions", "smpp", "host", "pid",
                "started_at"]
UPSTREAM_COLUMNS = ["name", "type", "state", "since", "last_error", "in_flight", "window",
                    "rate", "host", "port", "enabled"]
SESSION_COLUMNS = ["id", "node", "system_id", "peer", "bind_type", "tls"]
COLUMNS = {"account.list": ACCOUNT_COLUMNS, "nodes.list": NODE_COLUMNS,
           "upstream.list": UPSTREAM_COLUMNS, "sessions.list": SESSION_COLUMNS}
# The operations whose answer carries a password generated for the operator, shown once.
SHOWS_PASSWORD = {"account.create", "password.rotate", "customer.create",
                  "customer.password_reset"}
MASK = "********"


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
    """One value as text: lists comma-separated, objects as key=value pairs, anything
    nested deeper as JSON text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"  # as in --json and inside key=value pairs
    if isinstance(value, dict):
        return " ".join(f"{k}={_scalar(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return ",".join(_cell(v) for v in value) or "-"
        return json.dumps(value, default=str)
    return str(value)


def _scalar(value: Any) -> str:
    """A value inside key=value: JSON when it could be misread (spaces, nesting, empty)."""
    if isinstance(value, str) and value and not any(c.isspace() or c in "=\"" for c in value):
        return value
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, default=str)


def masked(value: Any) -> Any:
    """`value` with every password-like field replaced by MASK (recursively)."""
    if isinstance(value, dict):
        return {k: MASK if _secret(k) and v not in (None, "") else masked(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def _secret(key: Any) -> bool:
    return isinstance(key, str) and (key == "password" or key.endswith("_password"))


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
            return EXIT_USAGE if header.get("usage") else EXIT_ERROR
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
    try:
        op, body = admin_request(args)
    except CommandLineError as exc:
        print(f"smppgw admin: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if op == "account.delete" and not args.yes and not _confirmed(body["system_id"]):
        return EXIT_USAGE
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
        return EXIT_USAGE if answer.get("usage") else EXIT_ERROR
    result = answer.get("result")
    shows_password = op in SHOWS_PASSWORD
    if not shows_password:
        result = masked(result)
    if args.json:
        print(json.dumps(result, indent=None, default=str))
        return EXIT_OK
    _print_result(op, result)
    if shows_password and isinstance(result, dict) and "password" in result:
        print("\nThe password is shown only now; it is stored as a hash.", file=sys.stderr)
    return EXIT_OK


def _print_result(op: str, result: Any) -> None:
    if isinstance(result, list):
        if not result:
            print("(none)")
        elif all(isinstance(r, dict) for r in result):
            columns = COLUMNS.get(op) or list(dict.fromkeys(k for r in result for k in r))
            print(_table(result, columns))
        else:
            for item in result:
                print(_cell(item))
    elif isinstance(result, dict):
        _print_record(result)
    elif result is not None:
        print(_cell(result))


def _confirmed(system_id: str) -> bool:
    """Ask on the terminal before a delete; without one, --yes is required."""
    if not sys.stdin.isatty():
        print(f"smppgw admin: account delete {system_id}: add --yes to confirm "
              "(no terminal to ask on)", file=sys.stderr)
        return False
    answer = input(f"Delete account {system_id}? It can never bind again [y/N] ")
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("smppgw admin: not deleted", file=sys.stderr)
    return False
