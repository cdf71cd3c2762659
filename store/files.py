"""The gateway's own files are private: a directory it creates is 0700 and a database file
it creates 0600, whatever the umask. It never changes the mode of a path it did not
create: a looser one is logged as a warning with the command that fixes it.
"""

from __future__ import annotations

import logging
import os
import shlex
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# SQLite's companions of a database file in WAL mode (created with the database's mode).
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path, *, check_existing: bool = True) -> None:
    """Create ``path`` and its missing parents 0700; with ``check_existing``, warn when
    an existing ``path`` is open to group or others."""
    missing: list[Path] = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR)
        except FileExistsError:
            continue  # created meanwhile by someone else: theirs, not ours
        os.chmod(directory, PRIVATE_DIR)  # the umask may have taken bits away
    if check_existing and path not in missing:
        warn_if_open(path, PRIVATE_DIR)


def private_file(path: Path) -> bool:
    """Create ``path`` empty and 0600 unless it exists (then warn if it is open to group
    or others); True when it was created here."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    except FileExistsError:
        warn_if_open(path, PRIVATE_FILE)
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return True


def private_sqlite_file(path: Path) -> None:
    """Make an SQLite database file private before SQLite opens it.

    SQLite treats an empty file as an empty database and gives its -wal, -shm and
    -journal files the database file's mode, so creating the file 0600 here is enough.
    """
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            warn_if_open(companion, PRIVATE_FILE)


def warn_if_open(path: Path, wanted: int) -> bool:
    """Log a warning when ``path`` grants group or others any access; True if it does."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return False
    if not mode & 0o077:
        return False
    log.warning(
        "%s is open to other users (mode %04o); it may hold passwords and messages: "
        "run  chmod %o %s", path, mode, wanted, shlex.quote(str(path)),
    )
    return True
