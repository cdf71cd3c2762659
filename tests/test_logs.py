"""Log lines an operator can act on (gateway/logs.py and the lines it carries): one
WARNING per refused bind with peer, system_id and reason; one INFO line when a bound
session ends; one INFO line per admin change, never with a password; and `smppgw serve`
writing text or JSON lines with zoned ISO 8601 timestamps, libraries kept quiet at DEBUG.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import smpplib.client
import smpplib.exceptions
from gw_helpers import admin, new_account
from smpp_client import RawClient

from config.settings import Settings
from gateway.logs import (
    LIBRARIES_WITH_OWN_LEVEL,
    PROJECT_LOGGERS,
    TextFormatter,
    configure_logging,
)
from pdu.codec import BindReceiver, Unbind
from pdu.status import CommandStatus as S

SMPPGW = [sys.executable, "-m", "gateway.cli"]
ISO_ZONED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
TEXT_LINE = re.compile(
    r"^(?P<ts>\S+) (?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<logger>\S+): (?P<msg>.*)$"
)


def _refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("bind refused:")]


# --- refused binds, over real TCP ---------------------------------------------------------

async def test_refused_bind_logs_one_warning_with_peer_system_id_and_reason(gateway, caplog):
    account = await new_account(gateway)
    caplog.set_level(logging.INFO, logger="gateway")
    client = await RawClient.connect(*gateway.endpoints.smpp)
    resp = await client.bind(account["system_id"], "wrongpw1")
    await client.close()
    assert resp.command_status == S.ESME_RINVPASWD
    [record] = _refusals(caplog)
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"bind refused: peer=127.0.0.1 system_id={account['system_id']!r} "
        "reason=bad_password status=ESME_RINVPASWD"
    )
    assert (record.peer, record.system_id, record.reason, record.status) == (
        "127.0.0.1", account["system_id"], "bad_password", "ESME_RINVPASWD")
    assert not any("wrongpw1" in r.getMessage() for r in caplog.records)


async def test_hostile_system_id_cannot_forge_a_refused_bind_line(gateway, caplog):
    caplog.set_level(logging.WARNING, logger="gateway")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    logging.getLogger("gateway").addHandler(handler)
    try:
        client = await RawClient.connect(*gateway.endpoints.smpp)
        resp = await client.bind("x\npeer=6.6.6.6", "whatever")
        await client.close()
    finally:
        logging.getLogger("gateway").removeHandler(handler)
    assert resp.command_status == S.ESME_RINVSYSID
    [record] = _refusals(caplog)
    assert record.reason == "unknown_system_id"
    [line] = stream.getvalue().splitlines()
    assert " bind refused: peer=127.0.0.1 system_id='x\\npeer=6.6.6.6' " in line


async def test_bind_over_the_bind_limit_logs_one_refusal(gateway, caplog):
    account = await new_account(gateway)  # bind_limit 1 (the default)
    caplog.set_level(logging.INFO, logger="gateway")
    first = await RawClient.connect(*gateway.endpoints.smpp)
    second = await RawClient.connect(*gateway.endpoints.smpp)
    try:
        assert (await first.bind(account["system_id"], account["password"])).command_status == 0
        resp = await second.bind(account["system_id"], account["password"], BindReceiver)
    finally:
        await second.close()
        await first.close()
    assert resp.command_status == S.ESME_RBINDFAIL
    [record] = _refusals(caplog)
    assert "reason=bind_limit status=ESME_RBINDFAIL" in record.getMessage()
    assert account["password"] not in caplog.text


# --- bound sessions: their end, not their PDUs ---------------------------------------------

async def _wait_for(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    for _ in range(500):
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]
        if lines:
            return lines
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {prefix!r} line; got {caplog.text}")


async def test_unbind_and_close_of_a_bound_session_log_one_line_each(gateway, caplog):
    account = await new_account(gateway, settings={"bind_limit": 2})
    sid = account["system_id"]
    caplog.set_level(logging.INFO, logger="gateway.sessions")
    polite = await RawClient.connect(*gateway.endpoints.smpp)
    assert (await polite.bind(sid, account["password"])).command_status == 0
    assert (await polite.request(Unbind())).command_status == 0
    await polite.close()
    [unbound] = await _wait_for(caplog, "session unbound:")
    assert re.search(rf"session=\d+ system_id={sid} peer=127\.0\.0\.1:\d+ "
                     r"bind_type=transceiver bound_for=\d+\.\ds by=peer reason=", unbound)
    rude = await RawClient.connect(*gateway.endpoints.smpp)
    assert (await rude.bind(sid, account["password"])).command_status == 0
    await rude.close()  # no unbind: the connection just goes
    [closed] = await _wait_for(caplog, "session closed:")
    assert f"system_id={sid} " in closed and "by=peer reason=connection closed by the peer" \
        in closed
    ended = [r for r in caplog.records if r.getMessage().startswith("session ")
             and " bound:" not in r.getMessage()]
    assert len(ended) == 2  # the unbound session's connection close adds no line
    assert all(r.system_id == sid and r.bound_seconds >= 0 for r in ended)


# --- admin changes -----------------------------------------------------------------------

async def test_admin_change_logs_actor_action_target_and_no_password(gateway, caplog):
    caplog.set_level(logging.INFO, logger="store.audit")
    caplog.set_level(logging.INFO, logger="gateway.sessions")
    account = await new_account(gateway)
    sid = account["system_id"]
    client = await RawClient.connect(*gateway.endpoints.smpp)
    assert (await client.bind(sid, account["password"])).command_status == 0
    rotated = await admin(gateway, "password.rotate", system_id=sid, unbind=True)
    [unbound] = await _wait_for(caplog, "session unbound:")
    await client.close()
    assert f"system_id={sid} " in unbound and " by=gateway " in unbound
    lines = [r for r in caplog.records if r.getMessage().startswith("admin change:")]
    assert [(r.action, r.target) for r in lines] == [
        ("account.create", sid), ("password.rotate", sid)]
    assert lines[0].getMessage() == (
        f"admin change: actor=uid:{os.getuid()} action=account.create target={sid}")
    for password in (account["password"], rotated["password"]):
        assert password not in caplog.text


# --- the formats, in process ------------------------------------------------------------------

@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    names = [*PROJECT_LOGGERS, *LIBRARIES_WITH_OWN_LEVEL]
    saved = root.level, list(root.handlers), {n: logging.getLogger(n).level for n in names}
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_debug_shows_our_loggers_and_keeps_libraries_at_their_level(log_format):
    stream = io.StringIO()
    configure_logging(Settings(log_format=log_format, log_level="DEBUG"), stream)
    logging.getLogger("gateway.sessions.session").debug("ours at debug")
    logging.getLogger("sqlalchemy.engine.Engine").debug("SELECT secret rows")
    logging.getLogger("aiosqlite").info("a driver at info")
    logging.getLogger("store.engine").info("url postgresql://gw:hunter2@db/smppgw")
    logging.getLogger("sqlalchemy.pool").warning("a library warning")
    text = stream.getvalue()
    assert "ours at debug" in text and "a library warning" in text
    assert "SELECT secret rows" not in text and "a driver at info" not in text
    assert "hunter2" not in text and "postgresql://gw:***@db/smppgw" in text
    assert len(text.splitlines()) == 3


@pytest.mark.usefixtures("restore_logging")
def test_libraries_at_debug_when_log_level_libraries_says_so():
    stream = io.StringIO()
    configure_logging(Settings(log_level="WARNING", log_level_libraries="DEBUG"), stream)
    logging.getLogger("sqlalchemy.engine.Engine").debug("SELECT 1")
    logging.getLogger("gateway.app").info("ours at info")
    assert "SELECT 1" in stream.getvalue() and "ours at info" not in stream.getvalue()


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_extra_fields_redacted_and_the_traceback_as_a_string():
    stream = io.StringIO()
    configure_logging(Settings(log_format="json"), stream)
    log = logging.getLogger("gateway.test")
    log.warning("dial %s", "postgresql://u:pw1@h/db", extra={
        "peer": "192.0.2.7", "dsn": "postgresql://u:pw2@h/db?password=pw3", "level": "forged"})
    try:
        raise RuntimeError("while at postgresql://u:pw4@h/db")
    except RuntimeError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(first)[:4] == ["ts", "level", "logger", "message"]
    assert ISO_ZONED.match(first["ts"])
    assert first["level"] == "WARNING" and first["logger"] == "gateway.test"
    assert first["peer"] == "192.0.2.7"
    assert first["message"] == "dial postgresql://u:***@h/db"
    assert first["dsn"] == "postgresql://u:***@h/db?password=***"
    assert "RuntimeError" in second["exc_info"] and "pw4" not in second["exc_info"]


# --- `smppgw serve` as an operator runs it ------------------------------------------------------

def _serve(state: Path, stderr: Path, **env_settings: str) -> tuple[subprocess.Popen, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMPPGW_")}
    env.update({f"SMPPGW_{k.upper()}": v for k, v in env_settings.items()})
    proc = subprocess.Popen(
        [*SMPPGW, "serve", "--state-dir", str(state), "--smpp-port", "0",
         "--metrics-port", "-1", "--web-port", "-1"],
        stdout=subprocess.PIPE, stderr=stderr.open("w"), text=True, env=env,
    )
    info: dict[str, str] = {}
    for line in proc.stdout:
        if m := re.search(r"SMPP listening on (\S+):(\d+)", line):
            info["host"], info["port"] = m.group(1), m.group(2)
        elif m := re.search(r"admin socket (\S+)", line):
            info["admin"] = m.group(1)
        elif line.startswith("  system_id="):
            info.update(re.findall(r"(\w+)=(\S+)", line))
        elif line.startswith("smppgw: ready"):
            return proc, info
    proc.wait(30)
    raise AssertionError(f"serve exited early: {stderr.read_text()}")


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.stdout.read()
        return proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()


def _binds(info: dict) -> None:
    """One refused bind, one good bind and unbind, over smpplib."""
    for password in ("wrongpw1", info["password"]):
        client = smpplib.client.Client(info["host"], int(info["port"]), timeout=10)
        client.connect()
        try:
            client.bind_transceiver(system_id=info["system_id"], password=password)
            client.unbind()
        except smpplib.exceptions.PDUError:
            pass
        finally:
            client.disconnect()


def test_serve_json_lines_at_debug_parse_and_keep_the_drivers_quiet(tmp_path):
    stderr = tmp_path / "stderr.log"
    proc, info = _serve(tmp_path / "var", stderr, log_format="json", log_level="DEBUG")
    try:
        _binds(info)
    finally:
        assert _stop(proc) == 0
    lines = [json.loads(line) for line in stderr.read_text().splitlines() if line.strip()]
    assert lines, "no log line at DEBUG"
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= set(line), line
        assert ISO_ZONED.match(line["ts"]), line
        top = line["logger"].split(".")[0]
        assert top in PROJECT_LOGGERS or line["level"] not in ("DEBUG", "INFO"), line
    assert any(line["level"] == "DEBUG" for line in lines)  # log_level applies to ours
    [refused] = [line for line in lines if line["message"].startswith("bind refused:")]
    assert (refused["peer"], refused["system_id"], refused["reason"]) == (
        "127.0.0.1", info["system_id"], "bad_password")
    assert any(line["message"].startswith("session unbound:") for line in lines)
    assert info["password"] not in stderr.read_text()


def test_serve_text_lines_are_zoned_and_admin_changes_show_no_password(tmp_path):
    stderr = tmp_path / "stderr.log"
    proc, info = _serve(tmp_path / "var", stderr)
    try:
        created = subprocess.run(
            [*SMPPGW, "admin", "--socket", info["admin"], "account", "create", "--credits",
             "5", "--allow-ip", "127.0.0.1", "--json"],
            check=False, capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr
        account = json.loads(created.stdout)
    finally:
        assert _stop(proc) == 0
    text = stderr.read_text()
    lines = text.splitlines()
    parsed = [TEXT_LINE.match(line) for line in lines]
    assert all(parsed) and lines, text
    assert all(ISO_ZONED.match(m["ts"]) for m in parsed)
    assert any(m["logger"] == "store.audit" and m["msg"] == (
        f"admin change: actor=uid:{os.getuid()} action=account.create "
        f"target={account['system_id']}") for m in parsed), text
    assert account["password"] not in text and info["password"] not in text
