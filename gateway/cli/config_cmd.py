"""`smppgw config check` and `smppgw config show`: the configuration `smppgw serve` would
run with (file, ``$SMPPGW_CONFIG``, ``SMPPGW_*`` environment), checked with every mistake
listed, or shown setting by setting with where each value came from.

Nothing printed shows a password: password settings and upstream keys print as ``***``,
URLs without their password (config.redaction), and every line is redacted once more.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from config.errors import ConfigError
from config.loader import CONFIG_FILE_ENV, load_settings_with_sources
from config.redaction import MASK, RedactingFormatter, redact, redact_url
from config.settings import Settings
from config.upstreams import Delivery, resolve
from gateway.cli.exits import EXIT_OK, EXIT_USAGE

# Shown in their own sections, resolved (with the built-in simulator when none is set).
_TABLES = ("upstreams", "routes")
# Where a `config show` line puts its "# source" comment.
_SOURCE_COLUMN = 44


def add_parser(commands: argparse._SubParsersAction) -> None:
    config = commands.add_parser(
        "config", help="check or show the configuration `smppgw serve` would use")
    actions = config.add_subparsers(dest="config_command", required=True)
    check = actions.add_parser(
        "check", help="load file and environment as serve would; exit 2 listing every error")
    check.add_argument("--config", type=Path,
                       help=f"TOML settings file (default ${CONFIG_FILE_ENV}, if set)")
    check.set_defaults(func=run_check)
    show = actions.add_parser(
        "show", help="every setting with its value and source, passwords hidden")
    show.add_argument("--config", type=Path,
                      help=f"TOML settings file (default ${CONFIG_FILE_ENV}, if set)")
    show.add_argument("--json", action="store_true", help="print JSON instead of TOML-like text")
    show.set_defaults(func=run_show)


def _load(config_file: Path | None) -> tuple[Settings, dict[str, str], Delivery] | None:
    """The settings as serve would load them, or None after printing every error."""
    handler = logging.StreamHandler()
    # Unknown SMPPGW_* variables are warned about, as serve would at start.
    handler.setFormatter(RedactingFormatter("smppgw: warning: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    try:
        settings, sources = load_settings_with_sources(config_file)
        delivery = resolve(settings.upstreams, settings.routes, settings.upstream_url,
                           settings.simulator_delay_ms)
    except ConfigError as exc:
        for message in exc.messages:
            print(redact(f"smppgw: configuration error: {message}"), file=sys.stderr)
        return None
    return settings, sources, delivery


def run_check(args: argparse.Namespace) -> int:
    """`smppgw config check`: exit 0 with one line when the configuration loads."""
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_USAGE
    _, _, delivery = loaded
    ups, rts = len(delivery.upstreams), len(delivery.routes)
    print(f"configuration OK ({ups} upstream{'s' * (ups != 1)}, "
          f"{rts} route{'s' * (rts != 1)})")
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    """`smppgw config show`: the effective settings and their sources."""
    loaded = _load(args.config)
    if loaded is None:
        return EXIT_USAGE
    document = effective_configuration(*loaded, config_file=_config_file(args.config))
    if args.json:
        text = json.dumps(document, indent=2)
    else:
        text = _as_text(document)
    # Belt and braces: whatever slipped through the per-value masking is masked here.
    print("\n".join(redact(line) for line in text.splitlines()))
    return EXIT_OK


def _config_file(given: Path | None) -> str | None:
    if given is not None:
        return str(given)
    return os.environ.get(CONFIG_FILE_ENV, "").strip() or None


# --- the document -------------------------------------------------------------------------


def shown_value(name: str, value: Any) -> Any:
    """A setting or upstream key's value as `config show` may print it (JSON types)."""
    if "password" in name.lower():
        return MASK if value else value
    if isinstance(value, str) and name.endswith("url"):
        return redact_url(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [shown_value(name, v) for v in value]
    return value


def effective_configuration(
    settings: Settings, sources: dict[str, str], delivery: Delivery, *,
    config_file: str | None,
) -> dict[str, Any]:
    """What `config show --json` prints: settings with sources, what follows from them,
    and the resolved upstreams and routes, every password masked."""
    upstream_sources = [sources["upstreams"]] * len(settings.upstreams)
    if settings.upstream_url:
        upstream_sources.append(sources["upstream_url"])
    route_source = sources["routes"] if settings.routes else (
        "default (every destination to the upstreams in order)")
    return {
        "config_file": config_file,
        "settings": {
            f.name: {"value": shown_value(f.name, getattr(settings, f.name)),
                     "source": sources[f.name]}
            for f in fields(Settings) if f.name not in _TABLES
        },
        "effective": {
            "database_url": redact_url(settings.effective_database_url),
            "admin_socket": str(settings.effective_admin_socket),
            "auto_migrate": settings.effective_auto_migrate,
        },
        "upstreams": [
            {"source": upstream_sources[i] if i < len(upstream_sources) else "default",
             **{k: shown_value(k, v) for k, v in asdict(up).items()}}
            for i, up in enumerate(delivery.upstreams)
        ],
        "routes": [
            {"source": route_source, "prefix": r.prefix, "account": r.account,
             "connectors": list(r.connectors)}
            for r in delivery.routes
        ],
    }


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _line(key: str, value: Any, source: str | None = None) -> str:
    text = f"# {key}: not set" if value is None else f"{key} = {_toml(value)}"
    if source is None:
        return text
    return f"{text.ljust(_SOURCE_COLUMN)}  # {source}"


def _as_text(document: dict[str, Any]) -> str:
    config_file = document["config_file"]
    lines = [
        f"# smppgw configuration: {config_file or 'no config file'}, then SMPPGW_* variables",
        "# setting = value                             # where it came from",
    ]
    lines += [_line(name, item["value"], item["source"])
              for name, item in document["settings"].items()]
    effective = document["effective"]
    lines += [
        "",
        "# what follows from the settings above",
        f"# store: {effective['database_url']}",
        f"# admin socket: {effective['admin_socket']}",
        f"# auto_migrate: {_toml(effective['auto_migrate'])}",
    ]
    for upstream in document["upstreams"]:
        lines += ["", f"[[upstreams]]  # {upstream['source']}"]
        lines += [_line(k, v) for k, v in upstream.items() if k != "source"]
    for route in document["routes"]:
        lines += ["", f"[[routes]]  # {route['source']}"]
        lines += [_line(k, v) for k, v in route.items() if k != "source"]
    return "\n".join(lines)
