"""One `smppgw serve` per state directory: an exclusive flock on ``state_dir/smppgw.lock``,
held for the life of the process.

The kernel drops a flock with the last descriptor of its process, however the process
ends (kill -9 included), so a stale lock never blocks a restart. The file holds the pid of
the holder for the refusal message; it is never removed (removing a lock file lets two
processes lock two different files of the same name).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from store.files import PRIVATE_FILE

LOCK_NAME = "smppgw.lock"


class StateDirBusy(Exception):
    """Another process holds the state directory."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.state_dir = state_dir
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(
            f"another smppgw ({holder}) is serving this state directory ({state_dir}); "
            "stop it first, or give this one another --state-dir"
        )


class StateLock:
    """The held lock; `release()` (or the end of the process) lets it go."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def lock_state_dir(state_dir: Path) -> StateLock:
    """Take the state directory (which must exist) for this process, or raise StateDirBusy."""
    path = state_dir / LOCK_NAME
    # 0600 at most (a umask only takes bits away); it holds nothing but a pid.
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise StateDirBusy(state_dir, pid) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StateLock(path, fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
