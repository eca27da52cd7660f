"""The SQL store bundle with Redis (``stores/sql/_bundle.py``): its readiness probe of Redis
answers whether Redis answers, never raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storno_security.stores import sql
from tests.conftest import REDIS_URL


def _redis_probe(bundle: Any) -> Any:
    (name, probe), *rest = bundle.dependencies
    assert (name, rest) == ("redis", [])
    return probe


def test_the_redis_probe_says_whether_redis_answers(
    tmp_path: Path, redis_client: Any, redis_prefix: str
) -> None:
    up = sql.sql_bundle(
        sql.create_engine(f"sqlite:///{tmp_path}/up.db"),
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
    )
    down = sql.sql_bundle(
        sql.create_engine(f"sqlite:///{tmp_path}/down.db"),
        redis_url="redis://127.0.0.1:1/0",
        redis_timeout=0.5,
    )
    try:
        assert _redis_probe(up)() is True
        assert _redis_probe(down)() is False
    finally:
        up.close()
        down.close()
    alone = sql.sql_bundle(sql.create_engine(f"sqlite:///{tmp_path}/alone.db"))
    assert alone.dependencies == ()  # SQL only: nothing else to probe
    alone.close()
