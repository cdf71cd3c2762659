"""Every benchmark scenario at a tiny size, so the suite cannot rot unnoticed.

One `python -m benchmarks.run all --size tiny` in a child process, results written to a
temporary directory and nothing appended to benchmarks/RESULTS.md. It checks that each
scenario produced a result with sane fields (every message acknowledged ESME_ROK, one
DLR per message, ...); it never asserts timing, which this shared machine cannot keep.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.context import REPO
from benchmarks.esme import receipt_fields
from benchmarks.loadgen import percentiles
from benchmarks.scenarios import LOADS

TABLE = REPO / "benchmarks" / "RESULTS.md"


def _table_state() -> bytes | None:
    return TABLE.read_bytes() if TABLE.exists() else None


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("bench")
    before = _table_state()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "all", "--size", "tiny", "--source", "worktree",
         "--output-dir", str(out), "--no-record"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _table_state() == before, "a tiny run must not append to RESULTS.md"
    docs = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    return {d["scenario"]: d for d in docs}


def _sane_latency(lat: dict, count: int) -> None:
    assert lat["count"] == count
    assert 0 <= lat["p50"] <= lat["p99"] <= lat["max"]


def check_all_acknowledged(doc: dict, messages: int) -> dict:
    r = doc["result"]
    assert r["statuses"] == {"ESME_ROK": messages}, r["statuses"]
    assert r["submitted"] == r["responses"] == messages
    assert not r["timed_out"]
    _sane_latency(r["submit_latency_ms"], messages)
    assert r["accepted_per_second"] > 0
    return r


def test_every_scenario_wrote_a_result_with_machine_and_target(results):
    assert set(results) == set(LOADS)
    for doc in results.values():
        assert doc["size"] == "tiny"
        assert doc["machine"]["cores"] >= 1 and doc["machine"]["loop"] in ("uvloop", "asyncio")
        assert doc["target"] and doc["key"]
        assert not doc["key"].startswith("failed:"), doc["key"]


def test_throughput_acknowledges_every_submit_and_is_read_against_the_floor(results):
    spec = LOADS["throughput"]["tiny"]
    r = check_all_acknowledged(results["throughput"], spec["messages"])
    assert r["sessions_bound"] == spec["sessions"]
    assert r["dlrs_received"] == 0
    assert 0 < r["fraction_of_floor"]
    assert results["throughput"]["settings_changed"]["default_window"] == str(spec["window"])


def test_receipts_bring_back_one_dlr_per_message(results):
    spec = LOADS["receipts"]["tiny"]
    r = check_all_acknowledged(results["receipts"], spec["messages"])
    assert r["dlrs_expected"] == r["dlrs_matched"] == r["dlrs_received"] == spec["messages"]
    assert r["dlrs_duplicate"] == r["dlrs_unmatched"] == 0
    assert r["dlr_stats"] == {"DELIVRD": spec["messages"]}
    _sane_latency(r["dlr_latency_ms"], spec["messages"])


def test_latency_sends_at_the_fixed_rate(results):
    spec = LOADS["latency"]["tiny"]
    r = check_all_acknowledged(results["latency"], int(spec["rate"] * spec["duration"]))
    assert r["mode"] == "paced" and r["target_rate"] == spec["rate"]


def test_connections_hold_every_session_and_read_the_server_rss(results):
    spec = LOADS["connections"]["tiny"]
    r = results["connections"]["result"]
    assert r["sessions_bound"] == spec["sessions"]
    assert r["bind_statuses"] == {"ESME_ROK": spec["sessions"]}
    assert r["enquire_links_sent"] > 0
    assert r["enquire_link_resps"] == r["enquire_links_sent"]
    assert r["gateway_rss_mb"]["end_of_hold"]["VmRSS"] > 0


def test_codec_measures_each_operation(results):
    r = results["codec"]["result"]
    for name in ("decode_submit_sm", "encode_submit_sm", "decode_deliver_sm",
                 "encode_deliver_sm"):
        assert r[name]["ops_per_second"] > 0 and r[name]["iterations"] >= 1


def test_floor_answers_every_submit(results):
    check_all_acknowledged(results["floor"], LOADS["floor"]["tiny"]["messages"])


def test_forward_reaches_the_upstream_or_says_why_not(results):
    doc = results["forward"]
    if doc["skipped"]:
        assert "upstream connector not available" in doc["skipped"]
        return
    spec = LOADS["forward"]["tiny"]
    r = check_all_acknowledged(doc, spec["messages"])
    assert r["upstream_received"] == spec["messages"]


def test_cluster_runs_one_node_then_two_on_one_postgresql_or_says_why_not(results):
    doc = results["cluster"]
    if doc["skipped"]:
        assert "PostgreSQL not reachable" in doc["skipped"]
        return
    spec = LOADS["cluster"]["tiny"]
    for label, nodes in (("one_node", 1), ("two_nodes", 2)):
        part = doc["result"][label]
        assert part["statuses"] == {"ESME_ROK": spec["messages"]}
        assert part["messages_in_store"] == spec["messages"]
        assert [n["node_id"] for n in part["per_node"]] == list(range(1, nodes + 1))
        assert sum(n["sessions_bound"] for n in part["per_node"]) == spec["sessions"]
    assert "PostgreSQL" in doc["durable_defaults"]


def test_one_customer_at_window_10_gets_every_dlr_back_through_the_upstream(results):
    doc = results["window10"]
    if doc["skipped"]:
        assert "upstream connector not available" in doc["skipped"]
        return
    spec = LOADS["window10"]["tiny"]
    r = check_all_acknowledged(doc, spec["messages"])
    assert r["sessions_bound"] == 1
    assert r["upstream_received"] == spec["messages"]
    assert r["dlrs_expected"] == r["dlrs_matched"] == r["dlrs_received"] == spec["messages"]
    assert r["dlrs_duplicate"] == r["dlrs_unmatched"] == 0
    _sane_latency(r["dlr_latency_ms"], spec["messages"])
    # Each receipt leaves the simulator `latency_ms` after it accepted the message.
    assert r["dlr_latency_ms"]["p50"] >= spec["latency_ms"]
    assert r["upstream_cpu"]["cpu_us_per_message"] >= 0
    assert doc["settings_changed"]["default_window"] == "10"
    assert "window=10&" in doc["settings_changed"]["upstream_url"]


def test_every_throughput_row_names_the_cpu_per_message(results):
    # A tiny load may take less than one clock tick of CPU: only the presence is checked.
    for name in ("throughput", "receipts", "latency", "forward", "window10"):
        doc = results[name]
        if doc["skipped"]:
            continue
        assert doc["result"]["gateway_cpu"]["cpu_us_per_message"] >= 0, name
        assert "us/msg gateway CPU" in doc["key"], doc["key"]
    assert "us/msg floor CPU" in results["floor"]["key"]
    assert results["floor"]["result"]["server_cpu"]["cpu_us_per_message"] >= 0


def test_percentiles_use_nearest_rank_in_milliseconds():
    lat = percentiles([i / 1000 for i in range(1, 101)])
    assert lat == {"count": 100, "p50": 51.0, "p99": 100.0, "max": 100.0}
    assert percentiles([])["count"] == 0


def test_receipt_fields_prefer_the_tlv_and_fall_back_to_the_text():
    from pdu.codec import DeliverSm
    from pdu.tlv import Tag, cstr_tlv

    text = b"id:42 sub:001 dlvrd:001 submit date:2611251330 done date:2611251330 stat:DELIVRD"
    with_tlv = DeliverSm(esm_class=4, short_message=text,
                         tlvs=[cstr_tlv(Tag.RECEIPTED_MESSAGE_ID, "43")])
    without = DeliverSm(esm_class=4, short_message=text)
    assert receipt_fields(with_tlv) == (4, "43", "DELIVRD")
    assert receipt_fields(without) == (4, "42", "DELIVRD")


def test_loadgen_command_line_drives_the_floor_and_prints_json(tmp_path):
    from benchmarks.context import RunContext
    from benchmarks.processes import floor_server

    ctx = RunContext(size="tiny", output_dir=tmp_path, table=None, gateway_env={}, commit="x")
    with floor_server(ctx) as (host, port, _):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.loadgen", "--host", host, "--port", str(port),
             "--system-id", "any", "--password", "any", "--messages", "300", "--sessions", "2",
             "--window", "10", "--time-limit", "60"],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["statuses"] == {"ESME_ROK": 300}
    assert result["sessions_bound"] == 2 and result["loop"] in ("uvloop", "asyncio")
