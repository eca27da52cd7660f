"""One contract for every ApiKeyStore implementation (memory, SQLite, PostgreSQL, MariaDB).

Ids and hashes are random per test, so the tests share each backend's schema without seeing
each other's rows.
"""

from __future__ import annotations

import gc
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from storno_security.api_keys import (
    ApiKeyInfo,
    ApiKeyManager,
    ApiKeyRecord,
    ApiKeyScope,
    ApiKeyStore,
)
from storno_security.clock import FrozenClock
from storno_security.errors import InvalidApiKeyError, StoreError
from storno_security.stores.memory import MemoryApiKeyStore
from storno_security.stores.sql import SqlApiKeyStore
from tests._concurrency import at_once
from tests.contract.conftest import store_fixture

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


api_key_store = store_fixture("api_key_store", {"memory": MemoryApiKeyStore, "sql": SqlApiKeyStore})


def new_hash() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def new_record(
    *,
    user_id: str | None = None,
    organization_id: str | None = None,
    created_at: datetime = NOW,
    **changes: Any,
) -> ApiKeyRecord:
    info = ApiKeyInfo(
        key_id=secrets.token_hex(6),
        user_id=user_id or f"user-{secrets.token_hex(6)}",
        organization_id=organization_id or f"org-{secrets.token_hex(6)}",
        name="CI deploy",
        scope=ApiKeyScope.WRITE,
        permissions=None,
        created_at=created_at,
    )
    return ApiKeyRecord(info=attrs.evolve(info, **changes), key_hash=new_hash())


def test_is_an_api_key_store(api_key_store: Any) -> None:
    assert isinstance(api_key_store, ApiKeyStore)


@pytest.mark.spec("KEY-2")
def test_create_and_get_round_trip(api_key_store: Any) -> None:
    record = new_record(
        permissions=("invoice.create", "invoice.view"),
        expires_at=NOW + timedelta(days=30, microseconds=7),
        name="Zürich ✓ deploy",
    )
    api_key_store.create(record)
    found = api_key_store.get(record.info.key_id)
    assert found == record
    assert found.info.created_at.utcoffset() == timedelta(0)
    assert found.info.expires_at == NOW + timedelta(days=30, microseconds=7)


def test_get_unknown_is_none(api_key_store: Any) -> None:
    assert api_key_store.get(secrets.token_hex(6)) is None
    assert api_key_store.get("") is None


def test_ids_compare_exactly(api_key_store: Any) -> None:
    record = new_record(key_id="AbCdEf" + secrets.token_hex(3))
    api_key_store.create(record)
    assert api_key_store.get(record.info.key_id.lower()) is None
    assert api_key_store.get(record.info.key_id.upper()) is None
    assert api_key_store.get(record.info.key_id + " ") is None


def test_duplicate_id_or_hash_is_refused(api_key_store: Any) -> None:
    record = new_record()
    api_key_store.create(record)
    same_id = attrs.evolve(new_record(), info=attrs.evolve(record.info, name="other"))
    with pytest.raises(StoreError) as info:
        api_key_store.create(same_id)
    assert info.value.reason == "duplicate"
    same_hash = attrs.evolve(new_record(), key_hash=record.key_hash)
    with pytest.raises(StoreError) as info:
        api_key_store.create(same_hash)
    assert info.value.reason == "duplicate"
    assert api_key_store.get(same_hash.info.key_id) is None


def test_list_keys(api_key_store: Any) -> None:
    user, org = f"user-{secrets.token_hex(6)}", f"org-{secrets.token_hex(6)}"
    first = new_record(user_id=user, organization_id=org, created_at=NOW)
    second = new_record(
        user_id=user,
        organization_id=f"org-{secrets.token_hex(6)}",
        created_at=NOW + timedelta(seconds=1),
    )
    third = new_record(organization_id=org, created_at=NOW + timedelta(seconds=2))
    for record in (third, second, first):
        api_key_store.create(record)
    by_user = api_key_store.list_keys(user_id=user)
    assert by_user == [first.info, second.info]
    assert all(type(i) is ApiKeyInfo for i in by_user)  # descriptions: never a hash
    assert api_key_store.list_keys(organization_id=org) == [first.info, third.info]
    assert api_key_store.list_keys(user_id=user, organization_id=org) == [first.info]
    assert api_key_store.list_keys(user_id=f"user-{secrets.token_hex(6)}") == []
    with pytest.raises(ValueError, match="user_id"):
        api_key_store.list_keys()


@pytest.mark.spec("KEY-3")
def test_revoke(api_key_store: Any) -> None:
    record = new_record()
    api_key_store.create(record)
    key_id = record.info.key_id
    assert api_key_store.revoke(key_id, now=NOW, expected_user_id="someone-else") is False
    assert api_key_store.revoke(key_id, now=NOW, expected_organization_id="other-org") is False
    assert api_key_store.get(key_id).info.revoked_at is None
    assert api_key_store.revoke(
        key_id,
        now=NOW,
        expected_user_id=record.info.user_id,
        expected_organization_id=record.info.organization_id,
    )
    assert api_key_store.get(key_id).info.revoked_at == NOW
    assert api_key_store.revoke(key_id, now=NOW + timedelta(1)) is False
    assert api_key_store.get(key_id).info.revoked_at == NOW  # the first revocation stays
    assert api_key_store.revoke(secrets.token_hex(6), now=NOW) is False


@pytest.mark.spec("KEY-3")
def test_revoke_user_keys(api_key_store: Any) -> None:
    user, org = f"user-{secrets.token_hex(6)}", f"org-{secrets.token_hex(6)}"
    a = new_record(user_id=user, organization_id=org)
    b = new_record(user_id=user)
    c = new_record(user_id=user, organization_id=org)
    other = new_record(organization_id=org)
    for record in (a, b, c, other):
        api_key_store.create(record)
    api_key_store.revoke(c.info.key_id, now=NOW)
    assert api_key_store.revoke_user_keys(user, now=NOW, organization_id=org) == [a.info.key_id]
    assert api_key_store.revoke_user_keys(user, now=NOW) == [b.info.key_id]
    assert api_key_store.revoke_user_keys(user, now=NOW) == []
    assert api_key_store.get(other.info.key_id).info.revoked_at is None


@pytest.mark.spec("KEY-3")
def test_touch_writes_only_a_stale_value(api_key_store: Any) -> None:
    record = new_record()
    api_key_store.create(record)
    key_id = record.info.key_id
    minute = timedelta(seconds=60)
    assert api_key_store.touch(key_id, now=NOW, stale_before=NOW - minute)
    assert api_key_store.get(key_id).info.last_used_at == NOW
    later = NOW + timedelta(seconds=30)
    assert api_key_store.touch(key_id, now=later, stale_before=later - minute) is False
    assert api_key_store.get(key_id).info.last_used_at == NOW
    later = NOW + minute
    assert api_key_store.touch(key_id, now=later, stale_before=later - minute)
    assert api_key_store.get(key_id).info.last_used_at == later
    assert api_key_store.touch(secrets.token_hex(6), now=NOW, stale_before=NOW) is False


@pytest.mark.spec("KEY-3")
def test_touch_is_won_once_among_concurrent_callers(api_key_store: Any) -> None:
    record = new_record()
    api_key_store.create(record)
    threads = 8

    def touch() -> Any:
        stale_before = NOW - timedelta(seconds=60)
        return api_key_store.touch(record.info.key_id, now=NOW, stale_before=stale_before)

    wins = at_once([touch] * threads)
    assert sorted(wins) == [False] * (threads - 1) + [True]


@pytest.mark.spec("KEY-3")
def test_revoke_is_won_once_among_concurrent_callers(api_key_store: Any) -> None:
    record = new_record()
    api_key_store.create(record)
    threads = 8

    def revoke() -> Any:
        return api_key_store.revoke(record.info.key_id, now=NOW)

    wins = at_once([revoke] * threads)
    assert sorted(wins) == [False] * (threads - 1) + [True]


@pytest.mark.spec("KEY-3")
def test_manager_over_the_store(api_key_store: Any) -> None:
    """Create, verify, last use, revoke: the whole life of a key, on each backend."""
    clock = FrozenClock(NOW)
    manager = ApiKeyManager(api_key_store, clock=clock)
    user = f"user-{secrets.token_hex(6)}"
    created = manager.create(user, "org-1", name="CI", scope="read", permissions=None)
    principal = manager.verify(created.key)
    assert (principal.user_id, principal.key_id) == (user, created.key_id)
    assert api_key_store.get(created.key_id).info.last_used_at == NOW
    clock.advance(timedelta(minutes=5))
    manager.verify(created.key)
    assert api_key_store.get(created.key_id).info.last_used_at == NOW + timedelta(minutes=5)
    assert manager.revoke(created.key_id, expected_user_id=user)
    with pytest.raises(InvalidApiKeyError) as info:
        manager.verify(created.key)
    assert info.value.reason == "revoked"


def test_verifying_distinct_keys_leaves_nothing_for_the_garbage_collector(
    api_key_store: Any,
) -> None:
    """A stream of distinct keys, each verified once, allocates nothing that outlives its call:
    what did (a principal built on first verify and kept with the record, a SQL record kept
    from its first read) fed the collector, whose passes paused requests for milliseconds."""
    clock = FrozenClock(NOW)
    manager = ApiKeyManager(api_key_store, clock=clock)
    keys = [
        manager.create(f"user-{secrets.token_hex(6)}", "org-1", name="CI", scope="read").key
        for _ in range(201)
    ]
    for key in keys:  # used a moment ago: verify writes nothing (a key in use)
        key_id = key.split("_")[1]
        assert api_key_store.touch(key_id, now=NOW, stale_before=NOW - timedelta(hours=1))
    manager.verify(keys.pop())  # the connection opened, the statement compiled
    before = _library_objects()
    for key in keys:
        assert manager.verify(key).scope is ApiKeyScope.READ
    grown = _library_objects() - before
    assert grown < 20, f"{grown} of the library's objects outlived 200 verifications"


def _library_objects() -> int:
    """How many objects of this library's classes the collector tracks (an async driver's own
    bookkeeping, on its loop thread, is not this library's)."""
    gc.collect()
    modules = (type(o).__dict__.get("__module__") for o in gc.get_objects())
    return sum(isinstance(m, str) and m.startswith("storno_security.") for m in modules)


def test_touch_at_the_boundary_writes(api_key_store: Any) -> None:
    """A value exactly ``interval`` old is stale on every backend, as the manager assumes."""
    record = new_record(last_used_at=NOW)
    api_key_store.create(record)
    later = NOW + timedelta(seconds=60)
    edge = NOW - timedelta(microseconds=1)
    assert api_key_store.touch(record.info.key_id, now=later, stale_before=edge) is False
    assert api_key_store.touch(record.info.key_id, now=later, stale_before=NOW) is True
    assert api_key_store.get(record.info.key_id).info.last_used_at == later


def test_only_an_api_key_record_is_created(api_key_store: Any) -> None:
    with pytest.raises(TypeError, match="ApiKeyRecord"):
        api_key_store.create(new_record().info)


def test_a_key_is_created_with_a_scope_of_the_enum(api_key_store: Any) -> None:
    record = new_record(scope="write")
    with pytest.raises(TypeError, match="scope must be an ApiKeyScope"):
        api_key_store.create(record)
    assert api_key_store.get(record.info.key_id) is None


def test_the_memory_store_counts_its_keys() -> None:
    store = MemoryApiKeyStore()
    assert repr(store) == "MemoryApiKeyStore(0 keys)"
    store.create(new_record())
    assert repr(store) == "MemoryApiKeyStore(1 keys)"
