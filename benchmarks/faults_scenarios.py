"""The fault and abuse scenarios: their sizes, targets, and how each runs.

Each starts what it needs as processes (`benchmarks.faults_processes`), breaks one thing
(a SIGKILL, the upstream, PostgreSQL, the disk) or attacks (malformed PDUs, wrong binds,
a client that never reads, idle connections) while a customer works, and hands back
an `Outcome` whose key line holds the figures, judged against the issue's target.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.context import REPO, Outcome, RunContext
from benchmarks.faults_load import (
    Timeline,
    acked_ids,
    bind_storm,
    close_all,
    customer_config,
    idle_connections,
    leave,
    non_reader,
    open_sessions,
    paced,
    still_open,
    try_bind,
)
from benchmarks.faults_processes import (
    check_store as read_store,
)
from benchmarks.faults_processes import (
    create_account,
    fill,
    free_bytes,
    gateway_process,
    own_postgres,
    postgres_unavailable,
    simulator,
    small_tmpfs,
    sqlite_url,
)
from benchmarks.load import Load, percentiles
from benchmarks.loadgen import raise_nofile_limit, run
from benchmarks.processes import applicable, child_env, read_rss, scrape
from pdu.status import status_name

# The gateway's deliver_sm window towards a customer session (gateway.app.DELIVER_WINDOW):
# after a crash at most this many receipts per session may arrive twice.
DELIVER_WINDOW = 10

TARGETS = {
    "kill": "0 acked lost, 0 double debits, 0 DLRs missing, duplicates <= 1 window "
            f"({DELIVER_WINDOW}) per session",
    "upstream": "nothing lost, every DLR back once",
    "postgres": "refused cleanly (ESME_RSYSERR/ESME_RTHROTTLED) while down, nothing acked "
                "lost, back by itself",
    "disk": "clean refusals, integrity_check ok, books balance, back when space returns",
    "malformed": "server stays up, every malformed PDU answered, bystander served "
                 "(p99 reported)",
    "wrong_binds": "every bind answered, at most bind_fail_limit_ip (20) reach a password "
                   "check, server up, the owner still binds",
    "lockout": "the owner still binds after a stranger's wrong binds",
    "nonreader": "dropped at its deadline, RSS bounded, the owner still binds",
    "idle": "the owner still binds, RSS bounded (< 600 MB)",
}
ORDER = tuple(TARGETS)

# "small" and "full" are the runner's; "test" is the suite's (tests/test_faults_suite.py).
SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "kill": {
        # Killed once half the messages are acked and receipts flow, while submits still
        # do (the writer is busy with submits, outcomes and delivery acknowledgements at
        # once). Receipts lag far behind submits, so the receipt count is a small one.
        "small": {"messages": 20_000, "sessions": 2, "window": 50, "kill_after_dlrs": 100,
                  "latency_ms": 100, "dlr_wait": 300, "settle": 3},
        "full": {"messages": 100_000, "sessions": 4, "window": 100, "kill_after_dlrs": 300,
                 "latency_ms": 100, "dlr_wait": 900, "settle": 5},
        "test": {"messages": 4_000, "sessions": 2, "window": 20, "kill_after_dlrs": 50,
                 "latency_ms": 100, "dlr_wait": 120, "settle": 2},
    },
    "upstream": {
        "small": {"rate": 100, "before": 3, "outage": 15, "after": 5, "dlr_wait": 90},
        "full": {"rate": 200, "before": 5, "outage": 60, "after": 10, "dlr_wait": 180},
        "test": {"rate": 50, "before": 2, "outage": 5, "after": 2, "dlr_wait": 60},
    },
    "postgres": {
        "small": {"rate": 100, "before": 3, "down": 5, "after": 8, "dlr_wait": 60},
        "full": {"rate": 200, "before": 5, "down": 20, "after": 20, "dlr_wait": 120},
        "test": {"rate": 50, "before": 2, "down": 3, "after": 6, "dlr_wait": 60},
    },
    "disk": {
        "small": {"megabytes": 32, "rate": 300, "before": 3, "full": 10, "after": 6},
        "full": {"megabytes": 64, "rate": 500, "before": 5, "full": 30, "after": 10},
        "test": {"megabytes": 32, "rate": 100, "before": 2, "full": 4, "after": 5},
    },
    "malformed": {
        "small": {"pdus": 50_000, "connections": 8, "rate": 100, "baseline": 3, "after": 2},
        "full": {"pdus": 1_000_000, "connections": 8, "rate": 200, "baseline": 5, "after": 3},
        "test": {"pdus": 10_000, "connections": 8, "rate": 50, "baseline": 2, "after": 2},
    },
    "wrong_binds": {"small": {"binds": 200}, "full": {"binds": 1_000}, "test": {"binds": 200}},
    "lockout": {"small": {"attempts": 100, "concurrency": 10},
                "full": {"attempts": 1_000, "concurrency": 20},
                "test": {"attempts": 30, "concurrency": 10}},
    "nonreader": {"small": {"seconds": 10}, "full": {"seconds": 30}, "test": {"seconds": 5}},
    "idle": {"small": {"connections": 1_000, "hold": 10},
             "full": {"connections": 5_000, "hold": 20},
             "test": {"connections": 300, "hold": 3}},
}

# Loopback addresses of the strangers; the owner binds from 127.0.0.1, the only
# address on its list.
STRANGER = "127.0.0.2"
GUESSER = "127.0.0.3"
CREDITS = 10_000_000
NOT_FINAL = ("ACCEPTED", "ENROUTE", "SCHEDULED")


def _load_settings(sessions: int, window: int, **more: str) -> dict[str, str]:
    return {"default_window": str(window), "default_throughput": "100000",
            "default_bind_limit": str(sessions), "dlr_retry_interval": "1", **more}


def _lat(lat: dict[str, float]) -> str:
    return f"p50/p99/max {lat['p50']:.1f}/{lat['p99']:.1f}/{lat['max']:.0f} ms"


def _statuses(load: Load) -> dict[str, int]:
    names = {-1: "LOST_ON_DISCONNECT", -2: "RESPONSE_TIMEOUT"}
    return {names.get(k) or status_name(k): v for k, v in sorted(load.statuses.items())}


async def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def check_store(ctx: RunContext, url: str, acked: set[str], system_id: str) -> dict[str, Any]:
    return read_store(ctx, url, acked, system_id, CREDITS)


def _books(store: dict[str, Any]) -> tuple[int, int, int]:
    """(acked missing from the store, credits charged beyond the messages' cost, ledger
    violations); -1 where the store could not be read."""
    if "error" in store:
        return -1, -1, -1
    return store["acked_missing"], store["overcharged"], len(store["ledger_violations"])


async def _until_stalled(load: Load, cap: float, stall: float = 20.0) -> bool:
    """Wait for every acked message's receipt; give up when none came for `stall`
    seconds (or after `cap`): the rest are missing, not slow."""
    deadline = time.monotonic() + cap
    seen, since = load.dlrs_received, time.monotonic()
    while load.awaiting_dlr and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        if load.dlrs_received != seen:
            seen, since = load.dlrs_received, time.monotonic()
        elif time.monotonic() - since > stall:
            break
    return not load.awaiting_dlr


# --- kill -9 under load with DLRs flowing ----------------------------------------------


def scenario_kill(ctx: RunContext) -> Outcome:
    spec = SIZES["kill"][ctx.size]
    with simulator(ctx, "--latency-ms", str(spec["latency_ms"])) as sim:
        settings = _load_settings(spec["sessions"], spec["window"],
                                  upstream_url=sim.url(window=100, throughput=100000))
        with gateway_process(ctx, settings) as gw:
            account = create_account(gw.admin, CREDITS)
            result = run(_kill_run(gw, account, spec))
            acked = result.pop("acked_ids")
            gw.stop()
            store = check_store(ctx, sqlite_url(gw.state), acked, account[0])
        result["upstream_lines"] = len(sim.accepted_lines())
    result["store"] = store
    lost, over, violations = _books(store)
    bound = DELIVER_WINDOW * result["sessions_at_kill"]
    dup = result["dlrs_duplicated"]
    key = (
        f"killed at {result['acked_at_kill']:,} of {spec['messages']:,} acked / "
        f"{result['dlrs_at_kill']:,} DLRs; "
        f"acked {result['acked']:,}: lost {lost}, overcharged {over} credits "
        f"({violations} ledger violations), DLRs missing {result['dlrs_missing']}, "
        f"duplicated {dup} (bound {bound} = {result['sessions_at_kill']} sessions x "
        f"{DELIVER_WINDOW}); restart to first DLR {result['restart_to_first_dlr_s']} s"
    )
    met = lost == 0 and over == 0 and violations == 0 and result["dlrs_missing"] == 0 \
        and dup <= bound
    return Outcome(result, key, met, settings)


async def _kill_run(gw: Any, account: tuple[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    config = customer_config(gw.host, gw.port, account, sessions=spec["sessions"],
                             window=spec["window"], messages=spec["messages"])
    load = Load(config)
    sessions, binds = await open_sessions(load, gw.host, gw.port, spec["sessions"], account)
    timeline = Timeline(load).start()
    for s in sessions:
        s.send_submits(load.take(config.window))
    half = spec["messages"] // 2
    flowing = await _wait(lambda: load.dlrs_received >= spec["kill_after_dlrs"]
                          and load.accepted >= half, 300)
    acked_at_kill, dlrs_at_kill = len(acked_ids(load)), load.dlrs_received
    timeline.mark("kill")
    await asyncio.to_thread(gw.kill)
    await _wait(lambda: all(s.closed.done() for s in sessions), 10)
    load.remaining = 0  # nothing more is submitted: the rest is about what was acked
    dlrs_before = load.dlrs_received
    restarted = time.perf_counter()
    await asyncio.to_thread(gw.start)
    timeline.mark("restarted")
    again, binds2 = await open_sessions(load, gw.host, gw.port, spec["sessions"], account)
    await _wait(lambda: load.dlrs_received > dlrs_before, 30)
    first_dlr = round(time.perf_counter() - restarted, 1) if load.dlrs_received > dlrs_before \
        else None
    await _until_stalled(load, spec["dlr_wait"])
    await asyncio.sleep(spec["settle"])  # a repeated receipt would come with later sweeps
    await leave(again)
    await timeline.stop()
    acked = acked_ids(load)
    return {
        "dlrs_flowing_at_kill": flowing, "sessions_at_kill": len(sessions),
        "binds": dict(binds), "binds_after_restart": dict(binds2),
        "acked_at_kill": acked_at_kill, "dlrs_at_kill": dlrs_at_kill,
        "acked": len(acked), "statuses": _statuses(load),
        "dlrs_received": load.dlrs_received, "dlrs_missing": len(load.awaiting_dlr),
        "dlrs_duplicated": load.dlrs_duplicate,
        "dlrs_for_unacked_submits": len(load.early_dlr),
        "restart_to_first_dlr_s": first_dlr, "marks": timeline.marks,
        "timeline": timeline.points[::4], "acked_ids": acked,
    }


# --- the upstream away under load ------------------------------------------------------


def scenario_upstream(ctx: RunContext) -> Outcome:
    spec = SIZES["upstream"][ctx.size]
    with simulator(ctx, "--latency-ms", "200") as sim:
        url = sim.url(window=50, throughput=100000, reconnect_min=0.5, reconnect_max=4,
                      enquire_link_interval=2, response_timeout=3)
        settings = _load_settings(2, 50, upstream_url=url)
        with gateway_process(ctx, settings) as gw:
            account = create_account(gw.admin, CREDITS)
            result = run(_outage_run(gw, sim, account, spec))
            acked = result.pop("acked_ids")
            gw.stop()
            store = check_store(ctx, sqlite_url(gw.state), acked, account[0])
        lines = len(sim.accepted_lines())
    result["store"] = store
    result["upstream_lines"] = lines
    lost, over, violations = _books(store)
    refused = {k: v for k, v in result["statuses"].items() if k != "ESME_ROK"}
    key = (
        f"upstream down {spec['outage']} s at {spec['rate']}/s: acked {result['acked']:,} "
        f"({result['acked_during_outage']:,} during the outage), refused {refused or 0}; "
        f"lost {lost}, DLRs missing {result['dlrs_missing']}, duplicated "
        f"{result['dlrs_duplicated']}; upstream got {lines:,} for {result['acked']:,} acked; "
        f"every DLR back {result['all_dlrs_back_s']} s after the upstream returned"
    )
    met = lost == 0 and over == 0 and violations == 0 and not refused \
        and result["dlrs_missing"] == 0 and result["dlrs_duplicated"] == 0
    return Outcome(result, key, met, settings)


async def _paced_customer(gw: Any, account: tuple[str, str], rate: float, total: float,
                          step: float = 0.5) -> tuple[Load, list[Any], Counter[str],
                                                      Timeline, asyncio.Task[None]]:
    """Two bound sessions of the customer submitting `rate`/s for `total` seconds, with
    receipts, watched by a Timeline: (load, sessions, bind statuses, timeline, the
    sending task)."""
    config = customer_config(gw.host, gw.port, account, sessions=2, window=50,
                             messages=int(rate * total) + 1000, rate=rate)
    load = Load(config)
    sessions, binds = await open_sessions(load, gw.host, gw.port, 2, account)
    timeline = Timeline(load, step=step).start()
    sending = asyncio.get_running_loop().create_task(paced(load, sessions, rate, total))
    return load, sessions, binds, timeline, sending


async def _outage_run(gw: Any, sim: Any, account: tuple[str, str],
                      spec: dict[str, Any]) -> dict[str, Any]:
    total = spec["before"] + spec["outage"] + spec["after"]
    load, sessions, binds, timeline, sending = await _paced_customer(
        gw, account, spec["rate"], total)
    await asyncio.sleep(spec["before"])
    ok_before = load.statuses.get(0, 0)
    timeline.mark("upstream_down")
    await asyncio.to_thread(sim.stop)
    await asyncio.sleep(spec["outage"])
    ok_during = load.statuses.get(0, 0) - ok_before
    await asyncio.to_thread(sim.start)
    back = time.perf_counter()
    timeline.mark("upstream_up")
    await sending
    load.remaining = 0
    await _wait(lambda: load.responses >= load.submitted, 30)
    await _until_stalled(load, spec["dlr_wait"])
    all_back = round(time.perf_counter() - back, 1) if not load.awaiting_dlr else None
    await asyncio.sleep(3)  # a repeated receipt would come with later sweeps
    await leave(sessions)
    await timeline.stop()
    acked = acked_ids(load)
    return {
        "binds": dict(binds), "acked": len(acked), "acked_during_outage": ok_during,
        "statuses": _statuses(load), "submit_latency_ms": percentiles(load.submit_latencies),
        "dlrs_received": load.dlrs_received, "dlrs_missing": len(load.awaiting_dlr),
        "dlrs_duplicated": load.dlrs_duplicate, "all_dlrs_back_s": all_back,
        "marks": timeline.marks, "timeline": timeline.points[::4], "acked_ids": acked,
    }


# --- PostgreSQL restarted under load ---------------------------------------------------


def scenario_postgres(ctx: RunContext) -> Outcome:
    why = postgres_unavailable()
    if why:
        return Outcome({"skipped": why}, f"skipped: {why}", None, skipped=why)
    spec = SIZES["postgres"][ctx.size]
    with own_postgres() as pg:
        database = f"smppgw_fault_{secrets.token_hex(4)}"
        pg.psql(f"CREATE DATABASE {database}")
        with simulator(ctx, "--latency-ms", "50") as sim:
            # auto_migrate: PostgreSQL nodes do not migrate a new database unless told.
            settings = _load_settings(2, 50, upstream_url=sim.url(window=50, throughput=100000),
                                      database_url=pg.url(database),
                                      **applicable({"auto_migrate": "true"}, ctx))
            with gateway_process(ctx, settings) as gw:
                account = create_account(gw.admin, CREDITS)
                result = run(_pg_run(gw, pg, account, spec))
                acked = result.pop("acked_ids")
                result["gateway_alive_at_end"] = gw.alive
                gw.stop()
                result["gateway_errors"] = _error_lines(gw.log_text())
                store = check_store(ctx, pg.url(database), acked, account[0])
    result["store"] = store
    result["how"] = f"own PostgreSQL cluster on 127.0.0.1:{pg.port} (pg_ctl stop -m fast, start)"
    lost, over, violations = _books(store)
    down = result["during_down"]
    unclean = {k: v for k, v in down.items() if k not in ("ESME_ROK", "ESME_RSYSERR",
                                                          "ESME_RTHROTTLED")}
    key = (
        f"PostgreSQL down {spec['down']} s at {spec['rate']}/s: answers while down {down or 0}; "
        f"unanswered at its return {result['unanswered_at_return']}; first ESME_ROK "
        f"{_secs(result['back_after_s'])} after it returned, ESME_ROK share in the last "
        f"{spec['after']} s {result['ok_share_after']:.0%}; acked {result['acked']:,}: lost "
        f"{lost}, overcharged {over} ({violations} ledger violations), DLRs missing "
        f"{result['dlrs_missing']}, duplicated {result['dlrs_duplicated']}"
    )
    met = (lost == 0 and over == 0 and violations == 0 and not unclean
           and result["back_after_s"] is not None and result["ok_share_after"] > 0.9
           and result["dlrs_missing"] == 0)
    return Outcome(result, key, met, {k: v for k, v in settings.items() if k != "database_url"})


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value} s"


def _error_lines(text: str, limit: int = 8) -> list[str]:
    seen: Counter[str] = Counter()
    for line in text.splitlines():
        if "ERROR" in line or "Traceback" in line or "CRITICAL" in line:
            seen[line.strip()[:200]] += 1
    return [f"{n}x {line}" for line, n in seen.most_common(limit)]


def _diff(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: b.get(k, 0) - a.get(k, 0) for k in b if b.get(k, 0) - a.get(k, 0)}


async def _pg_run(gw: Any, pg: Any, account: tuple[str, str],
                  spec: dict[str, Any]) -> dict[str, Any]:
    total = spec["before"] + spec["down"] + spec["after"]
    load, sessions, binds, timeline, sending = await _paced_customer(
        gw, account, spec["rate"], total, step=0.25)
    await asyncio.sleep(spec["before"])
    before = _statuses(load)
    timeline.mark("pg_down")
    await asyncio.to_thread(pg.stop, "fast")
    await asyncio.sleep(spec["down"])
    at_return = _statuses(load)
    unanswered = load.submitted - load.responses
    await asyncio.to_thread(pg.start)
    returned = time.perf_counter()
    timeline.mark("pg_up")
    ok0 = load.statuses.get(0, 0)
    await _wait(lambda: load.statuses.get(0, 0) > ok0, spec["after"])
    back = round(time.perf_counter() - returned, 1) if load.statuses.get(0, 0) > ok0 else None
    await asyncio.sleep(max(0.0, spec["after"] / 2 - (time.perf_counter() - returned)))
    mid = dict(load.statuses)
    await sending
    last = {k: load.statuses.get(k, 0) - mid.get(k, 0) for k in load.statuses}
    answered_last = sum(last.values())
    load.remaining = 0
    await _wait(lambda: load.responses >= load.submitted, 30)
    await _until_stalled(load, spec["dlr_wait"])
    await asyncio.sleep(2)
    await leave(sessions)
    await timeline.stop()
    acked = acked_ids(load)
    return {
        "binds": dict(binds), "acked": len(acked), "statuses": _statuses(load),
        "during_down": _diff(before, at_return), "unanswered_at_return": unanswered,
        "back_after_s": back,
        "ok_share_after": (last.get(0, 0) / answered_last) if answered_last else 0.0,
        "submit_latency_ms": percentiles(load.submit_latencies),
        "dlrs_missing": len(load.awaiting_dlr), "dlrs_duplicated": load.dlrs_duplicate,
        "marks": timeline.marks, "timeline": timeline.points[::2], "acked_ids": acked,
    }


# --- disk full ---------------------------------------------------------------------------


def scenario_disk(ctx: RunContext) -> Outcome:
    spec = SIZES["disk"][ctx.size]
    try:
        disk_cm = small_tmpfs(spec["megabytes"])
        disk = disk_cm.__enter__()
    except PermissionError as exc:
        why = f"no tmpfs ({exc}); RLIMIT_FSIZE fallback not run"
        return Outcome({"skipped": why}, f"skipped: {why}", None, skipped=why)
    try:
        url = f"sqlite+aiosqlite:///{disk.path / 'smppgw.db'}"
        settings = _load_settings(2, 50, database_url=url)
        with gateway_process(ctx, settings) as gw:
            account = create_account(gw.admin, CREDITS)
            result = run(_disk_run(gw, disk.path, account, spec))
            acked = result.pop("acked_ids")
            result["gateway_alive_at_end"] = gw.alive
            gw.stop()
            result["gateway_errors"] = _error_lines(gw.log_text())
            store = check_store(ctx, url, acked, account[0])
    finally:
        disk_cm.__exit__(None, None, None)
    result["store"] = store
    result["how"] = disk.how + " holding the SQLite database (WAL), filled by a file"
    lost, over, violations = _books(store)
    full = result["while_full"]
    unclean = {k: v for k, v in full.items() if k not in ("ESME_ROK", "ESME_RSYSERR",
                                                          "ESME_RTHROTTLED")}
    integrity = store.get("integrity_check", "?")
    key = (
        f"{disk.how}, full for {spec['full']} s at {spec['rate']}/s: answers while full "
        f"{full or 0}; unanswered when space returned {result['unanswered_at_return']}; "
        f"first ESME_ROK {_secs(result['back_after_s'])} after space returned; "
        f"integrity_check {integrity}; acked {result['acked']:,}: lost {lost}, overcharged "
        f"{over} ({violations} ledger violations); gateway alive "
        f"{result['gateway_alive_at_end']}"
    )
    met = (lost == 0 and over == 0 and violations == 0 and integrity == "ok" and not unclean
           and result["back_after_s"] is not None and result["gateway_alive_at_end"]
           and result["refused_while_full"] > 0)
    return Outcome(result, key, met, {k: v for k, v in settings.items() if k != "database_url"})


async def _disk_run(gw: Any, path: Path, account: tuple[str, str],
                    spec: dict[str, Any]) -> dict[str, Any]:
    total = spec["before"] + spec["full"] + spec["after"]
    load, sessions, binds, timeline, sending = await _paced_customer(
        gw, account, spec["rate"], total, step=0.25)
    await asyncio.sleep(spec["before"])
    before = _statuses(load)
    timeline.mark("disk_full")
    filler = await asyncio.to_thread(fill, path, 0)
    await asyncio.sleep(spec["full"])
    at_return = _statuses(load)
    unanswered = load.submitted - load.responses
    (path / "filler").unlink()
    returned = time.perf_counter()
    timeline.mark("space_back")
    ok0 = load.statuses.get(0, 0)
    await _wait(lambda: load.statuses.get(0, 0) > ok0, spec["after"])
    back = round(time.perf_counter() - returned, 1) if load.statuses.get(0, 0) > ok0 else None
    await sending
    load.remaining = 0
    await _wait(lambda: load.responses >= load.submitted, 30)
    await _until_stalled(load, 60)
    await leave(sessions)
    await timeline.stop()
    acked = acked_ids(load)
    while_full = _diff(before, at_return)
    return {
        "binds": dict(binds), "filler_bytes": filler, "free_after_fill": free_bytes(path),
        "acked": len(acked), "statuses": _statuses(load), "while_full": while_full,
        "refused_while_full": sum(v for k, v in while_full.items() if k != "ESME_ROK"),
        "unanswered_at_return": unanswered, "back_after_s": back,
        "submit_latency_ms": percentiles(load.submit_latencies),
        "dlrs_missing": len(load.awaiting_dlr), "dlrs_duplicated": load.dlrs_duplicate,
        "marks": timeline.marks, "timeline": timeline.points[::2], "acked_ids": acked,
    }


# --- malformed PDUs while a bystander submits ------------------------------------------


def scenario_malformed(ctx: RunContext) -> Outcome:
    spec = SIZES["malformed"][ctx.size]
    settings = _load_settings(spec["connections"], 10)
    with gateway_process(ctx, settings) as gw:
        bystander = create_account(gw.admin, CREDITS)
        flooder = create_account(gw.admin, 10)
        result = run(_flood_run(gw, bystander, flooder, spec))
        result["gateway_alive_at_end"] = gw.alive
        result["gateway_errors"] = _error_lines(gw.log_text())
    flood = result["flood"]
    lat = result["bystander_during_flood_ms"]
    key = (
        f"{flood.get('pdus_sent', 0):,} malformed PDUs over {spec['connections']} connections "
        f"in {flood.get('seconds', 0):.0f} s, {flood.get('answered', 0):,} answered, "
        f"{flood.get('reconnects', 0)} framing-error reconnects, "
        f"{flood.get('unexpected_closes', 0)} other closes; bystander at {spec['rate']}/s "
        f"{_lat(lat)} during the flood ({_lat(result['bystander_baseline_ms'])} before), "
        f"statuses {result['bystander_statuses']}; RSS peak {result['rss_peak_mb']} MB; "
        f"gateway up {result['gateway_alive_at_end']}"
    )
    answered_all = flood.get("answered", 0) >= flood.get("pdus_sent", 1)
    met = (result["gateway_alive_at_end"] and answered_all
           and result["bystander_statuses"] == {"ESME_ROK": result["bystander_sent"]})
    return Outcome(result, key, met, settings)


async def _flood_run(gw: Any, bystander: tuple[str, str], flooder: tuple[str, str],
                     spec: dict[str, Any]) -> dict[str, Any]:
    config = customer_config(gw.host, gw.port, bystander, sessions=1, window=10,
                             messages=10**7, registered_delivery=0, rate=spec["rate"])
    load = Load(config)
    sessions, binds = await open_sessions(load, gw.host, gw.port, 1, bystander)
    stop = asyncio.Event()
    sending = asyncio.get_running_loop().create_task(
        paced(load, sessions, spec["rate"], 3600, stop))
    rss = [read_rss(gw.pid).get("VmRSS", 0.0)]
    await asyncio.sleep(spec["baseline"])
    i0 = len(load.submit_latencies)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.faults_flood", "--host", gw.host,
        "--port", str(gw.port), "--system-id", flooder[0], "--password", flooder[1],
        "--connections", str(spec["connections"]), "--pdus", str(spec["pdus"]),
        cwd=REPO, env=child_env({}, REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    waiter = asyncio.get_running_loop().create_task(proc.communicate())
    while not waiter.done():
        rss.append(read_rss(gw.pid).get("VmRSS", 0.0))
        await asyncio.wait({waiter}, timeout=0.5)
    out, err = waiter.result()
    i1 = len(load.submit_latencies)
    await asyncio.sleep(spec["after"])
    stop.set()
    await sending
    await _wait(lambda: load.responses >= load.submitted, 30)
    await leave(sessions)
    flood: dict[str, Any] = {"error": err.decode()[-500:]}
    for line in out.decode().splitlines():
        if line.startswith("flood: "):
            flood = json.loads(line[len("flood: "):])
    lat = load.submit_latencies
    return {
        "flood": flood, "bystander_binds": dict(binds), "bystander_sent": load.submitted,
        "bystander_statuses": _statuses(load),
        "bystander_baseline_ms": percentiles(lat[:i0]),
        "bystander_during_flood_ms": percentiles(lat[i0:i1]),
        "bystander_after_ms": percentiles(lat[i1:]),
        "rss_peak_mb": max(rss), "rss_start_mb": rss[0],
    }


# --- binds: a storm of wrong ones, a stranger's lock-out attempt ----------------------


def scenario_wrong_binds(ctx: RunContext) -> Outcome:
    spec = SIZES["wrong_binds"][ctx.size]
    # Every bind must reach the throttle: with the default max_connections_per_ip (200)
    # the connections past it would be dropped as accepted, before any bind.
    settings = {"max_connections_per_ip": str(spec["binds"] + 100)}
    with gateway_process(ctx, settings) as gw:
        owner = create_account(gw.admin, 100)
        checks0 = scrape(gw.metrics_url).get("smppgw_bind_password_checks_total", 0.0)
        result = run(_wrong_binds_run(gw, owner, spec["binds"]))
        checks = scrape(gw.metrics_url).get("smppgw_bind_password_checks_total")
        result["password_checks"] = None if checks is None else int(checks - checks0)
        result["gateway_alive_at_end"] = gw.alive
        result["rss_mb"] = read_rss(gw.pid)
    storm = result["storm"]
    answered = sum(v for k, v in storm["statuses"].items() if k.startswith("ESME_"))
    key = (
        f"{storm['attempts']:,} concurrent wrong binds from {GUESSER}: {answered:,} answered "
        f"in {storm['seconds']} s ({storm['statuses']}), {result['password_checks']} "
        f"password checks (the owner's included), bind_resp {_lat(storm['bind_resp_ms'])}; "
        f"then the owner: {result['owner'][0]} in {result['owner'][1] * 1000:.0f} ms; "
        f"RSS {result['rss_mb'].get('VmRSS')} MB"
    )
    # The guesser's address admits 20 failures; the owner's good bind is one check more.
    checks_ok = result["password_checks"] is not None and result["password_checks"] <= 20 + 1
    met = answered == storm["attempts"] and result["owner"][0] == "ESME_ROK" \
        and result["gateway_alive_at_end"] and checks_ok
    return Outcome(result, key, met, settings)


async def _wrong_binds_run(gw: Any, owner: tuple[str, str], count: int) -> dict[str, Any]:
    raise_nofile_limit(count + 256)
    # Half guess the owner's password, half probe names that do not exist.
    attempts = [(owner[0] if i % 2 else f"nosuch{i}", f"wrong{i % 97}") for i in range(count)]
    storm = await bind_storm(gw.host, gw.port, attempts, local=GUESSER)
    name, took, _ = await try_bind(gw.host, gw.port, *owner)
    return {"storm": storm, "owner": [name, round(took, 3)]}


def scenario_lockout(ctx: RunContext) -> Outcome:
    spec = SIZES["lockout"][ctx.size]
    with gateway_process(ctx, {}) as gw:
        owner = create_account(gw.admin, 100)
        result = run(_lockout_run(gw, owner, spec))
        result["gateway_alive_at_end"] = gw.alive
    key = (
        f"{spec['attempts']:,} wrong binds for the owner's system_id from {STRANGER} (not on "
        f"its list): {result['stranger']}; then the owner from 127.0.0.1: "
        f"{result['owner'][0]}; the right password from {STRANGER}: {result['stranger_right']}"
    )
    met = result["owner"][0] == "ESME_ROK" and result["stranger_right"] != "ESME_ROK"
    return Outcome(result, key, met, {})


async def _lockout_run(gw: Any, owner: tuple[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    left = spec["attempts"]
    while left > 0:
        n = min(spec["concurrency"], left)
        left -= n
        storm = await bind_storm(gw.host, gw.port, [(owner[0], "guess")] * n, local=STRANGER)
        statuses.update(storm["statuses"])
    right, _, _ = await try_bind(gw.host, gw.port, *owner, local=STRANGER)
    name, took, _ = await try_bind(gw.host, gw.port, *owner)
    return {"stranger": dict(statuses), "stranger_right": right, "owner": [name, round(took, 3)]}


# --- a client that never reads; idle connections ----------------------------------------


def scenario_nonreader(ctx: RunContext) -> Outcome:
    spec = SIZES["nonreader"][ctx.size]
    with gateway_process(ctx, {}) as gw:
        owner = create_account(gw.admin, 100)
        result = run(_nonreader_run(gw, owner, spec["seconds"]))
        result["gateway_alive_at_end"] = gw.alive
    nr = result["nonreader"]
    key = (
        f"enquire_link before bind, never reading, for up to {spec['seconds']} s: "
        f"{nr['outcome']} after {nr['seconds']} s, {nr['enquire_links_sent']:,} sent; "
        f"gateway RSS {result['rss_start_mb']} -> peak {result['rss_peak_mb']} MB; the owner "
        f"meanwhile: {result['owner'][0]} in {result['owner'][1] * 1000:.0f} ms"
    )
    met = nr["outcome"].startswith("dropped") and result["owner"][0] == "ESME_ROK" \
        and result["rss_peak_mb"] - result["rss_start_mb"] < 100
    return Outcome(result, key, met, {})


async def _nonreader_run(gw: Any, owner: tuple[str, str], seconds: float) -> dict[str, Any]:
    rss = [read_rss(gw.pid).get("VmRSS", 0.0)]
    task = asyncio.get_running_loop().create_task(
        asyncio.to_thread(non_reader, gw.host, gw.port, seconds, local=STRANGER))
    await asyncio.sleep(min(3.0, seconds / 2))
    owner_bind = await try_bind(gw.host, gw.port, *owner, timeout=10)
    while not task.done():
        rss.append(read_rss(gw.pid).get("VmRSS", 0.0))
        await asyncio.wait({task}, timeout=0.5)
    rss.append(read_rss(gw.pid).get("VmRSS", 0.0))
    return {"nonreader": task.result(), "owner": [owner_bind[0], round(owner_bind[1], 3)],
            "rss_start_mb": rss[0], "rss_peak_mb": max(rss), "rss_end_mb": rss[-1]}


def scenario_idle(ctx: RunContext) -> Outcome:
    spec = SIZES["idle"][ctx.size]
    raise_nofile_limit(spec["connections"] * 2 + 512)
    with gateway_process(ctx, {}) as gw:
        owner = create_account(gw.admin, 100)
        result = run(_idle_run(gw, owner, spec))
        result["gateway_alive_at_end"] = gw.alive
    key = (
        f"{spec['connections']:,} idle connections from {STRANGER}: {result['opened']}, "
        f"{result['open_after_hold']:,} still open after {spec['hold']} s; gateway RSS "
        f"{result['rss_start_mb']} -> peak {result['rss_peak_mb']} MB; the owner meanwhile: "
        f"{result['owner'][0]} in {result['owner'][1] * 1000:.0f} ms"
    )
    met = result["owner"][0] == "ESME_ROK" and result["rss_peak_mb"] < 600
    return Outcome(result, key, met, {})


async def _idle_run(gw: Any, owner: tuple[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    rss = [read_rss(gw.pid).get("VmRSS", 0.0)]
    pairs, opened = await idle_connections(gw.host, gw.port, spec["connections"],
                                           spec["hold"], local=STRANGER)
    t0 = time.perf_counter()
    rss.append(read_rss(gw.pid).get("VmRSS", 0.0))
    owner_bind = await try_bind(gw.host, gw.port, *owner, timeout=10)
    while time.perf_counter() - t0 < spec["hold"]:
        rss.append(read_rss(gw.pid).get("VmRSS", 0.0))
        await asyncio.sleep(0.5)
    alive = await still_open(pairs)
    close_all(pairs)
    return {**opened, "open_after_hold": alive,
            "owner": [owner_bind[0], round(owner_bind[1], 3)],
            "rss_start_mb": rss[0], "rss_peak_mb": max(rss), "rss_end_mb": rss[-1]}


SCENARIOS: dict[str, Callable[[RunContext], Outcome]] = {
    "kill": scenario_kill,
    "upstream": scenario_upstream,
    "postgres": scenario_postgres,
    "disk": scenario_disk,
    "malformed": scenario_malformed,
    "wrong_binds": scenario_wrong_binds,
    "lockout": scenario_lockout,
    "nonreader": scenario_nonreader,
    "idle": scenario_idle,
}
