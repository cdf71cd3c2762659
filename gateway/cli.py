"""The `smppgw` command: `serve` runs the gateway, `admin` talks to its admin socket.

`smppgw admin` is a thin client: it turns arguments into one JSON request, prints the
answer as a table (or as JSON with --json), and exits non-zero with the server's
message when the server says no.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from config.loader import load_settings
from config.settings import ConfigError

log = logging.getLogger("smppgw")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


# --- serve ----------------------------------------------------------------------------


async def _serve(settings) -> int:
    from gateway.app import Gateway
    from gateway.demo import ensure_demo_account

    try:
        import uvloop  # noqa: F401  (the loop policy is set by main before this runs)
    except ImportError:
        pass
    gateway = Gateway(settings)
    endpoints = await gateway.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    demo = await ensure_demo_account(gateway)
    out = sys.stdout
    if endpoints.smpp:
        print(f"smppgw: SMPP listening on {endpoints.smpp[0]}:{endpoints.smpp[1]}", file=out)
    if endpoints.tls:
        print(f"smppgw: SMPP over TLS listening on {endpoints.tls[0]}:{endpoints.tls[1]}", file=out)
    if endpoints.metrics:
        host, port = endpoints.metrics
        print(f"smppgw: metrics on http://{host}:{port}/metrics", file=out)
    print(f"smppgw: admin socket {endpoints.admin_socket}", file=out)
    print(f"smppgw: store {settings.effective_database_url}", file=out)
    if demo is not None:
        print(
            "smppgw: demo account created (the password is shown only this once):\n"
            f"  system_id={demo['system_id']} password={demo['password']} "
            f"credits={demo['balance']} allowed_ips={','.join(demo['allowed_ips'])}",
            file=out,
        )
    print("smppgw: ready", file=out)
    out.flush()
    await stop.wait()
    print("smppgw: stopping (unbinding sessions, committing in-flight work)", file=out)
    await gateway.stop()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    overrides = {
        "state_dir": args.state_dir,
        "smpp_port": args.smpp_port,
        "metrics_port": args.metrics_port,
        "smpp_host": args.host,
    }
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"smppgw: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic narrates every plugin at INFO; an operator wants to hear only of upgrades.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return runner(_serve(settings))
    except OSError as exc:
        print(f"smppgw: cannot start: {exc}", file=sys.stderr)
        return EXIT_ERROR


# --- admin ----------------------------------------------------------------------------


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


ACCOUNT_COLUMNS = ["system_id", "status", "balance", "allowed_ips", "bound_sessions", "can_bind"]


def _admin_request(args: argparse.Namespace) -> tuple[str, dict]:
    group, action = args.group, getattr(args, "action", None)
    if group == "account" and action == "create":
        body: dict[str, Any] = {"allowed_ips": args.allow_ip or []}
        if args.credits is not None:
            body["credits"] = args.credits
        if args.system_id:
            body["system_id"] = args.system_id
        if args.contact_email:
            body["contact_email"] = args.contact_email
        return "account.create", body
    if group == "account" and action == "show":
        return "account.show", {"system_id": args.system_id}
    if group == "account" and action == "list":
        return "account.list", {}
    if group == "password":
        return "password.rotate", {"system_id": args.system_id, "unbind": args.unbind}
    if group == "ip":
        if action == "list":
            return "ip.list", {"system_id": args.system_id}
        return f"ip.{action}", {"system_id": args.system_id, "ip": args.ip}
    if group == "credits":
        return "credits.add", {"system_id": args.system_id, "amount": args.amount}
    if group == "balance":
        return "balance.show", {"system_id": args.system_id}
    if group == "sessions":
        return "sessions.list", {"system_id": args.system_id} if args.system_id else {}
    if group == "audit":
        return "audit.list", {"limit": args.limit}
    raise SystemExit(f"smppgw admin: unknown command {group} {action}")


def cmd_admin(args: argparse.Namespace) -> int:
    op, body = _admin_request(args)
    path = Path(args.socket) if args.socket else default_socket()
    try:
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
        else:
            print(_table(result, list(result[0].keys())))
    elif isinstance(result, dict):
        _print_record(result)
        if "password" in result:
            print("\nThe password is shown only now; it is stored as a hash.", file=sys.stderr)
    return EXIT_OK


# --- argument parsing -----------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smppgw", description="SMPP 3.4 gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", type=Path, help="TOML settings file")
    serve.add_argument("--state-dir", type=Path, help="database and admin socket (default ./var)")
    serve.add_argument("--smpp-port", type=int, help="SMPP port (default 2775; 0 = any free)")
    serve.add_argument("--metrics-port", type=int, help="metrics port (0 = any free, -1 = off)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.set_defaults(func=cmd_serve)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    admin = sub.add_parser("admin", help="manage accounts through the admin socket")
    admin.add_argument("--socket", help="admin socket (default $SMPPGW_STATE_DIR/admin.sock)")
    admin.set_defaults(func=cmd_admin)
    groups = admin.add_subparsers(dest="group", required=True)

    account = groups.add_parser("account", help="accounts").add_subparsers(
        dest="action", required=True
    )
    create = account.add_parser("create", parents=[common], help="create an account")
    create.add_argument("--credits", help="initial credits, e.g. 100 or 12.50")
    create.add_argument("--allow-ip", action="append", help="allowed IP or CIDR (repeatable)")
    create.add_argument("--system-id", help="choose the system_id instead of generating one")
    create.add_argument("--contact-email")
    show = account.add_parser("show", parents=[common], help="show one account")
    show.add_argument("system_id")
    account.add_parser("list", parents=[common], help="list accounts")

    password = groups.add_parser("password", help="passwords").add_subparsers(
        dest="action", required=True
    )
    rotate = password.add_parser("rotate", parents=[common], help="generate a new password")
    rotate.add_argument("system_id")
    rotate.add_argument("--unbind", action="store_true", help="unbind the account's sessions")

    ip = groups.add_parser("ip", help="allowed IP addresses").add_subparsers(
        dest="action", required=True
    )
    for action in ("add", "remove"):
        p = ip.add_parser(action, parents=[common], help=f"{action} an allowed IP or CIDR")
        p.add_argument("system_id")
        p.add_argument("ip")
    ip_list = ip.add_parser("list", parents=[common], help="list allowed IPs")
    ip_list.add_argument("system_id")

    credits = groups.add_parser("credits", help="credits").add_subparsers(
        dest="action", required=True
    )
    add = credits.add_parser("add", parents=[common], help="top up an account")
    add.add_argument("system_id")
    add.add_argument("amount", help="credits, e.g. 100 or 0.50")

    balance = groups.add_parser("balance", parents=[common], help="show a balance")
    balance.add_argument("system_id")

    sessions = groups.add_parser("sessions", parents=[common], help="list bound sessions")
    sessions.add_argument("system_id", nargs="?")

    audit = groups.add_parser("audit", parents=[common], help="list the audit log")
    audit.add_argument("--limit", type=int, default=50)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "json"):
        args.json = False
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
