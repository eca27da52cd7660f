"""Database timeouts for a dialect the library sets no driver option for (``_timeouts.py``):
only the pool's limits apply."""

from __future__ import annotations

from storno_security.stores import sql


def test_a_dialect_without_driver_timeouts_gets_the_pool_limits_only() -> None:
    timeouts = sql.DatabaseTimeouts(pool_size=3, max_overflow=2, pool_timeout=1.5)
    options = sql.timeout_options("oracle+oracledb://scott@127.0.0.1:1/x", timeouts)
    assert options == {"pool_size": 3, "max_overflow": 2, "pool_timeout": 1.5}
