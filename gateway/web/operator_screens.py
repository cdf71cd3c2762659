"""The operator's screens of the panel (issue 14; being built)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.web.panel import Panel


def routes(panel: Panel) -> list[BaseRoute]:
    return []
