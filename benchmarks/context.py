"""What the runner hands a scenario and what a scenario hands back.

`RunContext` carries one run's choices (size, where the servers' code comes from, where
results go); `Outcome` is one scenario's result, key numbers and verdict. The paths of
the benchmarks directory live here too, as every other module needs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results"
DEFAULT_TABLE = BENCH_DIR / "RESULTS.md"
SIZES = ("tiny", "small", "full")


@dataclass
class Outcome:
    """What one scenario hands back to be written as JSON and as a table row."""

    result: dict[str, Any]
    key: str
    met: bool | None
    settings: dict[str, str] = field(default_factory=dict)
    skipped: str = ""
    # The store measured and the settings that make its commits durable.
    store: str = "SQLite WAL, sqlite_synchronous=FULL"


@dataclass
class RunContext:
    size: str
    output_dir: Path
    table: Path | None
    gateway_env: dict[str, str]
    commit: str
    # Where the gateway and floor processes import the project from.
    source: Path = REPO
    # When set, the gateway is sampled by py-spy during the load; summary in the JSON.
    profile_dir: Path | None = None
    current: str = ""
    # Load overrides from the command line (e.g. --rate for scenario 3), shown in the row.
    overrides: dict[str, Any] = field(default_factory=dict)
    floor_rate: float | None = None
    # The floor's µs of CPU per message, shown beside s1's fraction of the floor.
    floor_cpu_us: float | None = None
    written: list[Path] = field(default_factory=list)



@dataclass
class Ran:
    """One scenario run by `run_one`: its outcome, when it started, how long it took,
    and whether it crashed (its outcome then says how)."""

    outcome: Outcome
    started: datetime
    seconds: float
    crashed: bool


def run_one(scenario: Callable[[RunContext], Outcome], name: str, ctx: RunContext,
            banner: str) -> Ran:
    """Run one scenario after printing `banner`; a crash becomes a failed outcome, so
    one broken scenario does not hide the rest."""
    started = datetime.now(UTC)
    t0 = time.monotonic()
    print(f"{banner} ...", flush=True)
    ctx.current = name
    try:
        return Ran(scenario(ctx), started, time.monotonic() - t0, False)
    except Exception as exc:  # noqa: BLE001
        reason = f"failed: {type(exc).__name__}: {exc}"
        return Ran(Outcome({"error": reason}, reason, False), started,
                   time.monotonic() - t0, True)


def print_outcome(outcome: Outcome, target: str, path: Path) -> None:
    met = {True: "met", False: "NOT met", None: "-"}[outcome.met]
    print(f"  {outcome.key}\n  target {target}: {met}\n  -> {path}", flush=True)
