"""Verification keeps nothing per key it verifies (issue 18: a lookup costs the same with a
million keys, worst call included). An object kept per key first verified is one more for the
garbage collector's full passes, which paused a verification for milliseconds in a store of
many keys."""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import sqlalchemy as sa

from storno_security.api_keys import ApiKeyManager
from storno_security.clock import FrozenClock
from storno_security.stores.memory import MemoryApiKeyStore
from storno_security.stores.sql import SqlApiKeyStore, create_engine, create_schema

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEYS = 300


def _tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


def _verify_every_key(manager: ApiKeyManager) -> None:
    keys = [manager.create(f"user-{n}", "org-1", name="k", scope="read").key for n in range(KEYS)]
    for key in keys:  # the first verification of each writes its last use
        manager.verify(key)
    before = _tracked()
    for key in keys:
        principal = manager.verify(key)
        assert principal.user_id.startswith("user-")
    del principal
    assert _tracked() - before < KEYS // 10  # nothing per key (a few objects of the run)


def test_verifying_keys_in_memory_keeps_nothing_per_key() -> None:
    _verify_every_key(ApiKeyManager(MemoryApiKeyStore(), clock=FrozenClock(NOW)))


def test_verifying_keys_in_sqlite_keeps_nothing_per_key(tmp_path: object) -> None:
    engine: sa.Engine = create_engine(f"sqlite:///{tmp_path}/keys.db")
    create_schema(engine)
    try:
        _verify_every_key(ApiKeyManager(SqlApiKeyStore(engine), clock=FrozenClock(NOW)))
    finally:
        engine.dispose()


def test_the_principal_is_built_at_each_call_and_equal() -> None:
    manager = ApiKeyManager(MemoryApiKeyStore(), clock=FrozenClock(NOW))
    created = manager.create("user-1", "org-1", name="k", scope="read")
    first, second = manager.verify(created.key), manager.verify(created.key)
    assert first == second
