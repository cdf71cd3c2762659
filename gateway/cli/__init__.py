# PYTHON_ARGCOMPLETE_OK  (shell completion: argcomplete looks for this marker)
"""The `smppgw` command: `serve` runs the gateway (cli.serve), `admin` talks to its admin
socket (cli.admin, with its argument tree in cli.admin_args), `db` reads and
migrates the store's schema (cli.db), `config` checks and shows the configuration
(cli.config_cmd); `--version` says which smppgw and Python run. `main` is the console
script's entry point; `python -m gateway.cli` runs it too.
"""

from __future__ import annotations

import argparse

from gateway.cli import admin, config_cmd, db, serve
from gateway.version import PYTHON, VERSION


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smppgw", description="SMPP 3.4 gateway")
    parser.add_argument("--version", action="version",
                        version=f"smppgw {VERSION} (Python {PYTHON})")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(commands)
    admin.add_parser(commands)
    db.add_parser(commands)
    config_cmd.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        import argcomplete  # optional: tab completion once activated in the shell
    except ImportError:
        pass
    else:
        argcomplete.autocomplete(parser)  # returns at once unless the shell asks
    args = parser.parse_args(argv)
    if not hasattr(args, "json"):
        args.json = False
    return args.func(args)
