"""Fixtures of the integration tests: a kit over each backend (the kit tests' ``world``), and
the URLs the async verbs need to reach the same data."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import REDIS_URL
from tests.kit.conftest import World, bundle_factory, world

__all__ = ["World", "bundle_factory", "world"]  # fixtures used here


@pytest.fixture
def urls(request: pytest.FixtureRequest, world: World) -> dict[str, Any]:
    """``database_url`` and ``redis_url`` of the world's backend (``None`` where it has none)."""
    backend = request.node.callspec.params.get("bundle_factory", "memory")
    sql_backend, _, cache = str(backend).partition("+")
    database_url = None
    if sql_backend != "memory":
        sql_urls: dict[str, str | None] = request.getfixturevalue("sql_urls")
        database_url = sql_urls[sql_backend]
    return {"database_url": database_url, "redis_url": REDIS_URL if cache == "redis" else None}
