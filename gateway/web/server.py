"""The HTTP server of the web panel: uvicorn, in the gateway's own event loop.

uvicorn's `serve()` takes over the process's signals, which `smppgw serve` handles
itself; so the server is driven step by step (startup, main loop, shutdown) on a socket
bound here, where a port in use is an OSError like any other listener's, not an exit.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import uvicorn

log = logging.getLogger(__name__)


class WebServer:
    def __init__(self, app: Any, host: str, port: int, *, certfile: Path | None = None,
                 keyfile: Path | None = None) -> None:
        self._app = app
        self._host, self._port = host, port
        self._certfile, self._keyfile = certfile, keyfile
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def https(self) -> bool:
        return self._certfile is not None

    async def start(self) -> tuple[str, int]:
        # log_config=None, log_level=None: uvicorn's lines go through the gateway's own
        # handler (format, redaction) at log_level_libraries instead of its own handlers.
        config = uvicorn.Config(
            self._app, lifespan="off", log_config=None, log_level=None, access_log=False,
            server_header=False, proxy_headers=False,
            ssl_certfile=str(self._certfile) if self._certfile else None,
            ssl_keyfile=str(self._keyfile) if self._keyfile else None,
            ssl_cert_reqs=ssl.CERT_NONE,
        )
        config.load()
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.create_server((self._host, self._port), family=family, backlog=128)
        sock.setblocking(False)
        self._sock = sock
        server = self._server = uvicorn.Server(config)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[sock])
        self._task = asyncio.get_running_loop().create_task(server.main_loop(),
                                                            name="smppgw-web")
        host, port = sock.getsockname()[:2]
        return host, port

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._task is not None:
            # Its main loop only sleeps and ticks (every 0.1 s) until should_exit is seen:
            # cancelled, not waited for, so a stop does not wait for the next tick.
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        state = server.server_state
        if state.connections or state.tasks:
            await server.shutdown(sockets=[self._sock] if self._sock else None)
        else:
            # Nothing to let finish: uvicorn's shutdown would still sleep 0.1 s first.
            for listening in server.servers:
                listening.close()
        if self._sock is not None:
            self._sock.close()
