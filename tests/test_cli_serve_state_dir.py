"""`smppgw serve` and its state directory, as an operator runs it (real processes): created
private (0700, database files 0600) whatever the umask, one `serve` per state directory,
and no URL password in anything it prints or logs."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from store_fixtures import PG_URL

from store.engine import migrate

SMPPGW = [sys.executable, "-m", "gateway.cli"]
SECRET = "s3cret"


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMPPGW_")}
    env["SMPPGW_SIMULATOR_DELAY_MS"] = "20"
    env.update({f"SMPPGW_{name.upper()}": value for name, value in settings.items()})
    return env


def _serve_args(state_dir: Path) -> list[str]:
    return [*SMPPGW, "serve", "--state-dir", str(state_dir), "--smpp-port", "0",
            "--metrics-port", "0", "--web-port", "0"]


def _start(state_dir: Path, **settings: str) -> tuple[subprocess.Popen, list[str]]:
    """A `serve` under umask 022, and what it printed up to "ready". Its log goes to a
    file beside the state directory (a pipe nobody drains would stall a chatty serve)."""
    log = (state_dir.parent / f"{state_dir.name}-serve.log").open("w+")
    proc = subprocess.Popen(_serve_args(state_dir), stdout=subprocess.PIPE, stderr=log,
                            text=True, env=_env(**settings), umask=0o022)
    proc.log = log  # type: ignore[attr-defined]
    printed: list[str] = []
    deadline = time.monotonic() + 60
    while not printed or not printed[-1].startswith("smppgw: ready"):
        line = proc.stdout.readline()
        if not line:
            proc.wait(timeout=30)
            raise AssertionError(f"serve exited early: {_logged(proc)}")
        if time.monotonic() > deadline:
            raise AssertionError("serve did not get ready in time")
        printed.append(line)
    return proc, printed


def _logged(proc: subprocess.Popen) -> str:
    proc.log.seek(0)  # type: ignore[attr-defined]
    return proc.log.read()  # type: ignore[attr-defined]


def _stop(proc: subprocess.Popen) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = _logged(proc)
    proc.log.close()  # type: ignore[attr-defined]
    return proc.returncode, out, err


def _admin_answers(socket_path: Path) -> bool:
    result = subprocess.run([*SMPPGW, "admin", "--socket", str(socket_path), "account", "list"],
                            capture_output=True, text=True, timeout=60, check=False)
    return result.returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _scratch_pg_database() -> sa.URL:
    """A database of its own on the test PostgreSQL, reached with a password in the URL
    (any password passes a server that trusts local connections), migrated as an
    operator would before starting a node on it; skip without one."""
    base = sa.make_url(PG_URL)
    if base.password is None:
        base = base.set(password=SECRET)
    url = base.set(database=f"smppgw_{os.getpid()}_{int(time.time() * 1000) % 10**8}")
    try:
        conn = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(False),
                                     timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL at {base.render_as_string()} is unreachable: {exc!r}")
    try:
        await conn.execute(f'CREATE DATABASE "{url.database}"')
    finally:
        await conn.close()
    await migrate(url.render_as_string(hide_password=False))
    return url


async def _drop_pg_database(url: sa.URL) -> None:
    admin = url.set(drivername="postgresql", database=sa.make_url(PG_URL).database)
    conn = await asyncpg.connect(admin.render_as_string(False), timeout=3)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await conn.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_fresh_serve_is_private_and_prints_no_url_password(tmp_path: Path) -> None:
    state = tmp_path / "var"
    # A password in the upstream URL; the upstream is a closed port, so the connector
    # keeps retrying (and logging) while the test looks.
    proc, printed = _start(
        state, upstream_url=f"smpp://acme:{SECRET}@127.0.0.1:{_free_port()}", log_level="DEBUG",
    )
    try:
        modes = {p.name: _mode(p) for p in state.iterdir()}
        assert _mode(state) == 0o700
        assert modes == {"smppgw.db": 0o600, "smppgw.db-wal": 0o600, "smppgw.db-shm": 0o600,
                         "admin.sock": 0o600, "smppgw.lock": 0o600}
    finally:
        code, out, err = _stop(proc)
    assert code == 0, err
    assert "cannot connect to 127.0.0.1" in err  # the connector did log
    assert SECRET not in "".join(printed) + out + err


async def test_serve_on_postgresql_prints_its_url_without_the_password(tmp_path: Path) -> None:
    url = await _scratch_pg_database()
    try:
        proc, printed = _start(tmp_path / "var", database_url=url.render_as_string(False))
        try:
            shown = url.render_as_string(hide_password=True)
            assert f"smppgw: store {shown}\n" in printed and ":***@" in shown
        finally:
            code, out, err = _stop(proc)
        assert code == 0, err
        assert url.password not in "".join(printed) + out + err
    finally:
        await _drop_pg_database(url)


def test_serve_that_cannot_reach_its_database_shows_no_password(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://gw:{SECRET}@127.0.0.1:{_free_port()}/smppgw"
    result = subprocess.run(_serve_args(tmp_path / "var"), capture_output=True, text=True,
                            env=_env(database_url=url), timeout=60, check=False)
    assert result.returncode == 1 and "cannot start" in result.stderr
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "shown"),
    [
        ("database_url", f"mysql://gw:{SECRET}@db/smppgw", "mysql://gw:***@db/smppgw"),
        ("upstream_url", f"smpp://acme:{SECRET}@10.0.0.7?bogus=1", "smpp://acme:***@10.0.0.7"),
    ],
)
def test_configuration_error_shows_no_url_password(
    tmp_path: Path, setting: str, value: str, shown: str
) -> None:
    result = subprocess.run(_serve_args(tmp_path / "var"), capture_output=True, text=True,
                            env=_env(**{setting: value}), timeout=60, check=False)
    assert result.returncode == 2
    assert "configuration error" in result.stderr and shown in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_second_serve_on_a_state_dir_is_refused_and_the_first_keeps_serving(
    tmp_path: Path,
) -> None:
    state = tmp_path / "var"
    first, _ = _start(state)
    try:
        socket_path = state / "admin.sock"
        inode = socket_path.stat().st_ino
        second = subprocess.run(_serve_args(state), capture_output=True, text=True,
                                env=_env(), timeout=60, check=False)
        assert second.returncode == 1
        assert (f"another smppgw (pid {first.pid}) is serving this state directory"
                in second.stderr)
        assert "ready" not in second.stdout
        assert socket_path.stat().st_ino == inode and _admin_answers(socket_path)
    finally:
        first.kill()  # kill -9: the kernel drops the lock with the process
        first.communicate(timeout=30)
        first.log.close()  # type: ignore[attr-defined]
    # The next one starts at once (the stale socket is replaced) and answers.
    third, printed = _start(state)
    try:
        assert any(re.match(r"smppgw: admin socket ", line) for line in printed)
        assert _admin_answers(state / "admin.sock")
    finally:
        code, _, err = _stop(third)
    assert code == 0, err
