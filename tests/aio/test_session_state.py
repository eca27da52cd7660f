"""The session-state read in both modes, on every backend: the contract suite of
``tests/contract/test_token_stores.py`` (its session-state tests) run again with the reads made
by the async store, the writes by the synchronous one; then the records the library never
writes, refused alike by both.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.aio import InlineSessionStateStore, OffloadedSessionStateStore
from storno_security.errors import CorruptRecordError, StoreUnavailableError
from storno_security.stores import redis as redis_stores
from storno_security.stores import sql as sql_stores
from storno_security.stores.memory import MemorySessionStateStore
from tests.aio.conftest import Hybrid, Synced, get_async_engine, mode_params, require_async_redis
from tests.contract import test_token_stores as suite
from tests.contract.conftest import make_store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BACKENDS = ("memory", "sqlite", "postgresql", "mariadb", "redis")
SYNC = {
    "memory": MemorySessionStateStore,
    "sql": sql_stores.SqlSessionStateStore,
    "redis": redis_stores.RedisSessionStateStore,
}


def async_state_store(
    backend: str, sync: Any, request: pytest.FixtureRequest, mode: str = "async"
) -> Any:
    """The async read on the same data as ``sync``."""
    if mode == "offloaded":  # any store, its read in the io lane
        return OffloadedSessionStateStore(sync, request.getfixturevalue("offloader"))
    if backend == "memory":
        return InlineSessionStateStore(sync)
    if backend == "redis":
        from storno_security.aio.redis import AsyncRedisSessionStateStore

        client = require_async_redis(request)
        return AsyncRedisSessionStateStore(client, prefix=request.getfixturevalue("redis_prefix"))
    from storno_security.aio.sql import AsyncSqlSessionStateStore

    return AsyncSqlSessionStateStore(get_async_engine(backend, request))


@pytest.fixture(
    params=[*mode_params(BACKENDS), pytest.param(("mariadb", "offloaded"), id="mariadb-offloaded")]
)
def state_store(request: pytest.FixtureRequest) -> Any:
    """Each backend's session-state store, read synchronously, then through its async form (or
    its synchronous read run in the offloader's io lane)."""
    backend, mode = request.param
    sync = make_store(backend, request, SYNC)
    if mode == "sync":
        return sync
    reader = async_state_store(backend, sync, request, mode)
    return Hybrid(sync, Synced(reader, request.getfixturevalue("loop_thread")), ("session_state",))


# The suite's session-state tests, unchanged, over the fixture above.
test_is_a_state_store = suite.test_is_a_state_store
test_epochs = suite.test_epochs
test_revoked_sessions = suite.test_revoked_sessions
test_purge_revoked_markers = suite.test_purge_revoked_markers


@pytest.mark.spec("REF-4")
def test_a_bump_is_seen_at_once(state_store: Any) -> None:
    user, sid = f"user-{secrets.token_hex(6)}", secrets.token_hex(16)
    for expected in (1, 2, 3):
        state_store.bump_epoch(user)
        assert state_store.session_state(user_id=user, session_id=sid).epoch == expected


def test_ids_compare_exactly(state_store: Any) -> None:
    user, sid = f"User-{secrets.token_hex(6)}", f"Sid-{secrets.token_hex(8)}"
    state_store.bump_epoch(user)
    state_store.revoke_session(sid, now=NOW, until=NOW + timedelta(hours=1))
    for lookalike_user, lookalike_sid in ((user.lower(), sid.lower()), (user + " ", sid + " ")):
        state = state_store.session_state(user_id=lookalike_user, session_id=lookalike_sid)
        assert (state.epoch, state.revoked) == (0, False)


@pytest.mark.parametrize("ids", [("a\x00b", "s"), ("u", "s\x00"), ("\ud800", "s"), ("", "")])
def test_unstorable_ids_match_nothing(state_store: Any, ids: tuple[str, str]) -> None:
    state = state_store.session_state(user_id=ids[0], session_id=ids[1])
    assert (state.epoch, state.revoked) == (0, False)


def test_ids_must_be_text(state_store: Any) -> None:
    with pytest.raises(TypeError):
        state_store.session_state(user_id=5, session_id="s")


@pytest.fixture(params=mode_params(("sqlite", "postgresql", "mariadb")))
def sql_state(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    backend, mode = request.param
    store = make_store(backend, request, SYNC)
    if mode == "async":
        reader = async_state_store(backend, store, request)
        store = Hybrid(
            store, Synced(reader, request.getfixturevalue("loop_thread")), ("session_state",)
        )
    from tests.conftest import get_sql_engine

    return store, get_sql_engine(
        backend, request.getfixturevalue("sql_urls"), request.getfixturevalue("sql_engines")
    )


def test_sql_negative_epoch_is_corrupt(sql_state: tuple[Any, Any]) -> None:
    import sqlalchemy as sa

    store, engine = sql_state
    user = f"user-{secrets.token_hex(6)}"
    with engine.begin() as conn:
        conn.execute(
            sa.insert(sql_stores.records).values(
                namespace="epoch", record_key=user, subject=user, data="", number=-5, created_at=NOW
            )
        )
    with pytest.raises(CorruptRecordError):
        store.session_state(user_id=user, session_id="sid")


@pytest.fixture(params=["sync", "async"])
def redis_state(request: pytest.FixtureRequest) -> Any:
    store = make_store("redis", request, SYNC)
    if request.param == "sync":
        return store
    reader = async_state_store("redis", store, request)
    return Hybrid(store, Synced(reader, request.getfixturevalue("loop_thread")), ("session_state",))


@pytest.mark.parametrize("value", [b"abc", b"1.5", b" 7", b"-3", b"07", b"\xff"])
def test_redis_epoch_that_is_not_a_count_is_corrupt(
    redis_state: Any, redis_client: Any, redis_prefix: str, value: bytes
) -> None:
    user = f"user-{secrets.token_hex(6)}"
    redis_client.hset(f"{redis_prefix}epoch:{user}", "number", value)
    with pytest.raises(CorruptRecordError):
        redis_state.session_state(user_id=user, session_id="sid")


@pytest.mark.parametrize("which", ["epoch", "revoked"])
def test_redis_key_of_the_wrong_type_is_corrupt(
    redis_state: Any, redis_client: Any, redis_prefix: str, which: str
) -> None:
    user, session = f"user-{secrets.token_hex(6)}", secrets.token_hex(8)
    key = f"{redis_prefix}epoch:{user}" if which == "epoch" else f"{redis_prefix}revoked:{session}"
    redis_client.set(key, "1")
    with pytest.raises(CorruptRecordError):
        redis_state.session_state(user_id=user, session_id=session)


def test_the_async_session_state_stores_name_what_they_wrap(offloader: Any) -> None:
    memory = MemorySessionStateStore()
    assert repr(InlineSessionStateStore(memory)) == f"InlineSessionStateStore({memory!r})"
    offloaded = OffloadedSessionStateStore(memory, offloader)
    assert repr(offloaded) == f"OffloadedSessionStateStore({memory!r})"


@pytest.mark.parametrize("which", ["epoch", "revoked"])
def test_a_redis_record_without_its_number_is_corrupt(
    redis_state: Any, redis_client: Any, redis_prefix: str, which: str
) -> None:
    user, session = f"user-{secrets.token_hex(6)}", secrets.token_hex(8)
    key = f"{redis_prefix}epoch:{user}" if which == "epoch" else f"{redis_prefix}revoked:{session}"
    redis_client.hset(key, "other", "1")  # a hash, but not one a store writes
    with pytest.raises(CorruptRecordError) as caught:
        redis_state.session_state(user_id=user, session_id=session)
    assert caught.value.reason == "bad_value"


def test_a_redis_reply_of_another_shape_is_a_bad_reply(
    request: pytest.FixtureRequest,
    redis_client: Any,
    redis_prefix: str,
    loop_thread: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The script's reply is four values; anything else (a proxy that mangles replies, another
    script loaded under its name) is not read as a state. The redis-py script objects are
    replaced by ones that answer so."""
    sync = make_store("redis", request, SYNC)
    reader = async_state_store("redis", sync, request)
    assert repr(reader) == f"AsyncRedisSessionStateStore(prefix={redis_prefix!r})"

    async def mangled(keys: list[str]) -> Any:
        return [None, 0, None]

    monkeypatch.setattr(sync, "_state", lambda keys: "OK")
    monkeypatch.setattr(reader, "_state", mangled)
    with pytest.raises(StoreUnavailableError) as sync_caught:
        sync.session_state(user_id="u", session_id="s")
    with pytest.raises(StoreUnavailableError) as async_caught:
        Synced(reader, loop_thread).session_state(user_id="u", session_id="s")
    assert sync_caught.value.reason == async_caught.value.reason == "bad_reply"
