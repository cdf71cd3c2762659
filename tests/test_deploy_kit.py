"""The deployment kit (deploy/) checked against the real things: systemd verifies the
unit, the Prometheus job parses and scrapes the path the gateway serves, every metric the
Grafana dashboard queries exists in a scrape of a gateway that carried traffic, and the
health endpoints answer as load balancers and service managers expect."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from delivery_helpers import Esme, ready_account, submit_pdu, wait_for

from config.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT = DEPLOY / "smppgw.service"
INSTALLED_AT = "/usr/local/bin/smppgw"


# --- the systemd unit --------------------------------------------------------------------


def _unit_directives(text: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            directives.setdefault(key.strip(), []).append(value.strip())
    return directives


def test_the_unit_runs_serve_as_its_own_user_with_a_private_state_directory():
    d = _unit_directives(UNIT.read_text())
    assert d["ExecStart"] == [f"{INSTALLED_AT} serve --config /etc/smppgw/smppgw.toml"]
    assert d["Type"] == ["simple"] and d["User"] == ["smppgw"]
    assert d["StateDirectory"] == ["smppgw"]
    assert d["Environment"] == ["SMPPGW_STATE_DIR=/var/lib/smppgw"]
    assert d["LimitNOFILE"] == ["65536"] and d["Restart"] == ["on-failure"]
    assert d["KillSignal"] == ["SIGTERM"]
    # Time to unbind every session (response_timeout) and commit, with room to spare.
    assert int(d["TimeoutStopSec"][0]) >= 3 * Settings().response_timeout
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert d[hardening] == ["yes"], hardening
    assert d["ProtectSystem"] == ["strict"]
    # The only writable place is the state directory (StateDirectory= makes it so).
    assert "ReadWritePaths" not in d


def _smppgw_script() -> str:
    """The `smppgw` entry point installed with this Python (the venv's bin)."""
    beside = Path(sys.executable).parent / "smppgw"
    found = str(beside) if beside.exists() else shutil.which("smppgw")
    if found is None:
        pytest.fail("the smppgw entry point is not installed (pip install -e .)")
    return found


def test_systemd_analyze_verifies_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    # The unit names the path the package installs to on a server; here the entry point
    # lives in the virtualenv, so a copy pointing at it is what verify can check whole.
    script = _smppgw_script()
    copy = tmp_path / "smppgw.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_AT, script))
    assert script in copy.read_text()
    run = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "smppgw.service" not in run.stderr, run.stderr
    if not Path(INSTALLED_AT).exists():
        # The original differs by its ExecStart path only, which is all verify minds.
        original = subprocess.run([analyze, "verify", str(UNIT)], capture_output=True,
                                  text=True, timeout=60, check=False)
        complaints = [line for line in original.stderr.splitlines() if "smppgw" in line]
        assert complaints and all(INSTALLED_AT in line for line in complaints), complaints


# --- Prometheus --------------------------------------------------------------------------


def test_the_prometheus_job_scrapes_the_metrics_path_on_the_default_port():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "smppgw"]
    assert job["metrics_path"] == "/metrics"
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets and all(t.endswith(f":{Settings().metrics_port}") for t in targets)


# --- a gateway that carried traffic ------------------------------------------------------


async def _get(endpoint: tuple[str, int], path: str, method: str = "GET") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection(*endpoint)
    writer.write(f"{method} {path} HTTP/1.0\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, body = data.split(b"\r\n\r\n", 1)
    return int(head.split(b" ", 2)[1]), body.decode()


def _series_names(text: str) -> set[str]:
    return {line.split("{", 1)[0].split(" ", 1)[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def _dashboard_queries(dashboard: dict) -> list[str]:
    queries = []
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop()
        panels += panel.get("panels", [])
        queries += [t["expr"] for t in panel.get("targets", [])]
    queries += [v["definition"] for v in dashboard["templating"]["list"]]
    return queries


_METRIC = re.compile(r"\b(?:smppgw|process|python)_[a-z0-9_]+\b")


def _metric_names(query: str) -> set[str]:
    # Label matchers and grouping clauses name labels, not metrics.
    query = re.sub(r"\{[^}]*\}", "", query)
    query = re.sub(r"\b(?:by|without)\s*\([^)]*\)", "", query)
    return set(_METRIC.findall(query))


def test_metric_names_of_a_query_are_found_outside_its_labels():
    query = ('sum by (le, upstream) (rate(smppgw_upstream_submit_seconds_bucket'
             '{job="smppgw", status!="smppgw_x"}[5m])) / process_open_fds')
    assert _metric_names(query) == {"smppgw_upstream_submit_seconds_bucket", "process_open_fds"}


async def test_every_metric_the_dashboard_queries_is_in_a_scrape(gateway):
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queries = _dashboard_queries(dashboard)
    used = set().union(*map(_metric_names, queries))
    assert len(used) >= 20, used

    # One message through, its receipt back: the hot path's series have values.
    account = await ready_account(gateway)
    esme = await Esme.bind(*gateway.endpoints.smpp, account)
    [resp] = await esme.submit_many([submit_pdu("33612345678")])
    assert resp.command_status == 0
    await wait_for(lambda: resp.message_id in esme.receipts, 20, "the receipt")
    await esme.leave()
    status, text = await _get(gateway.endpoints.metrics, "/metrics")
    assert status == 200
    scraped = _series_names(text)

    def exists(name: str) -> bool:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        return name in scraped or f"{base}_count" in scraped

    missing = sorted(name for name in used if not exists(name))
    assert missing == [], f"the dashboard queries metrics no scrape has: {missing}"


# --- health ------------------------------------------------------------------------------


async def test_healthz_and_readyz_answer_on_a_running_gateway(gateway):
    metrics = gateway.endpoints.metrics
    assert await _get(metrics, "/healthz") == (200, "ok\n")
    status, body = await _get(metrics, "/readyz")
    assert status == 200
    assert json.loads(body) == {"ready": True, "checks": {"store": "ok", "listeners": "ok"}}
    status, body = await _get(metrics, "/nothing")
    assert status == 404 and all(p in body for p in ("/metrics", "/healthz", "/readyz"))
    assert (await _get(metrics, "/readyz", method="POST"))[0] == 405


async def test_readyz_says_503_while_the_store_cannot_be_opened(gateway):
    metrics = gateway.endpoints.metrics
    path = Path(gateway.settings.effective_database_url.split("///", 1)[1])
    away = path.with_name(path.name + ".away")
    # The database file goes (a volume unmounted, a wrong restore): where it was, nothing
    # SQLite can open. The pool's open connections are closed, so the next check opens one.
    path.rename(away)
    path.mkdir()
    try:
        await gateway.engine.dispose()
        status, body = await _get(metrics, "/readyz")
        assert status == 503, body
        answer = json.loads(body)
        assert answer["ready"] is False and answer["checks"]["listeners"] == "ok"
        assert answer["checks"]["store"].startswith("unreachable: "), answer
        # Alive all the same: a service manager must not restart it for that.
        assert await _get(metrics, "/healthz") == (200, "ok\n")
    finally:
        path.rmdir()
        away.rename(path)
    await gateway.engine.dispose()
    assert (await _get(metrics, "/readyz"))[0] == 200
