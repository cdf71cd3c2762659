"""The fault and abuse suite, each scenario one command, each leaving its figures behind.

``python -m benchmarks.faults [--size small|full] [SCENARIO ...]`` (all of them when
none is named): kill, upstream, postgres, disk, malformed, wrong_binds, lockout,
nonreader, idle. Each starts its own gateway (``smppgw serve``), upstream simulator,
PostgreSQL or tmpfs as needed, on loopback, bounded in time; writes
``<output-dir>/faults-<scenario>-<UTC timestamp>.json`` and appends one row to
``benchmarks/FAULTS.md`` (date, commit, figures, target, whether it was met, machine).
A scenario that fails today is recorded as it is: the row is the measurement.

The scenarios are in `benchmarks.faults_scenarios`, what they start and break in
`benchmarks.faults_processes`, their clients in `benchmarks.faults_load` and
`benchmarks.faults_flood`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.context import (
    BENCH_DIR,
    DEFAULT_OUTPUT,
    Outcome,
    RunContext,
    print_outcome,
    run_one,
)
from benchmarks.faults_processes import KEEP
from benchmarks.faults_scenarios import ORDER, SCENARIOS, TARGETS
from benchmarks.loadgen import raise_nofile_limit
from benchmarks.recording import gateway_settings, machine, resolve_source

DEFAULT_FAULTS_TABLE = BENCH_DIR / "FAULTS.md"
FAULT_SIZES = ("small", "full")

HEADER = """# Fault and abuse suite

One row per scenario run, appended by `python -m benchmarks.faults` (see the
[README](README.md#fault-and-abuse-suite)); the JSON of each row is
`results/faults-<scenario>-<UTC timestamp>.json`. A row records what the gateway did,
met or not: the suite is run again after each fix.

| date (UTC) | commit | scenario | size | figures | target | met? | machine | settings changed |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
"""


def record(ctx: RunContext, name: str, outcome: Outcome, started: datetime,
           seconds: float, table: Path | None) -> Path:
    info = machine()
    doc: dict[str, Any] = {
        "scenario": name, "size": ctx.size,
        "started_utc": started.isoformat(timespec="seconds"),
        "wall_seconds": round(seconds, 1), "commit": ctx.commit, "machine": info,
        "settings_changed": {**outcome.settings, **ctx.gateway_env},
        "target": TARGETS[name], "met": outcome.met, "key": outcome.key,
        "skipped": outcome.skipped or None, "result": outcome.result,
    }
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.output_dir / f"faults-{name}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    if table is not None:
        if not table.exists():
            table.write_text(HEADER)
        met = {True: "yes", False: "**no**", None: "-"}[outcome.met]
        settings = ", ".join(f"{k}={v}" for k, v in doc["settings_changed"].items()
                             if k != "upstream_url") or "none"
        where = (f"{info['cores']} cores, Python {info['python']}, {info['loop']}, "
                 f"load {info['loadavg_at_start'][0]}")
        cells = [doc["started_utc"].replace("+00:00", ""), ctx.commit, name, ctx.size,
                 outcome.key, TARGETS[name], met, where, settings]
        with table.open("a") as fh:
            fh.write("| " + " | ".join(c.replace("|", "/") for c in cells) + " |\n")
    return path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenario", nargs="*", metavar="SCENARIO",
                   help="any of: " + ", ".join(ORDER) + " (default: all)")
    p.add_argument("--size", choices=FAULT_SIZES, default="small")
    p.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--faults-md", type=Path, default=DEFAULT_FAULTS_TABLE,
                   help="table to append a row to (default benchmarks/FAULTS.md)")
    p.add_argument("--no-record", action="store_true", help="do not append to the table")
    p.add_argument("--keep", action="store_true",
                   help="keep the gateways' state directories and logs in /tmp")
    p.add_argument("--source", default="head", metavar="head|worktree|DIR",
                   help="run the gateway from HEAD exported to /tmp (default), from the "
                        "working tree, or from another directory")
    p.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra gateway setting for every scenario")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [n for n in args.scenario if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    names = [n for n in ORDER if n in args.scenario] if args.scenario else list(ORDER)
    extra = gateway_settings(args.gateway_env)
    source, commit = resolve_source(args.source)
    KEEP["state"] = args.keep
    # Children inherit it: the idle and storm scenarios open thousands of sockets.
    raise_nofile_limit(20_000)
    ctx = RunContext(size=args.size, output_dir=args.output_dir, table=None,
                     gateway_env=extra, commit=commit, source=source)
    table = None if args.no_record else args.faults_md
    failed = []
    for name in names:
        ran = run_one(SCENARIOS[name], name, ctx, f"faults: {name} ({ctx.size})")
        if ran.crashed:
            failed.append(name)
        path = record(ctx, name, ran.outcome, ran.started, ran.seconds, table)
        print_outcome(ran.outcome, TARGETS[name], path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
