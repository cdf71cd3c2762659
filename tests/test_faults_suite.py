"""The fault and abuse suite (benchmarks.faults), each scenario at a size the test suite
can afford: real `smppgw serve` processes, the standalone upstream simulator, a
PostgreSQL of the scenario's own (initdb, stopped and started again) and a tmpfs filled
to the last byte, on loopback. Each must meet the target the runner records in
benchmarks/FAULTS.md; the full-size figures are there.
"""

from __future__ import annotations

import pytest

from benchmarks.context import REPO, RunContext
from benchmarks.faults_processes import postgres_unavailable
from benchmarks.faults_scenarios import ORDER, SCENARIOS, TARGETS
from benchmarks.loadgen import raise_nofile_limit


def _why_not(name: str) -> str | None:
    if name == "postgres":
        return postgres_unavailable()
    return None


@pytest.mark.parametrize("name", ORDER)
def test_fault_scenario_meets_its_target(name, tmp_path, capsys):
    why = _why_not(name)
    if why:
        pytest.skip(f"{name}: {why}")
    raise_nofile_limit(5_000)
    ctx = RunContext(size="test", output_dir=tmp_path, table=None, gateway_env={},
                     commit="worktree", source=REPO)
    ctx.current = name
    outcome = SCENARIOS[name](ctx)
    with capsys.disabled():
        print(f"\n{name}: {outcome.key}")
    if outcome.skipped:
        pytest.skip(f"{name}: {outcome.skipped}")
    assert outcome.met, f"{name}: target {TARGETS[name]!r} not met: {outcome.key}"
