"""An asyncio SMPP load generator (ESME side) built to stay cheaper than what it measures.

Sessions (`benchmarks.esme`) are the project's own SMPP link in the ESME role with
nothing on top but counting; they bind as transceivers, answer every deliver_sm and
match delivery receipts to submit_sm_resp message_ids (`benchmarks.load`), and the run
reports messages/s, latency percentiles and statuses by name. Three modes share one
engine:

- windowed: send `messages` as fast as the window lets (scenario 1, 2, 6, 7);
- paced: `rate` messages/s, window-bounded (scenario 3);
- idle: bind `sessions`, then only enquire_link every `enquire_interval` (scenario 4).

Library: ``await run_load(LoadConfig(...))``. Command line:
``python -m benchmarks.loadgen --host 127.0.0.1 --port 2775 --system-id X --password Y``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.esme import EsmeSession
from benchmarks.load import (
    LOST_ON_DISCONNECT,
    RESPONSE_TIMEOUT,
    Load,
    LoadConfig,
    LoadResult,
    percentiles,
)
from pdu.status import status_name

# --- the run --------------------------------------------------------------------------


async def _open_session(
    load: Load, system_id: str, password: str, gate: asyncio.Semaphore
) -> EsmeSession | None:
    cfg = load.config
    async with gate:
        try:
            _, session = await load.loop.create_connection(
                lambda: EsmeSession(load, system_id, password), cfg.host, cfg.port
            )
            status = await asyncio.wait_for(session.bound, 60)
        except (OSError, ConnectionError, TimeoutError) as exc:
            load.bind_statuses[type(exc).__name__] += 1
            return None
    load.bind_statuses[status_name(status)] += 1
    if status != 0:
        session.transport.close()
        return None
    return session


async def _pace(load: Load, sessions: list[EsmeSession], rate: float) -> int:
    """Release messages on a fixed schedule; returns the largest backlog seen."""
    start = time.perf_counter()
    issued = 0
    backlog_max = 0
    turn = 0
    while load.remaining > 0:
        due = int(rate * (time.perf_counter() - start)) - issued
        if due > 0:
            # Round-robin so no session's window fills while another's is empty.
            for _ in range(len(sessions)):
                if due <= 0 or load.remaining <= 0:
                    break
                session = sessions[turn % len(sessions)]
                turn += 1
                share = load.take(min(due, max(1, due // len(sessions))))
                sent = session.send_submits(share)
                load.remaining += share - sent
                issued += sent
                due -= sent
            backlog_max = max(backlog_max, due)
        await asyncio.sleep(0.001)
    return backlog_max


async def _keepalive(load: Load, sessions: list[EsmeSession], until: float) -> None:
    """enquire_link on every session every `enquire_interval`, spread over the interval."""
    interval = load.config.enquire_interval
    step = interval / max(1, len(sessions))
    while time.perf_counter() < until:
        for session in sessions:
            session.enquire_link()
            await asyncio.sleep(step)
            if time.perf_counter() >= until:
                break


async def run_load(
    config: LoadConfig,
    on_bound: Callable[[], None] | None = None,
    before_unbind: Callable[[], None] | None = None,
    start_together: asyncio.Barrier | None = None,
) -> LoadResult:
    """Bind, run the configured load, unbind; always within `config.time_limit`.

    `on_bound` runs once the binds are answered and `before_unbind` once the load is
    over, while every session is still bound (scenario 4 reads the server's RSS there).
    Loads run side by side (scenario 9, one per node) share `start_together`: none
    sends before all have bound.
    """
    raise_nofile_limit(config.sessions + 64)
    load = Load(config)
    started = time.perf_counter()
    deadline = started + config.time_limit
    gate = asyncio.Semaphore(config.connect_concurrency)
    accounts = config.accounts()
    opening = [
        _open_session(load, *accounts[i % len(accounts)], gate) for i in range(config.sessions)
    ]
    sessions: list[EsmeSession] = []
    timed_out = False
    try:
        opened = await asyncio.wait_for(asyncio.gather(*opening), config.time_limit)
        sessions = [s for s in opened if s is not None]
    except TimeoutError:
        timed_out = True
    bind_seconds = time.perf_counter() - started
    if start_together is not None:
        # Reached even after a failed bind, so the other loads are never left waiting.
        await start_together.wait()
    if on_bound is not None:
        on_bound()
    mode = "idle" if config.idle_seconds > 0 else ("paced" if config.rate else "windowed")
    backlog_max = 0
    t0 = time.perf_counter()
    if sessions and not timed_out:
        remaining_time = max(0.0, deadline - time.perf_counter())
        try:
            if mode == "idle":
                until = t0 + min(config.idle_seconds, remaining_time)
                await _keepalive(load, sessions, until)
            else:
                if mode == "windowed":
                    for session in sessions:
                        session.send_submits(load.take(config.window))
                else:
                    backlog_max = await asyncio.wait_for(
                        _pace(load, sessions, config.rate), remaining_time
                    )
                load.check_finished()
                left = max(0.0, deadline - time.perf_counter())
                await asyncio.wait_for(asyncio.shield(load.answered), left)
                left = min(config.dlr_timeout, max(0.0, deadline - time.perf_counter()))
                await asyncio.wait_for(asyncio.shield(load.finished), left)
        except TimeoutError:
            timed_out = True
    elapsed = time.perf_counter() - t0
    send_elapsed = (load.last_response_at - t0) if load.last_response_at else elapsed
    if before_unbind is not None:
        before_unbind()
    await asyncio.gather(*(s.leave() for s in sessions), return_exceptions=True)
    return _result(load, mode, len(sessions), bind_seconds, t0, elapsed, send_elapsed,
                   backlog_max, timed_out)


def _result(
    load: Load, mode: str, bound: int, bind_seconds: float, t0: float, elapsed: float,
    send_elapsed: float, backlog_max: int, timed_out: bool,
) -> LoadResult:
    cfg = load.config
    pseudo = {LOST_ON_DISCONNECT: "LOST_ON_DISCONNECT", RESPONSE_TIMEOUT: "RESPONSE_TIMEOUT"}
    statuses = {
        (pseudo.get(code) or status_name(code)): n for code, n in sorted(load.statuses.items())
    }
    ok = load.statuses.get(0, 0)
    # Rates are taken up to the last submit_sm_resp, so DLR draining does not dilute them.
    span = send_elapsed if send_elapsed > 0 else elapsed
    return LoadResult(
        mode=mode,
        sessions_requested=cfg.sessions,
        sessions_bound=bound,
        bind_statuses=dict(load.bind_statuses),
        bind_seconds=round(bind_seconds, 3),
        messages_requested=cfg.messages if mode != "idle" else 0,
        submitted=load.submitted,
        responses=load.responses,
        statuses=statuses,
        elapsed_seconds=round(elapsed, 3),
        send_seconds=round(span, 3),
        messages_per_second=round(load.responses / span, 1) if span > 0 else 0.0,
        accepted_per_second=round(ok / span, 1) if span > 0 else 0.0,
        submit_latency_ms=percentiles(load.submit_latencies),
        dlrs_expected=load.accepted if load.track_dlrs else 0,
        dlrs_received=load.dlrs_received,
        dlrs_matched=len(load.dlr_done),
        dlrs_duplicate=load.dlrs_duplicate,
        dlrs_unmatched=len(load.early_dlr),
        dlr_stats=dict(load.dlr_stats),
        dlr_latency_ms=percentiles(load.dlr_latencies),
        dlr_complete_seconds=round(load.last_dlr_at - t0, 3) if load.last_dlr_at else 0.0,
        other_deliver_sm=load.other_deliver_sm,
        enquire_links_sent=load.enquire_sent,
        enquire_link_resps=len(load.enquire_latencies),
        enquire_link_latency_ms=percentiles(load.enquire_latencies),
        server_enquire_links=load.server_enquire_links,
        target_rate=cfg.rate,
        max_backlog=backlog_max,
        timed_out=timed_out,
        disconnects=load.disconnects,
        loop=loop_name(),
    )


# --- process-level helpers ------------------------------------------------------------


def raise_nofile_limit(wanted: int) -> int:
    """Lift the soft RLIMIT_NOFILE towards the hard one; returns the soft limit now set."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def loop_name() -> str:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "uvloop" if has_uvloop() else "asyncio"
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def run(coro: Any) -> Any:
    """Run a coroutine on uvloop when it is importable, else on the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--system-id", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--rate", type=float, help="messages/s over all sessions (default: max)")
    p.add_argument("--duration", type=float, help="with --rate: messages = rate x duration")
    p.add_argument("--registered-delivery", type=int, default=0)
    p.add_argument("--dlr-timeout", type=float, default=60.0)
    p.add_argument("--idle-seconds", type=float, default=0.0)
    p.add_argument("--enquire-interval", type=float, default=5.0)
    p.add_argument("--time-limit", type=float, default=600.0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    messages = args.messages
    if args.rate and args.duration:
        messages = int(args.rate * args.duration)
    config = LoadConfig(
        host=args.host, port=args.port, system_id=args.system_id, password=args.password,
        sessions=args.sessions, window=args.window, messages=messages, rate=args.rate,
        registered_delivery=args.registered_delivery, dlr_timeout=args.dlr_timeout,
        idle_seconds=args.idle_seconds, enquire_interval=args.enquire_interval,
        time_limit=args.time_limit,
    )
    result = run(run_load(config))
    json.dump(result.as_dict(), sys.stdout, indent=2)
    print()
    return 0 if not result.timed_out else 1


if __name__ == "__main__":
    sys.exit(main())
