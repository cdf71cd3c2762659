"""The benchmark scenarios of issues 6, 11 and 13, each one command, each leaving a result behind.

``python -m benchmarks.run SCENARIO [--size tiny|small|full]`` or ``... run all``.
A scenario starts what it needs as separate processes (the gateway through
``python -m gateway.cli serve`` on free ports with settings as ``SMPPGW_*`` variables,
or the floor server), drives it with `benchmarks.loadgen` from this process, stops
everything on any exit, writes ``<output-dir>/<scenario>-<UTC timestamp>.json`` and
appends one row to ``benchmarks/RESULTS.md`` (unless ``--no-record``).

Settings are the durable defaults (SQLite WAL, synchronous FULL) plus exactly what a
scenario lists in ``settings``; that list is printed in its row.

This module is the command line; the scenarios are in `benchmarks.scenarios`, the
servers as processes in `benchmarks.processes`, py-spy in `benchmarks.profiling`, the
JSON and the table row in `benchmarks.recording`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.context import (
    DEFAULT_OUTPUT,
    DEFAULT_TABLE,
    SIZES,
    Outcome,
    RunContext,
    print_outcome,
    run_one,
)
from benchmarks.recording import gateway_settings, record, resolve_source
from benchmarks.scenarios import (
    ALIASES,
    ALL_ORDER,
    NUMBERS,
    READ_THE_FLOOR,
    SCENARIOS,
    TARGETS,
)


def run_scenarios(names: list[str], ctx: RunContext) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for name in names:
        ran = run_one(SCENARIOS[name], name, ctx,
                      f"benchmarks: {NUMBERS[name]} {name} ({ctx.size})")
        path = record(ctx, name, ran.outcome, ran.started, ran.seconds)
        print_outcome(ran.outcome, TARGETS[name], path)
        outcomes[name] = ran.outcome
    return outcomes


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    choices = sorted(SCENARIOS) + sorted(ALIASES) + ["all"]
    p.add_argument("scenario", nargs="+", choices=choices, metavar="SCENARIO",
                   help="all, or names/numbers: " + ", ".join(
                       f"{n} {name}" for name, n in sorted(NUMBERS.items(), key=lambda i: i[1])))
    p.add_argument("--size", choices=SIZES, default="full")
    p.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT,
                   help="where the JSON results go (default benchmarks/results)")
    p.add_argument("--results-md", type=Path, default=DEFAULT_TABLE,
                   help="table to append a row to (default benchmarks/RESULTS.md)")
    p.add_argument("--no-record", action="store_true", help="do not append to the table")
    p.add_argument("--source", default="head", metavar="head|worktree|DIR",
                   help="run the gateway from HEAD exported to /tmp (default: the shared "
                        "working tree may hold others' half-done edits), from the tree, "
                        "or from another directory (an experiment; its name is the commit)")
    p.add_argument("--rate", type=float, help="scenario 3: messages/s instead of 5,000")
    p.add_argument("--duration", type=float, help="scenario 3: seconds instead of 30")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="sample the gateway with py-spy during the load; stacks go to DIR")
    p.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra gateway setting for every scenario, e.g. default_window=200 "
                        "(listed in each row)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names: list[str] = []
    for item in args.scenario:
        picked = list(ALL_ORDER) if item == "all" else [ALIASES.get(item, item)]
        names += [n for n in picked if n not in names]
    readers = [n for n in names if n in READ_THE_FLOOR]
    if "floor" in names and readers:
        # s1 and s9 are reported as a fraction of the floor measured before them.
        names.remove("floor")
        names.insert(names.index(readers[0]), "floor")
    extra = gateway_settings(args.gateway_env)
    source, commit = resolve_source(args.source)
    ctx = RunContext(
        size=args.size, output_dir=args.output_dir,
        table=None if args.no_record else args.results_md, gateway_env=extra,
        commit=commit, source=source, profile_dir=args.profile,
        overrides={k: v for k, v in (("rate", args.rate), ("duration", args.duration)) if v},
    )
    outcomes = run_scenarios(names, ctx)
    failed = [n for n, o in outcomes.items() if o.key.startswith("failed:")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
