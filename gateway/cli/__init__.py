"""The `smppgw` command: `serve` runs the gateway (cli.serve), `admin` talks to its admin
socket (cli.admin, with its argument tree in cli.admin_args). `main` is the console
script's entry point; `python -m gateway.cli` runs it too.
"""

from __future__ import annotations

import argparse

from gateway.cli import admin, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smppgw", description="SMPP 3.4 gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve.add_parser(commands)
    admin.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not hasattr(args, "json"):
        args.json = False
    return args.func(args)
