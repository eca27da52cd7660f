"""The server's licenses rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reference_server.data import ServerData

__all__ = ["Licenses"]


class Licenses:
    def __init__(self, data: ServerData) -> None:
        self._data = data
