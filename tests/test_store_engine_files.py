"""store.engine and store.files: the SQLite store is created private whatever the umask
(directories 0700, the database and its -wal/-shm 0600), and files the gateway did not
create keep their mode, with a warning that says what to run."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.engine import make_engine, migrate
from store.files import private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


async def test_fresh_sqlite_store_is_private_whatever_the_umask(tmp_path: Path, umask) -> None:
    db = tmp_path / "state" / "deeper" / "smppgw.db"
    engine = make_engine(f"sqlite+aiosqlite:///{db}")
    try:
        await migrate(engine)
        async with engine.connect():  # an open connection keeps -wal and -shm around
            files = {p.name: mode(p) for p in db.parent.iterdir()}
    finally:
        await engine.dispose()
    assert files == {"smppgw.db": 0o600, "smppgw.db-wal": 0o600, "smppgw.db-shm": 0o600}
    assert mode(db.parent) == 0o700 and mode(db.parent.parent) == 0o700


async def test_existing_loose_database_is_reported_not_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "smppgw.db"
    db.touch()
    db.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="store.files"):
        engine = make_engine(f"sqlite+aiosqlite:///{db}")
        await engine.dispose()
    assert mode(db) == 0o644
    assert f"run  chmod 600 {db}" in caplog.text and "mode 0644" in caplog.text


def test_existing_loose_directory_is_reported_not_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "var"
    state.mkdir()
    state.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="store.files"):
        private_dir(state)
    assert mode(state) == 0o755
    assert f"run  chmod 700 {state}" in caplog.text
    caplog.clear()
    state.chmod(0o700)
    private_dir(state)
    assert caplog.text == ""
