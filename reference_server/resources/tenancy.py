"""(being built)"""

from __future__ import annotations

from typing import Any

from reference_server.http import WsgiApp
from reference_server.services import Services

OPENAPI_PATHS: dict[str, Any] = {}


def register(app: WsgiApp, services: Services) -> None:
    """Add this module's routes."""
