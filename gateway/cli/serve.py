"""`smppgw serve`: load the settings, start the gateway, print where it listens (and the
demo account on a fresh install), and stop cleanly on SIGINT or SIGTERM.

It takes the state directory (0700) for itself first (cli.state_lock): a second `serve`
on it is refused. Nothing it prints or logs shows the password of a URL.

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
from config.redaction import redact
from config.settings import ConfigError, Settings
from gateway.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_USAGE
from gateway.cli.state_lock import StateDirBusy, lock_state_dir
from gateway.logs import configure_logging
from store.errors import StoreError
from store.files import private_dir


def add_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", type=Path, help="TOML settings file")
    serve.add_argument("--state-dir", type=Path, help="database and admin socket (default ./var)")
    serve.add_argument("--smpp-port", type=int, help="SMPP port (default 2775; 0 = any free)")
    serve.add_argument("--metrics-port", type=int, help="metrics port (0 = any free, -1 = off)")
    serve.add_argument("--web-port", type=int, help="web panel port (0 = any free, -1 = off)")
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
    if endpoints.web:
        host, port = endpoints.web
        scheme = "https" if settings.tls_enabled else "http"
        print(f"smppgw: web panel on {scheme}://{host}:{port}/", file=out)
    print(f"smppgw: admin socket {endpoints.admin_socket}", file=out)
    print(f"smppgw: store {redact(settings.effective_database_url)}", file=out)
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


# Open files the gateway needs besides its SMPP connections (store, listeners, admin,
# metrics, upstreams, TLS handshakes under way).
OPEN_FILES_RESERVE = 256


def raise_open_file_limit(max_connections: int) -> int:
    """Raise the soft RLIMIT_NOFILE toward the hard limit so that max_connections
    connections fit beside OPEN_FILES_RESERVE; log what was got. Returns how many
    connections fit (a process out of descriptors fails every new connection)."""
    import resource

    log = logging.getLogger("smppgw.serve")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + OPEN_FILES_RESERVE
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.info("open files: soft limit raised from %d to %d", soft, target)
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("open files: could not raise the soft limit from %d: %s", soft, exc)
    fit = max_connections if soft == resource.RLIM_INFINITY else max(
        0, min(max_connections, soft - OPEN_FILES_RESERVE))
    if fit < max_connections:
        log.warning(
            "open files limited to %d (hard limit %s): about %d connections fit, "
            "max_connections is %d; raise the hard limit (ulimit -Hn, LimitNOFILE=) or "
            "lower max_connections", soft,
            "unlimited" if hard == resource.RLIM_INFINITY else hard, fit, max_connections)
    return fit


def run(args: argparse.Namespace) -> int:
    """`smppgw serve`: run until SIGINT or SIGTERM; exit 2 on a bad configuration."""
    overrides = {
        "state_dir": args.state_dir,
        "smpp_port": args.smpp_port,
        "metrics_port": args.metrics_port,
        "web_port": args.web_port,
        "smpp_host": args.host,
    }
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"smppgw: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Our loggers at log_level, libraries (Alembic, the drivers) at log_level_libraries.
    configure_logging(settings)
    raise_open_file_limit(settings.max_connections)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        private_dir(settings.state_dir)
        state_lock = lock_state_dir(settings.state_dir)
    except (OSError, StateDirBusy) as exc:
        print(f"smppgw: cannot start: {redact(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return runner(_serve(settings))
    except (OSError, StoreError) as exc:
        print(f"smppgw: cannot start: {redact(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except Exception:
        # Logged, not left to the interpreter: the traceback goes through the redacting
        # formatter like every other line.
        logging.getLogger("smppgw.serve").critical("stopped by an unexpected error", exc_info=True)
        return EXIT_ERROR
    finally:
        state_lock.release()
