"""The servers a scenario measures, as child processes, and what is read from them.

A gateway (``python -m gateway.cli serve`` on free ports, settings as ``SMPPGW_*``
variables) or the floor, started in its own session and stopped (SIGTERM, then
SIGKILL) on every exit path; the code they run comes from HEAD exported to /tmp, the
working tree or another directory. Also: their RSS and CPU from /proc, accounts
created through the gateway's admin socket, and databases of their own on the
machine's PostgreSQL (scenario 9).
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.context import REPO, RunContext

START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


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
                # The log may be in a directory removed on the way out: quote its end.
                raise RuntimeError(f"{self.argv[2]} exited early: {self.log_tail()}")
            if line.startswith(ready):
                return seen
            seen.append(line)

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of the child's stderr, on one line (why it exited, usually)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
        return " / ".join(tail) or f"(empty log {self.log_path})"

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


def child_env(extra: dict[str, str], source: Path) -> dict[str, str]:
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
            check=True, cwd=source, env=child_env({}, source), capture_output=True, text=True,
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
    metrics_url: str | None = None


@contextmanager
def gateway(settings: dict[str, str], ctx: RunContext) -> Iterator[GatewayInfo]:
    """A gateway process on free ports with a fresh state directory; always stopped."""
    # /tmp keeps the admin socket path short of the 107-byte Unix limit.
    state = Path(tempfile.mkdtemp(prefix="smppgw-bench-", dir="/tmp"))
    env = {f"SMPPGW_{k.upper()}": v for k, v in {**settings, **ctx.gateway_env}.items()}
    child = Child(
        [sys.executable, "-m", "gateway.cli", "serve", "--state-dir", str(state / "var"),
         "--smpp-port", "0", "--metrics-port", "0",
             "--web-port", "-1"],
        child_env(env, ctx.source), state / "gateway.log", ctx.source,
    )
    try:
        lines = child.start("smppgw: ready")
        text = "".join(lines)
        m = re.search(r"SMPP listening on (\S+):(\d+)", text)
        a = re.search(r"admin socket (\S+)", text)
        if not m or not a:
            raise RuntimeError(f"gateway did not print its endpoints: {text!r}")
        metrics = re.search(r"metrics on (http://\S+)", text)
        yield GatewayInfo(m.group(1), int(m.group(2)), a.group(1), child.pid, child,
                          metrics.group(1) if metrics else None)
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
                  child_env({}, ctx.source), logdir / "floor.log", ctx.source)
    try:
        lines = child.start("floor: ready")
        m = re.search(r"listening on (\S+):(\d+)", "".join(lines))
        if not m:
            raise RuntimeError("floor did not print where it listens")
        yield m.group(1), int(m.group(2)), child
    finally:
        child.stop()
        shutil.rmtree(logdir, ignore_errors=True)


# --- databases on the machine's PostgreSQL ---------------------------------------------

# Where scenario 9 creates its databases: a server with trust authentication on
# loopback, reached through a database that exists (`test`); SMPPGW_BENCH_PG_URL
# points elsewhere.
PG_SERVER = os.environ.get("SMPPGW_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


class PostgresUnreachable(RuntimeError):
    """The server did not answer (refused, timed out, or refused our login)."""


def _pg_call(server: str, *statements: str) -> list[Any]:
    """The statements in turn on one connection (asyncpg, in an event loop of its own);
    returns the first value each gave."""
    import asyncio

    import asyncpg

    async def call() -> list[Any]:
        conn = await asyncpg.connect(server, timeout=5)
        try:
            return [await conn.fetchval(sql) for sql in statements]
        finally:
            await conn.close()

    return asyncio.run(call())


def postgres_facts(server: str) -> dict[str, str]:
    """The server's version and the settings that decide what a commit costs; raises
    PostgresUnreachable when it cannot be reached."""
    import asyncpg

    names = ("server_version", "synchronous_commit", "fsync", "max_connections")
    try:
        values = _pg_call(server, *(f"SHOW {name}" for name in names))
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise PostgresUnreachable(f"{type(exc).__name__}: {exc}") from exc
    return dict(zip(names, values, strict=True))


def count_rows(database_url: str, table: str) -> int:
    """Rows of one table of a gateway's database (`database_url` in its asyncpg form)."""
    server = database_url.replace("+asyncpg", "", 1)
    return int(_pg_call(server, f"SELECT count(*) FROM {table}")[0])


def gateway_database_url(server: str, database: str) -> str:
    """What a gateway's `database_url` is for `database` on `server` (asyncpg driver)."""
    return "postgresql+asyncpg://" + server.split("://", 1)[1].rsplit("/", 1)[0] + "/" + database


@contextmanager
def postgres_database(server: str, label: str) -> Iterator[str]:
    """A new, empty database on `server`, dropped on every exit (with whatever is still
    connected to it); yields the URL a gateway takes, which migrates it at start when
    its auto_migrate is on (scenario 9 sets it)."""
    name = f"smppgw_bench_{label}_{secrets.token_hex(4)}"
    _pg_call(server, f"CREATE DATABASE {name}")
    try:
        yield gateway_database_url(server, name)
    finally:
        _pg_call(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- what is read from them ------------------------------------------------------------


def scrape(url: str | None) -> dict[str, float]:
    """The gateway's own counters of interest (empty if it has no /metrics or lacks
    them, as older code does)."""
    if url is None:
        return {}
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return {}
    values: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in _SCRAPED:
            values[name] = float(value)
    return values


_SCRAPED = frozenset({
    "smppgw_store_commit_seconds_sum", "smppgw_store_commit_seconds_count",
    "smppgw_store_commit_messages_sum", "smppgw_bind_password_checks_total",
})


def commit_stats(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Store writer commits between two scrapes: how many, their mean duration, and the
    mean number of messages each wrote."""
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    commits = delta("smppgw_store_commit_seconds_count")
    if commits <= 0:
        return {}
    return {
        "commits": int(commits),
        "mean_commit_ms": round(1000 * delta("smppgw_store_commit_seconds_sum") / commits, 3),
        "messages_per_commit": round(delta("smppgw_store_commit_messages_sum") / commits, 1),
    }


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


# A client backend's process title: "postgres: 15/main: <user> <database> <client> <state>".
_BACKEND_TITLE = re.compile(r"postgres: [^:]+: \S+ (\S+) (?:\S+\(\d+\)|\[local\])")


def postgres_pids(database: str) -> list[int]:
    """The PostgreSQL server's processes that work for `database`: the postmaster, the
    shared ones (WAL writer, checkpointer, background writer...) and the backends
    connected to it, but not those of other databases (other people's tests)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        backend = _BACKEND_TITLE.match(title)
        if backend is None or backend.group(1) == database:
            pids.append(int(entry.name))
    return pids


class PostgresCpuMeter(CpuMeter):
    """CPU that the PostgreSQL server spends on `database` (see `postgres_pids`) between
    `start()` and `stop()`. A backend born in between counts from its birth; one that
    ended in between is lost (connections live as long as their pool, so this is rare).
    The shared processes also write others' WAL: a busy neighbour inflates the figure."""

    def __init__(self, database: str) -> None:
        super().__init__(0)
        self.database = database
        self.before: dict[int, float] = {}

    def _read(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in postgres_pids(self.database)}

    def start(self) -> None:
        self.before = self._read()
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        after = self._read()
        self.cpu = sum(cpu - self.before.get(pid, 0.0) for pid, cpu in after.items())
        self.wall = time.perf_counter() - self.t0


def machine_ticks() -> tuple[int, int]:
    """(busy, stolen) clock ticks of all the machine's cores so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq, steal


class MachineCpuMeter:
    """Cores the whole machine kept busy between `start()` and `stop()`: beside the
    processes measured, what is left is someone else's (the machine is shared)."""

    def start(self) -> None:
        self.ticks0, self.t0 = machine_ticks(), time.perf_counter()

    def stop(self) -> None:
        busy, steal = machine_ticks()
        self.busy = (busy - self.ticks0[0]) / os.sysconf("SC_CLK_TCK")
        self.steal = (steal - self.ticks0[1]) / os.sysconf("SC_CLK_TCK")
        self.wall = time.perf_counter() - self.t0

    def summary(self, measured_cpu: float) -> dict[str, float]:
        """`measured_cpu`: the CPU seconds of the processes measured in the same window."""
        wall = self.wall or 1.0
        return {
            "cores_busy": round(self.busy / wall, 2),
            "cores_busy_elsewhere": round(max(0.0, self.busy - measured_cpu) / wall, 2),
            "cores_stolen": round(self.steal / wall, 2),
        }


def create_accounts(admin_path: str, count: int, credits: int) -> list[tuple[str, str]]:
    """Accounts with enough credit, allowed from 127.0.0.1, through the admin socket.

    A few requests at once: each one hashes a password and commits, and overlapping the
    two roughly halves the time 10,000 accounts take (scenario 4 on a revision that
    binds an account only once).
    """
    from concurrent.futures import ThreadPoolExecutor

    from gateway.cli.admin import admin_call

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
    from gateway.cli.admin import admin_call

    answer = admin_call(Path(admin_path), "account.show", {"system_id": system_id}, timeout=60)
    return answer.get("result") or {"error": answer.get("error")}

