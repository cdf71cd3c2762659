"""The gateway sampled by py-spy while the load runs, and the samples summarised.

`--profile DIR` turns it on: collapsed stacks go to DIR, the share of samples per
function (self and inclusive) into the scenario's JSON.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.context import REPO, RunContext


class Profiler:
    """py-spy sampling a process from `start()` to `stop()`; summary lands in `into`."""

    def __init__(self, ctx: RunContext, pid: int, name: str, into: dict[str, Any]) -> None:
        self.ctx, self.pid, self.name, self.into = ctx, pid, name, into
        self.proc: subprocess.Popen[bytes] | None = None
        self.out: Path | None = None

    def start(self) -> None:
        """Called once the binds are answered, so Argon2 checks stay out of the profile."""
        if self.ctx.profile_dir is None:
            return
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.ctx.profile_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.out = self.ctx.profile_dir / f"{self.name}-{stamp}.collapsed.txt"
        # --nonblocking: the gateway is not paused per sample, so profiling costs it little.
        self.proc = subprocess.Popen(
            [spy, "record", "--pid", str(self.pid), "--rate", "500", "--nonblocking",
             "--format", "raw", "-o", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)  # let py-spy attach before the load starts (the load waits)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        if self.out is not None and self.out.exists():
            self.into["profile"] = {"collapsed_stacks": str(self.out),
                                    **summarise_profile(self.out)}


def summarise_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive share of samples per function, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if f]
        if not frames:
            continue
        total += count
        if frames[-1].startswith(("select ", "poll ", "_run_once ", "run_forever ")):
            idle += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count

    def table(counts: dict[str, int]) -> list[list[Any]]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [[name, round(100 * n / total, 1)] for name, n in ranked] if total else []

    return {"samples": total, "self_percent": table(own), "inclusive_percent": table(inclusive)}


def _short_frame(frame: str) -> str:
    # "data_received (gateway/session.py:103)" -> "data_received (gateway/session.py)":
    # line numbers would split one function into many rows.
    frame = frame.strip()
    if frame.startswith(("process ", "thread ")):
        return ""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3."):
        if marker in path:
            path = path.split(marker, 1)[1]
    path = path.replace(str(REPO) + "/", "").replace("/tmp/", "")
    return f"{name} ({path})"

