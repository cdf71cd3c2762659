"""The scenarios of issues 6, 11 and 13: their loads by size, their targets, how each runs.

A scenario starts the servers it needs (`benchmarks.processes`), drives them with
`benchmarks.loadgen` from this process and hands back an `Outcome`. Settings are the
durable defaults (SQLite WAL, synchronous FULL) plus exactly what a scenario lists;
scenario 9 runs on the machine's PostgreSQL instead, and says so in its row.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
import time
import timeit
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.context import Outcome, RunContext
from benchmarks.load import LoadConfig
from benchmarks.loadgen import raise_nofile_limit, run, run_load
from benchmarks.processes import (
    PG_SERVER,
    Child,
    CpuMeter,
    GatewayInfo,
    MachineCpuMeter,
    PostgresCpuMeter,
    PostgresUnreachable,
    applicable,
    child_env,
    commit_stats,
    count_rows,
    create_accounts,
    floor_server,
    gateway,
    gateway_database_url,
    known_settings,
    postgres_database,
    postgres_facts,
    read_rss,
    scrape,
    show_account,
)
from benchmarks.profiling import Profiler

# What issues 6, 11 and 13 ask of each scenario; printed beside every result.
TARGETS = {
    "throughput": ">= 30,000 msg/s and >= 15% of floor",
    "receipts": ">= 12,000 msg/s with all DLRs",
    "latency": "p99 < 10 ms at 5,000 msg/s",
    "connections": "10,000 sessions < 600 MB RSS",
    "codec": "(none; reference)",
    "forward": ">= 20,000 msg/s reach upstream",
    "floor": "(reference for s1)",
    "window10": ">= 4,000/s accepted and forwarded, every DLR back",
    "cluster": "(record: two nodes vs one on PostgreSQL)",
}
NUMBERS = {
    "throughput": 1, "receipts": 2, "latency": 3, "connections": 4, "codec": 5,
    "forward": 6, "floor": 7, "window10": 8, "cluster": 9,
}
# `all` runs the floor before scenario 1, so s1 (and s9) can be read as a fraction of it.
ALL_ORDER = (
    "codec", "floor", "throughput", "receipts", "latency", "connections", "forward", "window10",
    "cluster",
)
# The scenarios that read the floor of their run: `run.py` runs the floor before them.
READ_THE_FLOOR = ("throughput", "cluster")

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
    # One customer at its provider's window of 10, asking for receipts; the gateway
    # forwards to the standalone simulator, which sends each receipt `latency_ms` after
    # accepting, over a link of `upstream_window` (the connector's default window, 10).
    "window10": {
        "tiny": {"messages": 300, "sessions": 1, "window": 10, "upstream_window": 10,
                 "latency_ms": 200},
        "small": {"messages": 10_000, "sessions": 1, "window": 10, "upstream_window": 10,
                  "latency_ms": 200},
        "full": {"messages": 50_000, "sessions": 1, "window": 10, "upstream_window": 10,
                 "latency_ms": 200},
    },
}
LOADS["receipts"] = LOADS["throughput"]
LOADS["forward"] = LOADS["throughput"]
LOADS["floor"] = LOADS["throughput"]
# Scenario 1's load, spread over the nodes (two nodes: half the sessions and messages each).
LOADS["cluster"] = LOADS["throughput"]


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


def _cpu_per_message(result: dict[str, Any], meter: str = "gateway_cpu") -> float | None:
    """µs of a server's CPU per message (from /proc), or None when it was not measured."""
    cpu = result.get(meter) or {}
    return cpu.get("cpu_us_per_message")


def _cpu_note(result: dict[str, Any], meter: str = "gateway_cpu", who: str = "gateway") -> str:
    """The CPU part of a throughput row's key numbers: µs per message and cores busy."""
    us = _cpu_per_message(result, meter)
    if us is None:
        return f"; {who} CPU not measured"
    return f"; {us:,.1f} us/msg {who} CPU ({result[meter]['cores_busy']:.2f} cores)"


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
        scraped: list[dict[str, float]] = []

        def started() -> None:
            profiler.start()
            meter.start()
            scraped.append(scrape(gw.metrics_url))
            own["cpu0"] = time.process_time()

        def finished() -> None:
            own["cpu"] = time.process_time() - own["cpu0"]
            meter.stop()
            scraped.append(scrape(gw.metrics_url))
            profiler.stop()

        try:
            result = run(run_load(config, on_bound=started, before_unbind=finished)).as_dict()
        finally:
            profiler.stop()
        result.update(profile)
        result["gateway_cpu"] = meter.summary(result["responses"])
        if len(scraped) == 2:
            result["store_commits"] = commit_stats(*scraped)
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
    key = f"{rate:,.0f} msg/s" + _cpu_note(result)
    met = rate >= 30_000 and _all_ok(result)
    if ctx.floor_rate:
        fraction = rate / ctx.floor_rate
        result["fraction_of_floor"] = round(fraction, 4)
        floor_cpu = f", {ctx.floor_cpu_us:,.1f} us/msg" if ctx.floor_cpu_us is not None else ""
        key += f"; {fraction:.1%} of floor ({ctx.floor_rate:,.0f} msg/s{floor_cpu})"
        met = met and fraction >= 0.15
    else:
        key += "; floor not run in this run"
    key += f"; submit_sm_resp {_latency_summary(result['submit_latency_ms'])}"
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
        f"{end_to_end:,.0f} msg/s with DLRs ({result['accepted_per_second']:,.0f} acked/s)"
        f"{_cpu_note(result)}; DLRs {result['dlrs_matched']}/{result['messages_requested']}; "
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
        + _cpu_note(result)
    )
    # A run at another rate (--rate) measures something else: not judged against the target.
    met = lat["p99"] < 10.0 and _all_ok(result) if spec["rate"] == 5_000 else None
    return Outcome(result, key + _sessions_note(result), met, settings)


def scenario_connections(ctx: RunContext) -> Outcome:
    spec = LOADS["connections"][ctx.size]
    sessions = spec["sessions"]
    # The gateway inherits this process's limit: one descriptor per session plus its own.
    raise_nofile_limit(2 * sessions + 512)
    # Binds per account are limited (1 by default, at most 100): spread the sessions
    # over accounts; a revision without default_bind_limit needs one account each. All
    # come from 127.0.0.1: the per-address connection limit must admit them all.
    settings = applicable({
        "default_bind_limit": str(-(-sessions // spec["accounts"])),
        "max_connections_per_ip": str(sessions + 100),
        "max_connections": str(max(20_000, sessions + 100)),
    }, ctx)
    count = spec["accounts"] if "default_bind_limit" in settings else sessions
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


# Where the standalone simulator lives in the tree measured (it moved under upstream/).
SIMULATOR_MODULES = ("gateway/upstream/smsc_sim.py", "gateway/smsc_sim.py")
NO_SIMULATOR = "skipped: upstream connector not available (no standalone simulator)"


def _simulator_module(ctx: RunContext) -> str | None:
    found = [p for p in SIMULATOR_MODULES if (ctx.source / p).exists()]
    return found[0].removesuffix(".py").replace("/", ".") if found else None


@dataclass
class Upstream:
    """The standalone simulator as a running process, and what the gateway needs of it."""

    host: str
    port: int
    log_path: Path
    child: Child

    def url(self, window: int) -> str:
        return (f"smpp://smppgw:benchpw@{self.host}:{self.port}"
                f"?window={window}&throughput=100000")


@contextmanager
def _upstream(ctx: RunContext, module: str, *args: str) -> Iterator[Upstream]:
    """The simulator in its own process (stopped on every exit); `args` are its options.

    Its --log has one line per message it accepted: counting lines as they appear is
    how "reached the upstream" is timed, from outside both processes. After the block
    `child.stdout` holds its last words ("stopped after N messages").
    """
    workdir = Path(tempfile.mkdtemp(prefix="smppgw-sim-", dir="/tmp"))
    log_path = workdir / "accepted.jsonl"
    sim = Child(
        [sys.executable, "-m", module, "--port", "0", "--system-id", "smppgw",
         "--password", "benchpw", "--log", str(log_path), *args],
        child_env({}, ctx.source), workdir / "smsc_sim.log", ctx.source,
    )
    try:
        lines = sim.start("smsc_sim: ready")
        m = re.search(r"listening on (\S+):(\d+)", "".join(lines))
        if not m:
            raise RuntimeError("smsc_sim did not print where it listens")
        yield Upstream(m.group(1), int(m.group(2)), log_path, sim)
    finally:
        sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _forward_load(
    ctx: RunContext, spec: dict[str, Any], upstream: Upstream, upstream_window: int,
    registered_delivery: int,
) -> tuple[dict[str, Any], dict[str, str]]:
    """A gateway forwarding to `upstream`, driven by `spec`'s load; (result, settings)."""
    url = upstream.url(upstream_window)
    settings = {**_throughput_settings(spec, ctx), **applicable({"upstream_url": url}, ctx)}
    with gateway(settings, ctx) as gw:
        count = 1 if "default_bind_limit" in settings else spec["sessions"]
        accounts = create_accounts(gw.admin, count, spec["messages"] + 1000)
        config = LoadConfig(
            host=gw.host, port=gw.port, credentials=accounts, sessions=spec["sessions"],
            window=spec["window"], messages=spec["messages"],
            registered_delivery=registered_delivery, dlr_timeout=120.0,
            time_limit=_time_limit(spec["messages"], None),
        )
        meters = {"gateway_cpu": CpuMeter(gw.pid), "upstream_cpu": CpuMeter(upstream.child.pid)}
        profile: dict[str, Any] = {}
        profiler = Profiler(ctx, gw.pid, ctx.current, profile)
        try:
            result = run(_load_and_count_upstream(config, upstream.log_path, meters, profiler))
        finally:
            profiler.stop()
        result.update(profile)
        result["gateway_rss_mb"] = read_rss(gw.pid)
        result["accounts"] = len(accounts)
    return result, settings


def _sim_accepted(sim: Child) -> int | None:
    stopped = re.search(r"stopped after (\d+) messages", "".join(sim.stdout))
    return int(stopped.group(1)) if stopped else None


def scenario_forward(ctx: RunContext) -> Outcome:
    module = _simulator_module(ctx)
    if module is None:
        return Outcome({"skipped": NO_SIMULATOR}, NO_SIMULATOR, None, skipped=NO_SIMULATOR)
    spec = LOADS["forward"][ctx.size]
    with _upstream(ctx, module) as upstream:
        result, settings = _forward_load(
            ctx, spec, upstream, upstream_window=spec["window"], registered_delivery=0,
        )
    result["upstream_accepted_by_sim"] = _sim_accepted(upstream.child)
    upstream_rate = result["upstream_per_second"]
    key = (
        f"{upstream_rate:,.0f} msg/s reached upstream ({result['upstream_received']:,}/"
        f"{spec['messages']:,}); {result['accepted_per_second']:,.0f} acked/s"
        f"{_cpu_note(result)}; submit_sm_resp {_latency_summary(result['submit_latency_ms'])}"
    )
    met = (upstream_rate >= 20_000 and _all_ok(result)
           and result["upstream_received"] == spec["messages"])
    return Outcome(result, key, met, settings)


def scenario_window10(ctx: RunContext) -> Outcome:
    """One customer at window 10 asking for receipts, through an SMPP upstream.

    Accepted/s is bounded by the submit_sm_resp latency (10 / latency), reached/s by the
    forwarding, and the run lasts until every DLR is back (the simulator sends each one
    `latency_ms` after accepting its message).
    """
    module = _simulator_module(ctx)
    if module is None:
        return Outcome({"skipped": NO_SIMULATOR}, NO_SIMULATOR, None, skipped=NO_SIMULATOR)
    spec = LOADS["window10"][ctx.size]
    messages = spec["messages"]
    with _upstream(ctx, module, "--latency-ms", str(spec["latency_ms"])) as upstream:
        result, settings = _forward_load(
            ctx, spec, upstream, upstream_window=spec["upstream_window"], registered_delivery=1,
        )
    result["upstream_accepted_by_sim"] = _sim_accepted(upstream.child)
    result["upstream_latency_ms"] = spec["latency_ms"]
    accepted = result["accepted_per_second"]
    reached = result["upstream_per_second"]
    done = result["dlr_complete_seconds"]
    end_to_end = result["dlrs_matched"] / done if done > 0 else 0.0
    result["end_to_end_per_second"] = round(end_to_end, 1)
    all_dlrs = result["dlrs_matched"] == result["dlrs_expected"] == messages
    upstream_cpu = _cpu_per_message(result, "upstream_cpu")
    key = (
        f"{accepted:,.0f} accepted/s; {reached:,.0f}/s reached upstream "
        f"({result['upstream_received']:,}/{messages:,}); DLRs {result['dlrs_matched']:,}/"
        f"{messages:,} ({end_to_end:,.0f}/s end to end){_cpu_note(result)}"
        + (f", upstream {upstream_cpu:,.1f} us/msg" if upstream_cpu is not None else "")
        + f"; submit_sm_resp {_latency_summary(result['submit_latency_ms'])}"
        f"; DLR {_latency_summary(result['dlr_latency_ms'])}"
    )
    if not _all_ok(result):
        key += f"; statuses {result['statuses']}"
    key += _sessions_note(result)
    met = (accepted >= 4_000 and reached >= 4_000 and all_dlrs and _all_ok(result)
           and result["upstream_received"] == messages)
    return Outcome(result, key, met, settings)


async def _load_and_count_upstream(
    config: LoadConfig, log_path: Path, meters: dict[str, CpuMeter], profiler: Profiler,
) -> dict[str, Any]:
    """Run the load while counting the upstream's log lines; wait for the stragglers.

    `meters` measure each process's CPU from the first submit to the last arrival
    upstream (or the last DLR, when the load asks for them, whichever is later): the
    simulator shares the two cores and may be what limits the rate.
    """
    seen = {"count": 0, "t0": 0.0, "last": 0.0, "offset": 0}
    own = {"cpu0": 0.0, "cpu": 0.0}

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
            profiler.start()
            seen["t0"] = time.perf_counter()
            own["cpu0"] = time.process_time()
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
        profiler.stop()
        own["cpu"] = time.process_time() - own["cpu0"]
    finally:
        watcher.cancel()
    for name, meter in meters.items():
        result[name] = meter.summary(seen["count"])
    # The generator shares the two cores too (this includes polling the upstream's log).
    result["loadgen_cpu_seconds"] = round(own["cpu"], 2)
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
    ctx.floor_cpu_us = _cpu_per_message(result, "server_cpu") if _all_ok(result) else None
    key = (
        f"{rate:,.0f} msg/s{_cpu_note(result, 'server_cpu', 'floor')}; "
        f"submit_sm_resp {_latency_summary(result['submit_latency_ms'])}"
    )
    return Outcome(result, key, None)


# --- scenario 9: one node and two nodes on one PostgreSQL ------------------------------


def scenario_cluster(ctx: RunContext) -> Outcome:
    """Scenario 1's load on PostgreSQL, twice in one run: one node with every session,
    then two nodes (node_id 1 and 2) on one database, each with half the sessions and
    half the messages, both halves sending at the same time. Each configuration gets a
    new database, dropped after it."""
    missing = {"database_url", "node_id"} - known_settings(ctx.source)
    if missing:
        reason = f"skipped: this revision has no {' or '.join(sorted(missing))} setting"
        return Outcome({"skipped": reason}, reason, None, skipped=reason)
    try:
        facts = postgres_facts(PG_SERVER)
    except PostgresUnreachable as exc:
        reason = f"skipped: PostgreSQL not reachable at {PG_SERVER} ({exc})"
        return Outcome({"skipped": reason}, reason, None, skipped=reason)
    spec = LOADS["cluster"][ctx.size]
    # auto_migrate: the first node migrates each new database (PostgreSQL nodes do not
    # unless told; the revision measured migrates with its own code).
    settings = {**_throughput_settings(spec, ctx),
                **applicable({"create_demo_account": "false", "auto_migrate": "true"}, ctx)}
    result: dict[str, Any] = {"postgresql_server": PG_SERVER, "postgresql": facts}
    for label, nodes in (("one_node", 1), ("two_nodes", 2)):
        with postgres_database(PG_SERVER, label) as url:
            part = _load_over_nodes(ctx, spec, settings, url, nodes)
            # Both nodes wrote to one database: every accepted message is in it once.
            part["messages_in_store"] = count_rows(url, "messages")
        result[label] = part
    one, two = result["one_node"], result["two_nodes"]
    one_rate, two_rate = one["accepted_per_second"], two["accepted_per_second"]
    ratio = two_rate / one_rate if one_rate else 0.0
    result["two_over_one"] = round(ratio, 3)
    key = (f"1 node {_cluster_rate(one)}; 2 nodes {_cluster_rate(two)}; "
           f"2 nodes / 1 node {ratio:.2f}x")
    if ctx.floor_rate:
        fractions = {"one_node": one_rate / ctx.floor_rate, "two_nodes": two_rate / ctx.floor_rate}
        result["fraction_of_floor"] = {k: round(v, 4) for k, v in fractions.items()}
        floor_cpu = f", {ctx.floor_cpu_us:,.1f} us/msg" if ctx.floor_cpu_us is not None else ""
        key += (f"; floor {ctx.floor_rate:,.0f} msg/s{floor_cpu} (1 node "
                f"{fractions['one_node']:.1%}, 2 nodes {fractions['two_nodes']:.1%} of it)")
    else:
        key += "; floor not run in this run"
    p99s = "/".join(f"{n['submit_latency_ms']['p99']:.1f}" for n in two["per_node"])
    key += (f"; submit_sm_resp p99 1 node {one['per_node'][0]['submit_latency_ms']['p99']:.1f}"
            f" ms, 2 nodes {p99s} ms")
    complete = all(_cluster_complete(result[label]) for label in ("one_node", "two_nodes"))
    if not complete:
        key += (f"; statuses 1 node {one['statuses']}, 2 nodes {two['statuses']}; in store "
                f"{one['messages_in_store']:,}/{two['messages_in_store']:,}")
    key += f"; {spec['sessions']} sessions on 1 account in all"
    # The machine is shared: CPU that none of the processes measured used is someone's.
    elsewhere = [result[label]["machine_cpu"]["cores_busy_elsewhere"]
                 for label in ("one_node", "two_nodes")]
    key += f"; busy elsewhere on the machine {elsewhere[0]:.2f}/{elsewhere[1]:.2f} cores"
    listed = {
        **settings,
        "database_url": gateway_database_url(PG_SERVER, "<new database per configuration>"),
        "node_id": "1 (and 2)",
    }
    store = (f"PostgreSQL {facts['server_version']}, synchronous_commit="
             f"{facts['synchronous_commit']}, fsync={facts['fsync']}")
    # Recorded, not judged; only a refused or lost message makes the row a failure.
    return Outcome(result, key, None if complete else False, listed, store=store)


def _cluster_rate(part: dict[str, Any]) -> str:
    text = f"{part['accepted_per_second']:,.0f} msg/s"
    if len(part["per_node"]) > 1:
        text += " (" + " + ".join(f"{n['accepted_per_second']:,.0f}"
                                  for n in part["per_node"]) + " per node)"
    cpu = part["gateway_cpu"]
    cores = "cores, all nodes" if len(part["per_node"]) > 1 else "cores"
    return (text + f", {cpu['cpu_us_per_message']:,.1f} us/msg gateway CPU "
            f"({cpu['cores_busy']:.2f} {cores}) + "
            f"{part['postgresql_cpu']['cpu_us_per_message']:,.1f} us/msg PostgreSQL")


def _cluster_complete(part: dict[str, Any]) -> bool:
    wanted = part["messages_requested"]
    return (part["statuses"] == {"ESME_ROK": wanted} and not part["timed_out"]
            and part["messages_in_store"] == wanted)


def _shares(total: int, parts: int) -> list[int]:
    """`total` split into `parts` as evenly as whole numbers allow."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _load_over_nodes(
    ctx: RunContext, spec: dict[str, Any], settings: dict[str, str], database_url: str,
    count: int,
) -> dict[str, Any]:
    """`count` nodes on `database_url`, one account, `spec`'s load shared between them."""
    def node(node_id: int) -> dict[str, str]:
        return {**settings, "database_url": database_url, "node_id": str(node_id)}

    with ExitStack() as stack:
        first = stack.enter_context(gateway(node(1), ctx))
        accounts = create_accounts(first.admin, 1, spec["messages"] + 1000)
        # The others start once the account is in the database: they read it at start.
        nodes = [first] + [stack.enter_context(gateway(node(i), ctx))
                           for i in range(2, count + 1)]
        return run(_side_by_side(spec, nodes, accounts, database_url.rsplit("/", 1)[1]))


async def _side_by_side(
    spec: dict[str, Any], nodes: list[GatewayInfo], accounts: list[tuple[str, str]],
    database: str,
) -> dict[str, Any]:
    """One load per node, all bound before any sends; the rate is every accepted message
    over the time from the first submit to the last submit_sm_resp of all of them.

    The gateways' /metrics are read before the binds and after the loads, not while
    they run: a scrape blocks this loop, which drives the other nodes' sessions too.
    """
    count = len(nodes)
    sessions, messages = _shares(spec["sessions"], count), _shares(spec["messages"], count)
    configs = [
        LoadConfig(host=gw.host, port=gw.port, credentials=accounts, sessions=sessions[i],
                   window=spec["window"], messages=messages[i],
                   time_limit=_time_limit(spec["messages"], None))
        for i, gw in enumerate(nodes)
    ]
    meters = [CpuMeter(gw.pid) for gw in nodes]
    before = [scrape(gw.metrics_url) for gw in nodes]
    started = [0.0] * count

    def on_bound(i: int) -> Callable[[], None]:
        def hook() -> None:
            started[i] = time.perf_counter()
            meters[i].start()
        return hook

    # These three are read around the binds and unbinds: a /proc scan between the
    # loads' starts would hold the second one back.
    database_cpu, machine = PostgresCpuMeter(database), MachineCpuMeter()
    machine.start()
    database_cpu.start()
    own_cpu0 = time.process_time()
    barrier = asyncio.Barrier(count)
    loads = await asyncio.gather(*(
        run_load(config, on_bound=on_bound(i), before_unbind=meters[i].stop,
                 start_together=barrier)
        for i, config in enumerate(configs)
    ))
    own_cpu = time.process_time() - own_cpu0
    database_cpu.stop()
    machine.stop()
    per_node: list[dict[str, Any]] = []
    for i, (gw, load) in enumerate(zip(nodes, loads, strict=True)):
        half = load.as_dict()
        half["node_id"] = i + 1
        half["gateway_cpu"] = meters[i].summary(half["responses"])
        half["store_commits"] = commit_stats(before[i], scrape(gw.metrics_url))
        half["gateway_rss_mb"] = read_rss(gw.pid)
        per_node.append(half)
    wall = (max(t + half["send_seconds"] for t, half in zip(started, per_node, strict=True))
            - min(started))
    gateway_cpu = sum(meter.cpu for meter in meters)
    result = _totals(spec, per_node, wall, gateway_cpu)
    # The database shares the machine: the third process the two cores feed.
    result["postgresql_cpu"] = database_cpu.summary(result["responses"])
    # One generator drives every node: the same cost in both configurations.
    result["loadgen_cpu_seconds"] = round(own_cpu, 2)
    # The shared machine over the same window: others' work shows as busy elsewhere.
    result["machine_cpu"] = machine.summary(gateway_cpu + database_cpu.cpu + own_cpu)
    result["per_node"] = per_node
    return result


def _totals(spec: dict[str, Any], per_node: list[dict[str, Any]], wall: float,
            cpu: float) -> dict[str, Any]:
    """The loads of every node as one: counts summed, the rate over `wall`, and every
    node's CPU (`cpu` seconds) over the messages of all, what the deployment spends."""
    statuses: Counter[str] = Counter()
    for half in per_node:
        statuses.update(half["statuses"])
    responses = sum(half["responses"] for half in per_node)
    return {
        "nodes": len(per_node),
        "sessions_requested": spec["sessions"],
        "sessions_bound": sum(half["sessions_bound"] for half in per_node),
        "messages_requested": spec["messages"],
        "submitted": sum(half["submitted"] for half in per_node),
        "responses": responses,
        "statuses": dict(statuses),
        "timed_out": any(half["timed_out"] for half in per_node),
        "send_seconds": round(wall, 3),
        "accepted_per_second": round(statuses["ESME_ROK"] / wall, 1) if wall > 0 else 0.0,
        "gateway_cpu": {
            "cpu_seconds": round(cpu, 2),
            "cores_busy": round(cpu / wall, 2) if wall > 0 else 0.0,
            "cpu_us_per_message": round(1e6 * cpu / responses, 1) if responses else 0.0,
        },
    }


SCENARIOS: dict[str, Callable[[RunContext], Outcome]] = {
    "throughput": scenario_throughput,
    "receipts": scenario_receipts,
    "latency": scenario_latency,
    "connections": scenario_connections,
    "codec": scenario_codec,
    "forward": scenario_forward,
    "floor": scenario_floor,
    "window10": scenario_window10,
    "cluster": scenario_cluster,
}
ALIASES = {str(n): name for name, n in NUMBERS.items()} | {f"s{n}": name for name, n in NUMBERS.items()}

