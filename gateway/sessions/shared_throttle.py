"""Bind throttling across the nodes of one store: each node tells the others of the
binds that failed on it, and counts theirs as its own (auth.throttle.BindGuard), so a
guesser that spreads its tries over the nodes meets the limits of one.

Failures are told in batches, one notice per event-loop turn (store.changes); a node
skips its own. The notices are bounded by the throttle itself: a blocked key's binds
are refused before any password check, and nothing is told of those.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from store.changes import BIND_FAILURES_PREFIX

if TYPE_CHECKING:
    from auth.throttle import BindGuard
    from store.changes import ChangeFeed

log = logging.getLogger(__name__)

# Failures per notice: well under PostgreSQL's 8000-byte payload with the longest
# system_id and IPv6 address.
PER_NOTICE = 60


class SharedThrottle:
    def __init__(self, guard: BindGuard, changes: ChangeFeed, *, node: str) -> None:
        self._guard = guard
        self._changes = changes
        self._node = node
        self._pending: list[tuple[str, str, bool]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._changes.listen(self._heard)

    async def stop(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def failed(self, system_id: str, ip: str, listed: bool) -> None:
        """A bind failed here: the other nodes hear of it at the end of this turn."""
        if not self._changes.shared:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._send)
        self._pending.append((system_id, ip, listed))

    def _send(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), PER_NOTICE):
            payload = BIND_FAILURES_PREFIX + json.dumps(
                {"node": self._node, "failed": pending[start:start + PER_NOTICE]},
                separators=(",", ":"))
            task = asyncio.get_running_loop().create_task(self._changes.publish(payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _heard(self, payload: str) -> None:
        if not payload.startswith(BIND_FAILURES_PREFIX):
            return
        try:
            told = json.loads(payload[len(BIND_FAILURES_PREFIX):])
            if told["node"] == self._node:
                return
            failures = [(str(s), str(ip), bool(listed)) for s, ip, listed in told["failed"]]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable bind-failure notice ignored: %s", exc)
            return
        for system_id, ip, listed in failures:
            self._guard.failed_elsewhere(system_id, ip, listed=listed)
