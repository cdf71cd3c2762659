"""The SMPP ports customers connect to: plain TCP, and TLS when configured."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from config.settings import Settings


def make_tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if settings.tls_min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return context


class Listeners:
    """Opens the ports; `plain`/`tls` are the (host, port) actually bound."""

    def __init__(self, settings: Settings,
                 session_factory: Callable[[bool], asyncio.Protocol]) -> None:
        self._settings = settings
        self._factory = session_factory
        self._servers: list[asyncio.base_events.Server] = []
        self.plain: tuple[str, int] | None = None
        self.tls: tuple[str, int] | None = None

    async def start(self) -> None:
        s = self._settings
        loop = asyncio.get_running_loop()
        if s.smpp_port is not None and s.smpp_port >= 0:
            server = await loop.create_server(
                lambda: self._factory(False), s.smpp_host, s.smpp_port, backlog=1024
            )
            self._servers.append(server)
            self.plain = server.sockets[0].getsockname()[:2]
        if s.tls_port is not None:
            server = await loop.create_server(
                lambda: self._factory(True), s.smpp_host, s.tls_port,
                ssl=make_tls_context(s), backlog=1024,
            )
            self._servers.append(server)
            self.tls = server.sockets[0].getsockname()[:2]

    def close(self) -> None:
        for server in self._servers:
            server.close()
