"""What the fault scenarios start, break and restore, each stopped on every exit path.

A gateway that keeps its state directory across a SIGKILL and a restart; the standalone
upstream simulator, restartable on the same port with its receipts kept (--state); a
PostgreSQL cluster of our own on a free port (the machine's shared server is never
restarted); a small tmpfs to fill; and the store read back after a run (messages,
debits, the ledger invariants, SQLite's integrity_check) in a child process running the
measured revision's code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.context import RunContext
from benchmarks.processes import Child, applicable, child_env

# --keep: state directories, logs and databases are left in /tmp for a look afterwards.
KEEP = {"state": False}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the gateway, killable and restartable on one state directory ----------------------


@dataclass
class Gateway:
    """`python -m gateway.cli serve` on a state directory that outlives the process."""

    ctx: RunContext
    state: Path
    settings: dict[str, str]
    child: Child | None = None
    host: str = ""
    port: int = 0
    admin: str = ""
    metrics_url: str | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.child is not None
        return self.child.pid

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.proc is not None \
            and self.child.proc.poll() is None

    def start(self, timeout: float = 120.0) -> Gateway:
        self.starts += 1
        env = {f"SMPPGW_{k.upper()}": v for k, v in
               {**self.settings, **self.ctx.gateway_env}.items()}
        log = self.state / f"gateway-{self.starts}.log"
        self.logs.append(log)
        self.child = Child(
            [sys.executable, "-m", "gateway.cli", "serve", "--state-dir", str(self.state / "var"),
             "--smpp-port", "0", "--metrics-port", "0",
             "--web-port", "-1"],
            child_env(env, self.ctx.source), log, self.ctx.source,
        )
        text = "".join(self.child.start("smppgw: ready", timeout))
        m = re.search(r"SMPP listening on (\S+):(\d+)", text)
        a = re.search(r"admin socket (\S+)", text)
        if not m or not a:
            raise RuntimeError(f"gateway did not print its endpoints: {text!r}")
        self.host, self.port, self.admin = m.group(1), int(m.group(2)), a.group(1)
        metrics = re.search(r"metrics on (http://\S+)", text)
        self.metrics_url = metrics.group(1) if metrics else None
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash or an OOM kill."""
        assert self.child is not None and self.child.proc is not None
        os.killpg(self.child.proc.pid, signal.SIGKILL)
        self.child.proc.wait(30)
        self.child.stop()  # closes its log

    def stop(self) -> int | None:
        return self.child.stop() if self.child is not None else None

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())


@contextmanager
def gateway_process(ctx: RunContext, settings: dict[str, str],
                    prefix: str = "smppgw-fault-") -> Iterator[Gateway]:
    """A started gateway (fresh state directory under /tmp, short enough for the admin
    socket); stopped on the way out, its directory kept only when it ended badly."""
    state = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    gw = Gateway(ctx, state, applicable(settings, ctx))
    ok = False
    try:
        gw.start()
        yield gw
        ok = True
    finally:
        code = gw.stop()
        if ok and code in (0, None, -signal.SIGKILL) and not KEEP["state"]:
            shutil.rmtree(state, ignore_errors=True)
        else:
            print(f"faults: gateway exited with {code}; logs kept in {state}", file=sys.stderr)


def create_account(admin: str, credits: int, *, ips: tuple[str, ...] = ("127.0.0.1",),
                   **extra: Any) -> tuple[str, str]:
    """One account through the admin socket (sender "bench", the load generator's)."""
    from gateway.cli.admin import admin_call

    args = {"credits": str(credits), "allowed_ips": list(ips), "senders": ["bench"], **extra}
    answer = admin_call(Path(admin), "account.create", args, timeout=120)
    if not answer.get("ok"):
        raise RuntimeError(f"account.create failed: {answer.get('error')}")
    return answer["result"]["system_id"], answer["result"]["password"]


# --- the upstream simulator, stopped and started again on its port ---------------------


class Simulator:
    """`python -m gateway.upstream.smsc_sim`: a fixed port, receipts kept in --state
    across a SIGTERM, one --log line per message accepted (appended across starts)."""

    def __init__(self, ctx: RunContext, workdir: Path, *args: str) -> None:
        self.ctx = ctx
        self.workdir = workdir
        self.args = list(args)
        self.port = free_port()
        self.log_path = workdir / "accepted.jsonl"
        self.state_path = workdir / "sim-state.json"
        self.child: Child | None = None
        self.starts = 0

    def url(self, **params: Any) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"smpp://smppgw:faultpw@127.0.0.1:{self.port}" + (f"?{query}" if query else "")

    def start(self) -> Simulator:
        self.starts += 1
        self.child = Child(
            [sys.executable, "-m", "gateway.upstream.smsc_sim", "--port", str(self.port),
             "--system-id", "smppgw", "--password", "faultpw", "--log", str(self.log_path),
             "--state", str(self.state_path), *self.args],
            child_env({}, self.ctx.source), self.workdir / f"sim-{self.starts}.log",
            self.ctx.source,
        )
        self.child.start("smsc_sim: ready")
        return self

    def stop(self) -> int | None:
        code = self.child.stop() if self.child is not None else None
        self.child = None
        return code

    def accepted_lines(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(x) for x in self.log_path.read_text().splitlines() if x.strip()]


@contextmanager
def simulator(ctx: RunContext, *args: str) -> Iterator[Simulator]:
    workdir = Path(tempfile.mkdtemp(prefix="smppgw-fault-sim-", dir="/tmp"))
    sim = Simulator(ctx, workdir, *args)
    try:
        yield sim.start()
    finally:
        sim.stop()
        if not KEEP["state"]:
            shutil.rmtree(workdir, ignore_errors=True)


# --- a PostgreSQL cluster of our own ---------------------------------------------------


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def _as_postgres(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool as the postgres user (initdb refuses root)."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


@dataclass
class OwnPostgres:
    """initdb in /tmp, on a free port, trust authentication on 127.0.0.1 only."""

    bindir: Path
    datadir: Path
    port: int

    @property
    def server_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *args: str, timeout: float = 60) -> None:
        _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-w",
                      "-t", str(int(timeout)), *args], timeout=timeout + 10)

    def start(self) -> None:
        self.pg_ctl("-l", str(self.datadir.parent / "postgres.log"), "-o",
                    f"-p {self.port} -k {self.datadir.parent} -c listen_addresses=127.0.0.1",
                    "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "stop")

    def psql(self, sql: str) -> None:
        _as_postgres([str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                      "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql],
                     timeout=60)


def postgres_unavailable() -> str | None:
    if _pg_bin() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb cannot run"
    return None


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    """A throwaway cluster (its files under /tmp, readable by postgres), removed after."""
    bindir = _pg_bin()
    if bindir is None:
        raise RuntimeError("no PostgreSQL server binaries")
    top = Path(tempfile.mkdtemp(prefix="smppgw-fault-pg-", dir="/tmp"))
    datadir = top / "data"
    if os.geteuid() == 0:
        shutil.chown(top, "postgres", "postgres")
    pg = OwnPostgres(bindir, datadir, free_port())
    _as_postgres([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                  "--auth=trust", "--no-sync", "-E", "UTF8"], timeout=120)
    try:
        pg.start()
        yield pg
    finally:
        try:
            pg.stop("immediate")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(top, ignore_errors=True)


# --- a small file system to fill -------------------------------------------------------


@dataclass
class SmallDisk:
    path: Path
    how: str  # "tmpfs" (mounted here), or why it could not be


@contextmanager
def small_tmpfs(megabytes: int) -> Iterator[SmallDisk]:
    """A tmpfs of `megabytes` (needs CAP_SYS_ADMIN); unmounted on the way out."""
    path = Path(tempfile.mkdtemp(prefix="smppgw-fault-disk-", dir="/tmp"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700",
                           "tmpfs", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(path, ignore_errors=True)
        raise PermissionError(f"mount tmpfs refused: {done.stderr.strip()}")
    try:
        yield SmallDisk(path, f"tmpfs of {megabytes} MB")
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        shutil.rmtree(path, ignore_errors=True)


def fill(path: Path, leave_bytes: int) -> int:
    """Write a filler file until `leave_bytes` are left free; returns its size."""
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    size = max(0, free - leave_bytes)
    chunk = b"\0" * (1 << 20)
    written = 0
    with open(path / "filler", "wb") as fh:
        while written < size:
            n = min(len(chunk), size - written)
            try:
                fh.write(chunk[:n])
            except OSError:
                break
            written += n
    return written


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


# --- the store, read back after a run --------------------------------------------------

# Run in a child on the measured revision's code, so the check reads the schema that
# revision wrote (and a half-edit of the shared tree cannot break the runner).
_STORE_CHECK = r'''
import asyncio, json, sys
import sqlalchemy as sa
from store import tables
from store.engine import make_engine
from store.invariants import ledger_violations

async def main(url, acked_path, system_id, credits):
    acked = {int(x) for x in open(acked_path).read().split()}
    engine = make_engine(url)
    out = {}
    try:
        async with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                out["integrity_check"] = (await conn.exec_driver_sql(
                    "PRAGMA integrity_check")).scalar()
            acc = (await conn.execute(sa.select(tables.accounts.c.id, tables.accounts.c.balance)
                   .where(tables.accounts.c.system_id == system_id))).one()
            m = tables.messages.c
            rows = (await conn.execute(sa.select(m.id, m.status, m.cost, m.ledger_id)
                    .where(m.account_id == acc.id, m.direction == "MT"))).all()
            debited = (await conn.execute(sa.select(sa.func.coalesce(
                sa.func.sum(tables.ledger.c.amount), 0)).where(
                tables.ledger.c.account_id == acc.id,
                tables.ledger.c.kind == "debit"))).scalar()
            d = tables.deliveries.c
            pending = (await conn.execute(sa.select(sa.func.count()).where(
                d.account_id == acc.id, d.state == "pending"))).scalar()
        status = {r.id: r.status for r in rows}
        costs = sum(int(r.cost) for r in rows)
        out.update(
            stored=len(rows),
            acked=len(acked),
            acked_missing=len(acked - set(status)),
            acked_not_final=sum(1 for i in acked if status.get(i) in (
                None, "ACCEPTED", "ENROUTE", "SCHEDULED", "SENT")),
            statuses={s: sum(1 for v in status.values() if v == s) for s in set(status.values())},
            costs=costs,
            debited=-int(debited),
            overcharged=-int(debited) - costs,
            balance=int(acc.balance),
            balance_expected=credits - costs if credits >= 0 else None,
            deliveries_pending=int(pending),
        )
        out["ledger_violations"] = await ledger_violations(engine)
    finally:
        await engine.dispose()
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
'''


def check_store(ctx: RunContext, url: str, acked: set[str] | list[str], system_id: str,
                credits: int = -1) -> dict[str, Any]:
    """The store after a run: acknowledged messages present and final, what was debited
    against what the stored messages cost, the ledger invariants, integrity_check."""
    with tempfile.NamedTemporaryFile("w", suffix=".ids", delete=False) as fh:
        fh.write("\n".join(str(x) for x in acked))
        ids = fh.name
    try:
        done = subprocess.run(
            [sys.executable, "-c", _STORE_CHECK, url, ids, system_id, str(credits)],
            cwd=ctx.source, env=child_env({}, ctx.source), capture_output=True, text=True,
            timeout=300, check=False,
        )
    finally:
        os.unlink(ids)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["store check failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def sqlite_url(state: Path) -> str:
    return f"sqlite+aiosqlite:///{state / 'var' / 'smppgw.db'}"


def wait_until(predicate: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
