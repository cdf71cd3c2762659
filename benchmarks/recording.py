"""Writing a scenario's outcome down: its JSON, and one row of RESULTS.md.

A row names the date, the commit measured, the scenario and size, the key numbers,
the target and whether it was met, the machine (cores, Python, event loop, load
average at the start) and the settings changed; rows are appended, never rewritten.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.context import REPO, Outcome, RunContext
from benchmarks.loadgen import has_uvloop
from benchmarks.processes import export_head
from benchmarks.scenarios import NUMBERS, TARGETS


def resolve_source(arg: str) -> tuple[Path, str]:
    """Where the gateway runs from, and the commit its rows name: HEAD exported to /tmp
    ("head"), the working tree ("worktree", the commit marked dirty if it is), or any
    other directory."""
    if arg == "head":
        return export_head()
    if arg == "worktree":
        return REPO, git_commit()
    source = Path(arg).resolve()
    return source, f"dir:{source.name}"


def gateway_settings(items: list[str]) -> dict[str, str]:
    """--gateway-env NAME=VALUE items as settings (SMPPGW_ prefix and case dropped)."""
    settings = {}
    for item in items:
        name, _, value = item.partition("=")
        settings[name.lower().removeprefix("smppgw_")] = value
    return settings


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], check=False, cwd=REPO,
            capture_output=True, text=True, timeout=10,
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], check=False, cwd=REPO,
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    # The working tree is shared: a gateway run may include others' uncommitted edits.
    mine = ("benchmarks/", "tests/test_benchmarks_smoke.py")
    dirty = [ln[3:] for ln in status.stdout.splitlines() if not ln[3:].startswith(mine)]
    return commit + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "loop": "uvloop" if has_uvloop() else "asyncio",
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        # Others share this machine; the load average at start says how noisy it was.
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"



TABLE_HEADER = (
    "| date (UTC) | commit | scenario | size | key numbers | target | met? | cores | Python "
    "| loop | load avg | settings changed |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
)


def record(ctx: RunContext, name: str, outcome: Outcome, started: datetime, seconds: float) -> Path:
    info = machine()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    doc = {
        "scenario": name,
        "number": NUMBERS[name],
        "size": ctx.size,
        "started_utc": started.isoformat(timespec="seconds"),
        "wall_seconds": round(seconds, 1),
        "commit": ctx.commit,
        "machine": info,
        "settings_changed": {**outcome.settings, **ctx.gateway_env},
        "durable_defaults": outcome.store,
        "target": TARGETS[name],
        "met": outcome.met,
        "key": outcome.key,
        "skipped": outcome.skipped or None,
        "result": outcome.result,
    }
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.output_dir / f"{name}-{stamp}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    ctx.written.append(path)
    if ctx.table is not None:
        _append_row(ctx.table, doc)
    return path


def _append_row(table: Path, doc: dict[str, Any]) -> None:
    if not table.exists():
        table.write_text(
            "# Benchmark results\n\nOne row per scenario run, appended by "
            "`python -m benchmarks.run`; the JSON beside each row is in `results/`.\n\n"
            + TABLE_HEADER
        )
    met = {True: "yes", False: "**no**", None: "-"}[doc["met"]]
    settings = ", ".join(f"{k}={v}" for k, v in doc["settings_changed"].items()) or "none"
    m = doc["machine"]
    cells = [
        doc["started_utc"].replace("+00:00", ""), doc["commit"],
        f"{doc['number']} {doc['scenario']}", doc["size"], doc["key"], doc["target"], met,
        str(m["cores"]), m["python"], m["loop"], str(m["loadavg_at_start"][0]), settings,
    ]
    with table.open("a") as fh:
        fh.write("| " + " | ".join(c.replace("|", "/") for c in cells) + " |\n")

