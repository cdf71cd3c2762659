"""`smppgw serve`: load the settings, start the gateway, print where it listens (and the
demo account on a fresh install), and stop cleanly on SIGINT or SIGTERM.

The only module that imports gateway.app: everything else receives its collaborators.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from config.loader import load_settings
from config.settings import ConfigError, Settings
from gateway.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_USAGE


def add_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", type=Path, help="TOML settings file")
    serve.add_argument("--state-dir", type=Path, help="database and admin socket (default ./var)")
    serve.add_argument("--smpp-port", type=int, help="SMPP port (default 2775; 0 = any free)")
    serve.add_argument("--metrics-port", type=int, help="metrics port (0 = any free, -1 = off)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.set_defaults(func=run)


async def _serve(settings: Settings) -> int:
    # Imported here, not at the top: `smppgw admin` shares this package and should not
    # pay for loading the whole gateway (about 0.6 s).
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
    assert gateway.admin is not None
    demo = await ensure_demo_account(gateway.admin, settings, gateway.accounts)
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
            f"credits={demo['balance']} allowed_ips={','.join(demo['allowed_ips'])} "
            f"senders={','.join(demo['senders_enabled'])}",
            file=out,
        )
    print("smppgw: ready", file=out)
    out.flush()
    await stop.wait()
    print("smppgw: stopping (unbinding sessions, committing in-flight work)", file=out)
    await gateway.stop()
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """`smppgw serve`: run until SIGINT or SIGTERM; exit 2 on a bad configuration."""
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
