"""The benchmark scenarios of issue 6, each one command, each leaving a result behind.

``python -m benchmarks.run SCENARIO [--size tiny|small|full]`` or ``... run all``.
A scenario starts what it needs as separate processes (the gateway through
``python -m gateway.cli serve`` on free ports with settings as ``SMPPGW_*`` variables,
or the floor server), drives it with `benchmarks.loadgen` from this process, stops
everything on any exit, writes ``<output-dir>/<scenario>-<UTC timestamp>.json`` and
appends one row to ``benchmarks/RESULTS.md`` (unless ``--no-record``).

Settings are the durable defaults (SQLite WAL, synchronous FULL) plus exactly what a
scenario lists in ``settings``; that list is printed in its row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.loadgen import LoadConfig, has_uvloop, raise_nofile_limit, run, run_load

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DEFAULT_OUTPUT = BENCH_DIR / "results"
DEFAULT_TABLE = BENCH_DIR / "RESULTS.md"
SIZES = ("tiny", "small", "full")
START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0

# What issue 6 asks of each scenario; printed beside every result.
TARGETS = {
    "throughput": ">= 30,000 msg/s and >= 15% of floor",
    "receipts": ">= 12,000 msg/s with all DLRs",
    "latency": "p99 < 10 ms at 5,000 msg/s",
    "connections": "10,000 sessions < 600 MB RSS",
    "codec": "(none; reference)",
    "forward": ">= 20,000 msg/s reach upstream",
    "floor": "(reference for s1)",
}
NUMBERS = {
    "throughput": 1, "receipts": 2, "latency": 3, "connections": 4, "codec": 5,
    "forward": 6, "floor": 7,
}
# `all` runs the floor before scenario 1, so s1 can be read as a fraction of it.
ALL_ORDER = ("codec", "floor", "throughput", "receipts", "latency", "connections", "forward")

# The load of each scenario by size. `full` is the issue's; `tiny` keeps the smoke test short.
LOADS: dict[str, dict[str, dict[str, Any]]] = {
    "throughput": {
        "tiny": {"messages": 400, "sessions": 2, "window": 20},
        "small": {"messages": 20_000, "sessions": 4, "window": 100},
        "full": {"messages": 200_000, "sessions": 4, "window": 100},
    },
    "latency": {
        "tiny": {"rate": 200, "duration": 1.0, "sessions": 2, "window": 100},
        "small": {"rate": 5_000, "duration": 5.0, "sessions": 4, "window": 100},
        "full": {"rate": 5_000, "duration": 30.0, "sessions": 4, "window": 100},
    },
    "connections": {
        "tiny": {"sessions": 20, "accounts": 2, "hold": 1.0, "enquire_interval": 0.5},
        "small": {"sessions": 1_000, "accounts": 10, "hold": 10.0, "enquire_interval": 5.0},
        "full": {"sessions": 10_000, "accounts": 100, "hold": 30.0, "enquire_interval": 10.0},
    },
    "codec": {
        "tiny": {"seconds": 0.05},
        "small": {"seconds": 0.5},
        "full": {"seconds": 2.0},
    },
}
LOADS["receipts"] = LOADS["throughput"]
LOADS["forward"] = LOADS["throughput"]
LOADS["floor"] = LOADS["throughput"]


# --- machine and bookkeeping -----------------------------------------------------------


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


def read_rss(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MB, from /proc/<pid>/status."""
    out: dict[str, float] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for key in ("VmRSS", "VmHWM"):
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
        if m:
            out[key] = round(int(m.group(1)) / 1024, 1)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); [0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used by a server between `start()` and `stop()`, per message and per second."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu0 = self.t0 = 0.0
        self.cpu = self.wall = 0.0

    def start(self) -> None:
        self.cpu0, self.t0 = cpu_seconds(self.pid), time.perf_counter()

    def stop(self) -> None:
        self.cpu = cpu_seconds(self.pid) - self.cpu0
        self.wall = time.perf_counter() - self.t0

    def summary(self, messages: int) -> dict[str, float]:
        return {
            "cpu_seconds": round(self.cpu, 2),
            # 1.0 = one core busy; on two cores 2.0 would be the whole machine.
            "cores_busy": round(self.cpu / self.wall, 2) if self.wall else 0.0,
            "cpu_us_per_message": round(1e6 * self.cpu / messages, 1) if messages else 0.0,
        }


@dataclass
class Outcome:
    """What one scenario hands back to be written as JSON and as a table row."""

    result: dict[str, Any]
    key: str
    met: bool | None
    settings: dict[str, str] = field(default_factory=dict)
    skipped: str = ""


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
    written: list[Path] = field(default_factory=list)


# --- child processes -------------------------------------------------------------------


class Child:
    """A server started as its own process (and session), stopped on every exit path."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> None:
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []

    def start(self, ready: str, timeout: float = START_TIMEOUT) -> list[str]:
        """Start and read stdout until the `ready` line; returns the lines before it."""
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=self._log,
            text=True, start_new_session=True,
        )
        # A thread drains stdout so a chatty child can never block on a full pipe.
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"{self.argv[2]} not ready after {timeout:.0f}s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"{self.argv[2]} exited early; see {self.log_path}")
            if line.startswith(ready):
                return seen
            seen.append(line)

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)
        self.lines.put(None)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL the child's process group; returns its exit code."""
        if self.proc is None:
            return None
        code = None
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            self._log.close()
        return code


def _clean_env(extra: dict[str, str], source: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMPPGW_")}
    env.update(extra)
    # PYTHONPATH wins over the editable install, so children run `source`'s code.
    env["PYTHONPATH"] = str(source)
    return env


def export_head() -> tuple[Path, str]:
    """HEAD exported (git archive) to /tmp once per commit; returns (dir, short sha).

    The working tree is shared with engineers editing it right now, so a run measures
    a committed revision, named in its row, not whatever half-edit is on disk.
    """
    sha = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=True, cwd=REPO, capture_output=True,
        text=True, timeout=10,
    ).stdout.strip()
    target = Path(f"/tmp/smppgw-src-{sha}")
    if not target.exists():
        staging = Path(tempfile.mkdtemp(prefix=f"smppgw-src-{sha}-", dir="/tmp"))
        archive = subprocess.run(
            ["git", "archive", "HEAD"], check=True, cwd=REPO, capture_output=True, timeout=60,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(staging)], input=archive, check=True, timeout=60)
        try:
            staging.rename(target)
        except OSError:  # another run exported the same commit first
            shutil.rmtree(staging, ignore_errors=True)
    return target, sha


_SETTINGS_CACHE: dict[Path, frozenset[str]] = {}


def known_settings(source: Path) -> frozenset[str]:
    """The Settings fields of the gateway in `source` (asked of that code, in a child)."""
    if source not in _SETTINGS_CACHE:
        code = (
            "import dataclasses; from config.settings import Settings; "
            "print(' '.join(f.name for f in dataclasses.fields(Settings)))"
        )
        probe = subprocess.run(
            [sys.executable, "-c", code],
            check=True, cwd=source, env=_clean_env({}, source), capture_output=True, text=True,
            timeout=60,
        )
        _SETTINGS_CACHE[source] = frozenset(probe.stdout.split())
    return _SETTINGS_CACHE[source]


def applicable(settings: dict[str, str], ctx: RunContext) -> dict[str, str]:
    """Only the settings this revision has: an unknown one would be listed yet do nothing."""
    known = known_settings(ctx.source)
    return {k: v for k, v in settings.items() if k in known}


@dataclass
class GatewayInfo:
    host: str
    port: int
    admin: str
    pid: int
    child: Child


@contextmanager
def gateway(settings: dict[str, str], ctx: RunContext) -> Iterator[GatewayInfo]:
    """A gateway process on free ports with a fresh state directory; always stopped."""
    # /tmp keeps the admin socket path short of the 107-byte Unix limit.
    state = Path(tempfile.mkdtemp(prefix="smppgw-bench-", dir="/tmp"))
    env = {f"SMPPGW_{k.upper()}": v for k, v in {**settings, **ctx.gateway_env}.items()}
    child = Child(
        [sys.executable, "-m", "gateway.cli", "serve", "--state-dir", str(state / "var"),
         "--smpp-port", "0", "--metrics-port", "0"],
        _clean_env(env, ctx.source), state / "gateway.log", ctx.source,
    )
    try:
        lines = child.start("smppgw: ready")
        text = "".join(lines)
        m = re.search(r"SMPP listening on (\S+):(\d+)", text)
        a = re.search(r"admin socket (\S+)", text)
        if not m or not a:
            raise RuntimeError(f"gateway did not print its endpoints: {text!r}")
        yield GatewayInfo(m.group(1), int(m.group(2)), a.group(1), child.pid, child)
    finally:
        code = child.stop()
        if code not in (0, None):
            print(f"benchmarks: gateway exited with {code}; log kept in {state}", file=sys.stderr)
        else:
            shutil.rmtree(state, ignore_errors=True)


@contextmanager
def floor_server(ctx: RunContext) -> Iterator[tuple[str, int, Child]]:
    logdir = Path(tempfile.mkdtemp(prefix="smppgw-floor-", dir="/tmp"))
    child = Child([sys.executable, "-m", "benchmarks.floor", "--port", "0"],
                  _clean_env({}, ctx.source), logdir / "floor.log", ctx.source)
    try:
        lines = child.start("floor: ready")
        m = re.search(r"listening on (\S+):(\d+)", "".join(lines))
        if not m:
            raise RuntimeError("floor did not print where it listens")
        yield m.group(1), int(m.group(2)), child
    finally:
        child.stop()
        shutil.rmtree(logdir, ignore_errors=True)


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
            [spy, "record", "--pid", str(self.pid), "--rate", "100", "--nonblocking",
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


def create_accounts(admin_path: str, count: int, credits: int) -> list[tuple[str, str]]:
    """Accounts with enough credit, allowed from 127.0.0.1, through the admin socket.

    A few requests at once: each one hashes a password and commits, and overlapping the
    two roughly halves the time 10,000 accounts take (scenario 4 on a revision that
    binds an account only once).
    """
    from concurrent.futures import ThreadPoolExecutor

    from gateway.cli import admin_call

    def one(_: int) -> tuple[str, str]:
        answer = admin_call(
            Path(admin_path), "account.create",
            # "bench" is the load generator's source_addr: only enabled senders may submit.
            {"credits": str(credits), "allowed_ips": ["127.0.0.1"], "senders": ["bench"]},
            timeout=120,
        )
        if not answer.get("ok"):
            raise RuntimeError(f"account.create failed: {answer.get('error')}")
        return answer["result"]["system_id"], answer["result"]["password"]

    with ThreadPoolExecutor(max_workers=4 if count > 1 else 1) as pool:
        return list(pool.map(one, range(count)))


def show_account(admin_path: str, system_id: str) -> dict[str, Any]:
    """The account as the gateway sees it after the run (balance, limits if shown)."""
    from gateway.cli import admin_call

    answer = admin_call(Path(admin_path), "account.show", {"system_id": system_id}, timeout=60)
    return answer.get("result") or {"error": answer.get("error")}


# --- scenarios -------------------------------------------------------------------------


def _throughput_settings(spec: dict[str, Any], ctx: RunContext) -> dict[str, str]:
    # New accounts take these defaults: the window must admit the load's window, the
    # messages/s cap (20 by default) must not be what is measured, and one account
    # binds all the load's sessions (1 by default).
    wanted = {
        "default_window": str(spec["window"]),
        "default_throughput": "100000",
        "default_bind_limit": str(spec["sessions"]),
    }
    return applicable(wanted, ctx)


def _latency_summary(lat: dict[str, float]) -> str:
    return f"p50/p99/max {lat['p50']:.1f}/{lat['p99']:.1f}/{lat['max']:.1f} ms"


def _load_against_gateway(
    ctx: RunContext, spec: dict[str, Any], settings: dict[str, str], registered_delivery: int,
    rate: float | None = None, messages: int | None = None,
) -> tuple[dict[str, Any], GatewayInfo]:
    sessions = spec["sessions"]
    # Without default_bind_limit an account binds once, so each session gets its own.
    count = 1 if "default_bind_limit" in settings else sessions
    with gateway(settings, ctx) as gw:
        total = messages if messages is not None else spec["messages"]
        accounts = create_accounts(gw.admin, count, total + 1000)
        system_id = accounts[0][0]
        config = LoadConfig(
            host=gw.host, port=gw.port, credentials=accounts,
            sessions=sessions, window=spec["window"], messages=total, rate=rate,
            registered_delivery=registered_delivery, dlr_timeout=120.0,
            time_limit=_time_limit(total, rate),
        )
        profile: dict[str, Any] = {}
        profiler = Profiler(ctx, gw.pid, ctx.current, profile)
        meter = CpuMeter(gw.pid)

        own = {"cpu0": 0.0, "cpu": 0.0}

        def started() -> None:
            profiler.start()
            meter.start()
            own["cpu0"] = time.process_time()

        def finished() -> None:
            own["cpu"] = time.process_time() - own["cpu0"]
            meter.stop()
            profiler.stop()

        try:
            result = run(run_load(config, on_bound=started, before_unbind=finished)).as_dict()
        finally:
            profiler.stop()
        result.update(profile)
        result["gateway_cpu"] = meter.summary(result["responses"])
        # The generator shares the two cores: its own CPU says what it took from them.
        result["loadgen_cpu_seconds"] = round(own["cpu"], 2)
        result["gateway_rss_mb"] = read_rss(gw.pid)
        result["accounts"] = len(accounts)
        result["account"] = show_account(gw.admin, system_id)
        return result, gw


def _time_limit(messages: int, rate: float | None) -> float:
    # Generous but finite: 1,000 msg/s worst case plus room for DLRs and start-up.
    floor = messages / rate if rate else 0.0
    return max(60.0, floor * 2, messages / 1000 + 120)


def _sessions_note(result: dict[str, Any]) -> str:
    return f"; {result['sessions_bound']} sessions on {result.get('accounts', 1)} account(s)"


def _all_ok(result: dict[str, Any]) -> bool:
    return (
        result["statuses"] == {"ESME_ROK": result["messages_requested"]}
        and not result["timed_out"]
    )


def scenario_throughput(ctx: RunContext) -> Outcome:
    spec = LOADS["throughput"][ctx.size]
    settings = _throughput_settings(spec, ctx)
    result, _ = _load_against_gateway(ctx, spec, settings, registered_delivery=0)
    rate = result["accepted_per_second"]
    key = f"{rate:,.0f} msg/s; submit_sm_resp {_latency_summary(result['submit_latency_ms'])}"
    met = rate >= 30_000 and _all_ok(result)
    if ctx.floor_rate:
        fraction = rate / ctx.floor_rate
        result["fraction_of_floor"] = round(fraction, 4)
        key += f"; {fraction:.1%} of floor ({ctx.floor_rate:,.0f})"
        met = met and fraction >= 0.15
    else:
        key += "; floor not run in this run"
    if not _all_ok(result):
        key += f"; statuses {result['statuses']}"
    key += _sessions_note(result)
    return Outcome(result, key, met, settings)


def scenario_receipts(ctx: RunContext) -> Outcome:
    spec = LOADS["receipts"][ctx.size]
    settings = _throughput_settings(spec, ctx)
    result, _ = _load_against_gateway(ctx, spec, settings, registered_delivery=1)
    # The honest rate: accepted messages over the time until the last DLR arrived.
    done = result["dlr_complete_seconds"]
    all_dlrs = result["dlrs_matched"] == result["dlrs_expected"] == result["messages_requested"]
    end_to_end = result["dlrs_matched"] / done if done > 0 else 0.0
    result["end_to_end_per_second"] = round(end_to_end, 1)
    key = (
        f"{end_to_end:,.0f} msg/s with DLRs ({result['accepted_per_second']:,.0f} acked/s); "
        f"DLRs {result['dlrs_matched']}/{result['messages_requested']}; "
        f"DLR {_latency_summary(result['dlr_latency_ms'])}"
    )
    met = end_to_end >= 12_000 and all_dlrs and _all_ok(result)
    return Outcome(result, key + _sessions_note(result), met, settings)


def scenario_latency(ctx: RunContext) -> Outcome:
    spec = {**LOADS["latency"][ctx.size], **ctx.overrides}
    settings = _throughput_settings(spec, ctx)
    messages = int(spec["rate"] * spec["duration"])
    result, _ = _load_against_gateway(
        ctx, spec, settings, registered_delivery=0, rate=float(spec["rate"]), messages=messages,
    )
    lat = result["submit_latency_ms"]
    key = (
        f"{_latency_summary(lat)} at {spec['rate']:,.0f} msg/s for {spec['duration']:g}s "
        f"(achieved {result['accepted_per_second']:,.0f}/s, max backlog {result['max_backlog']})"
    )
    met = lat["p99"] < 10.0 and _all_ok(result) and spec["rate"] >= 5_000
    return Outcome(result, key + _sessions_note(result), met, settings)


def scenario_connections(ctx: RunContext) -> Outcome:
    spec = LOADS["connections"][ctx.size]
    sessions = spec["sessions"]
    # The gateway inherits this process's limit: one descriptor per session plus its own.
    raise_nofile_limit(2 * sessions + 512)
    # Binds per account are limited (1 by default, at most 100): spread the sessions
    # over accounts; a revision without default_bind_limit needs one account each.
    settings = applicable({"default_bind_limit": str(-(-sessions // spec["accounts"]))}, ctx)
    count = spec["accounts"] if settings else sessions
    with gateway(settings, ctx) as gw:
        t0 = time.monotonic()
        accounts = create_accounts(gw.admin, count, 10)
        create_seconds = time.monotonic() - t0
        rss: dict[str, Any] = {"before_bind": read_rss(gw.pid)}
        config = LoadConfig(
            host=gw.host, port=gw.port, credentials=accounts, sessions=sessions,
            messages=0, idle_seconds=spec["hold"], enquire_interval=spec["enquire_interval"],
            time_limit=max(120.0, sessions * 0.1 + spec["hold"] + 60),
        )
        result = run(run_load(
            config,
            on_bound=lambda: rss.__setitem__("all_bound", read_rss(gw.pid)),
            before_unbind=lambda: rss.__setitem__("end_of_hold", read_rss(gw.pid)),
        )).as_dict()
        result["gateway_rss_mb"] = rss
        result["accounts"] = len(accounts)
        result["account_create_seconds"] = round(create_seconds, 1)
    bound = result["sessions_bound"]
    held = rss.get("end_of_hold", {}).get("VmRSS", 0.0)
    peak = rss.get("end_of_hold", {}).get("VmHWM", 0.0)
    key = (
        f"{bound:,}/{sessions:,} bound over {len(accounts)} accounts in "
        f"{result['bind_seconds']:.0f}s; RSS {held:.0f} MB (peak {peak:.0f}, idle "
        f"{rss['before_bind'].get('VmRSS', 0):.0f}); enquire_link "
        f"{result['enquire_link_resps']}/{result['enquire_links_sent']} "
        f"p99 {result['enquire_link_latency_ms']['p99']:.1f} ms"
    )
    met = bound >= 10_000 and peak < 600 and not result["timed_out"]
    return Outcome(result, key, met, settings)


def scenario_codec(ctx: RunContext) -> Outcome:
    from pdu.codec import DeliverSm, SubmitSm, decode, encode
    from pdu.tlv import Tag, cstr_tlv, int_tlv

    seconds = LOADS["codec"][ctx.size]["seconds"]
    submit = SubmitSm(
        sequence_number=7, source_addr_ton=5, source_addr="bench", dest_addr_ton=1,
        dest_addr_npi=1, destination_addr="33601020304", registered_delivery=1,
        short_message=b"Benchmark message: your code is 123456",
    )
    receipt = (
        b"id:7262058840178212864 sub:001 dlvrd:001 submit date:2611251330 "
        b"done date:2611251330 stat:DELIVRD err:000 text:Benchmark message: y"
    )
    deliver = DeliverSm(
        sequence_number=9, source_addr_ton=1, source_addr_npi=1, source_addr="33601020304",
        dest_addr_ton=5, destination_addr="bench", esm_class=0x04, short_message=receipt,
        tlvs=[cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, "7262058840178212864"),
              int_tlv(Tag.MESSAGE_STATE, 2)],
    )
    submit_bytes, deliver_bytes = encode(submit), encode(deliver)
    cases: dict[str, Callable[[], object]] = {
        "decode_submit_sm": lambda: decode(submit_bytes),
        "encode_submit_sm": lambda: encode(submit),
        "decode_deliver_sm": lambda: decode(deliver_bytes),
        "encode_deliver_sm": lambda: encode(deliver),
    }
    result: dict[str, Any] = {
        "submit_sm_octets": len(submit_bytes), "deliver_sm_octets": len(deliver_bytes),
    }
    for name, fn in cases.items():
        result[name] = _ops_per_second(fn, seconds)
    key = "; ".join(f"{n} {result[n]['ops_per_second']:,.0f}/s" for n in cases)
    return Outcome(result, key, None)


def _ops_per_second(fn: Callable[[], object], seconds: float) -> dict[str, float]:
    """Best of three timed runs of about `seconds` each, in the manner of timeit."""
    timer = timeit.Timer(fn)
    number = 1
    while timer.timeit(number) < seconds / 10:
        number *= 2
    number = max(1, int(number * 10))
    best = min(timer.repeat(repeat=3, number=number))
    return {"ops_per_second": round(number / best, 1), "usec_per_op": round(best / number * 1e6, 3),
            "iterations": number}


def scenario_forward(ctx: RunContext) -> Outcome:
    if not (ctx.source / "gateway" / "smsc_sim.py").exists():
        reason = "skipped: upstream connector not available (no gateway.smsc_sim)"
        return Outcome({"skipped": reason}, reason, None, skipped=reason)
    spec = LOADS["forward"][ctx.size]
    workdir = Path(tempfile.mkdtemp(prefix="smppgw-sim-", dir="/tmp"))
    log_path = workdir / "accepted.jsonl"
    # --log writes one line per message the upstream accepted: counting lines as they
    # appear is how "reached the upstream" is timed, from outside both processes.
    sim = Child(
        [sys.executable, "-m", "gateway.smsc_sim", "--port", "0", "--system-id", "smppgw",
         "--password", "benchpw", "--log", str(log_path)],
        _clean_env({}, ctx.source), workdir / "smsc_sim.log", ctx.source,
    )
    try:
        lines = sim.start("smsc_sim: ready")
        m = re.search(r"listening on (\S+):(\d+)", "".join(lines))
        if not m:
            raise RuntimeError("smsc_sim did not print where it listens")
        url = (f"smpp://smppgw:benchpw@{m.group(1)}:{m.group(2)}"
               f"?window={spec['window']}&throughput=100000")
        settings = {**_throughput_settings(spec, ctx), **applicable({"upstream_url": url}, ctx)}
        with gateway(settings, ctx) as gw:
            count = 1 if "default_bind_limit" in settings else spec["sessions"]
            accounts = create_accounts(gw.admin, count, spec["messages"] + 1000)
            config = LoadConfig(
                host=gw.host, port=gw.port, credentials=accounts, sessions=spec["sessions"],
                window=spec["window"], messages=spec["messages"],
                time_limit=_time_limit(spec["messages"], None),
            )
            meters = {"gateway_cpu": CpuMeter(gw.pid), "upstream_cpu": CpuMeter(sim.pid)}
            result = run(_load_and_count_upstream(config, log_path, meters))
            result["gateway_rss_mb"] = read_rss(gw.pid)
            result["accounts"] = len(accounts)
    finally:
        sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    stopped = re.search(r"stopped after (\d+) messages", "".join(sim.stdout))
    result["upstream_accepted_by_sim"] = int(stopped.group(1)) if stopped else None
    upstream_rate = result["upstream_per_second"]
    key = (
        f"{upstream_rate:,.0f} msg/s reached upstream ({result['upstream_received']:,}/"
        f"{spec['messages']:,}); {result['accepted_per_second']:,.0f} acked/s; submit_sm_resp "
        f"{_latency_summary(result['submit_latency_ms'])}"
    )
    met = (upstream_rate >= 20_000 and _all_ok(result)
           and result["upstream_received"] == spec["messages"])
    return Outcome(result, key, met, settings)


async def _load_and_count_upstream(
    config: LoadConfig, log_path: Path, meters: dict[str, CpuMeter]
) -> dict[str, Any]:
    """Run the load while counting the upstream's log lines; wait for the stragglers.

    `meters` measure each process's CPU from the first submit to the last arrival
    upstream: the simulator shares the two cores and may be what limits the rate.
    """
    seen = {"count": 0, "t0": 0.0, "last": 0.0, "offset": 0}

    def poll() -> None:
        try:
            with log_path.open("rb") as fh:
                fh.seek(seen["offset"])
                chunk = fh.read()
        except FileNotFoundError:
            return
        # Count whole lines only; a half-written one is counted on the next poll.
        whole = chunk.rfind(b"\n") + 1
        if whole:
            seen["offset"] += whole
            seen["count"] += chunk.count(b"\n", 0, whole)
            seen["last"] = time.perf_counter()

    async def watch() -> None:
        while True:
            poll()
            await asyncio.sleep(0.05)

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        def started() -> None:
            seen["t0"] = time.perf_counter()
            for meter in meters.values():
                meter.start()

        result = (await run_load(config, on_bound=started)).as_dict()
        wanted = result["statuses"].get("ESME_ROK", 0)
        deadline = time.perf_counter() + 60 + config.messages / 1000
        while seen["count"] < wanted and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        poll()
        for meter in meters.values():
            meter.stop()
    finally:
        watcher.cancel()
    for name, meter in meters.items():
        result[name] = meter.summary(seen["count"])
    span = seen["last"] - seen["t0"] if seen["count"] else 0.0
    result["upstream_received"] = seen["count"]
    result["upstream_seconds"] = round(span, 3)
    result["upstream_per_second"] = round(seen["count"] / span, 1) if span > 0 else 0.0
    return result


def scenario_floor(ctx: RunContext) -> Outcome:
    spec = LOADS["floor"][ctx.size]
    with floor_server(ctx) as (host, port, child):
        config = LoadConfig(
            host=host, port=port, system_id="floor", password="floor",
            sessions=spec["sessions"], window=spec["window"], messages=spec["messages"],
            time_limit=_time_limit(spec["messages"], None),
        )
        meter = CpuMeter(child.pid)
        result = run(run_load(config, on_bound=meter.start, before_unbind=meter.stop)).as_dict()
        result["server_rss_mb"] = read_rss(child.pid)
        result["server_cpu"] = meter.summary(result["responses"])
    rate = result["accepted_per_second"]
    ctx.floor_rate = rate if _all_ok(result) else None
    key = f"{rate:,.0f} msg/s; submit_sm_resp {_latency_summary(result['submit_latency_ms'])}"
    return Outcome(result, key, None)


SCENARIOS: dict[str, Callable[[RunContext], Outcome]] = {
    "throughput": scenario_throughput,
    "receipts": scenario_receipts,
    "latency": scenario_latency,
    "connections": scenario_connections,
    "codec": scenario_codec,
    "forward": scenario_forward,
    "floor": scenario_floor,
}
ALIASES = {str(n): name for name, n in NUMBERS.items()} | {f"s{n}": name for name, n in NUMBERS.items()}


# --- recording -------------------------------------------------------------------------

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
        "durable_defaults": "SQLite WAL, sqlite_synchronous=FULL",
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


# --- command line ----------------------------------------------------------------------


def run_scenarios(names: list[str], ctx: RunContext) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}
    for name in names:
        started = datetime.now(UTC)
        t0 = time.monotonic()
        print(f"benchmarks: {NUMBERS[name]} {name} ({ctx.size}) ...", flush=True)
        ctx.current = name
        try:
            outcome = SCENARIOS[name](ctx)
        except Exception as exc:  # noqa: BLE001  (one broken scenario must not hide the rest)
            reason = f"failed: {type(exc).__name__}: {exc}"
            outcome = Outcome({"error": reason}, reason, False)
        path = record(ctx, name, outcome, started, time.monotonic() - t0)
        met = {True: "met", False: "NOT met", None: "-"}[outcome.met]
        print(f"  {outcome.key}\n  target {TARGETS[name]}: {met}\n  -> {path}", flush=True)
        outcomes[name] = outcome
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
    if "floor" in names and "throughput" in names:
        # s1 is reported as a fraction of the floor measured just before it.
        names.remove("floor")
        names.insert(names.index("throughput"), "floor")
    extra = {}
    for item in args.gateway_env:
        name, _, value = item.partition("=")
        extra[name.lower().removeprefix("smppgw_")] = value
    if args.source == "head":
        source, commit = export_head()
    elif args.source == "worktree":
        source, commit = REPO, git_commit()
    else:
        source = Path(args.source).resolve()
        commit = f"dir:{source.name}"
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
