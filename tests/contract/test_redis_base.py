"""Reply handling of the Redis stores (``stores/redis/_base.py``, ``stores/redis/_records.py``):
a server that does not speak Redis is unavailable; a record whose fields no store writes is
corrupt; a reply of a shape the scripts never give (a proxy that mangles replies, another
script loaded under the same name) is ``bad_reply``, never read as data.

The mangled replies come from replacing redis-py's script objects (or a client method) with
ones that answer so: a real server only gives the shapes the scripts return.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from storno_security.errors import CorruptRecordError, StoreUnavailableError
from storno_security.stores.redis import (
    RedisRateLimitStorage,
    RedisSessionStateStore,
    eviction_policy,
)
from storno_security.stores.redis._base import _decoded
from storno_security.stores.redis._records import RedisRecords

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
NS = "test"


@pytest.fixture
def not_redis() -> Iterator[int]:
    """The port of a server that answers every request with a line no Redis sends."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            with conn:
                if done.is_set():
                    return
                conn.recv(65536)
                conn.sendall(b"?not redis\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    yield port
    done.set()
    socket.create_connection(("127.0.0.1", port)).close()  # wakes the accept to stop
    thread.join(5)
    server.close()


def test_a_server_that_does_not_speak_redis_is_unavailable(not_redis: int) -> None:
    client = redis.Redis(port=not_redis, socket_timeout=5, socket_connect_timeout=1)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            RedisSessionStateStore(client).current_epoch("alice")
        assert caught.value.reason == "redis_error"
        assert isinstance(caught.value.__cause__, redis.RedisError)
    finally:
        client.close()


# --- settings read from CONFIG GET and INFO ----------------------------------------------------


class Answering:
    """Stands in for a redis-py client whose CONFIG GET and INFO give these replies (a proxy or
    a managed service that answers in its own way)."""

    def __init__(self, config: object, info: object) -> None:
        self._config, self._info = config, info

    def config_get(self, name: str) -> object:
        return self._config

    def info(self, section: str) -> object:
        return self._info


def test_a_setting_missing_from_config_get_is_read_from_info() -> None:
    client = Answering({}, {"maxmemory_policy": "allkeys-lru"})
    assert eviction_policy(client) == "allkeys-lru"  # type: ignore[arg-type]


def test_replies_that_are_not_mappings_tell_nothing() -> None:
    client = Answering(["maxmemory-policy", "noeviction"], b"maxmemory_policy:noeviction")
    assert eviction_policy(client) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [(b"noeviction", "noeviction"), (b"\xff", "\ufffd"), ("yes", "yes"), (1, "1"), (True, None)],
)
def test_reply_values_are_read_as_text(value: object, text: str | None) -> None:
    assert _decoded(value) == text
    assert _decoded(None) is None


# --- records whose fields no store writes ------------------------------------------------------


@pytest.fixture
def records(redis_client: Any, redis_prefix: str) -> RedisRecords:
    return RedisRecords(redis_client, prefix=redis_prefix)


def _stored(records: RedisRecords, redis_client: Any, redis_prefix: str) -> tuple[str, str]:
    k = secrets.token_hex(8)
    records.insert(NS, k, now=NOW, expires_at=LATER, subject=f"user-{k}", data="{}")
    return k, f"{redis_prefix}{NS}:{k}"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("subject", b"\xff", "bad_subject"),  # not UTF-8
        ("data", b"\xff\xfe", "bad_data"),
        ("created_at", b"999999999999999999", "bad_datetime"),  # beyond year 9999
    ],
)
def test_a_field_no_store_writes_is_corrupt(
    records: RedisRecords,
    redis_client: Any,
    redis_prefix: str,
    field: str,
    value: bytes,
    reason: str,
) -> None:
    k, name = _stored(records, redis_client, redis_prefix)
    redis_client.hset(name, field, value)
    with pytest.raises(CorruptRecordError) as caught:
        records.get(NS, k, now=NOW)
    assert caught.value.reason == reason
    assert caught.value.__cause__ is None


# --- replies of shapes the scripts never give --------------------------------------------------


def _bad_reply(call: Any) -> None:
    with pytest.raises(StoreUnavailableError) as caught:
        call()
    assert caught.value.reason == "bad_reply"


def _answering(reply: object) -> Any:
    return lambda keys, args: reply


@pytest.mark.parametrize("reply", [[2, {}], [1], "OK", [1, [b"number"]]])
def test_a_take_reply_of_another_shape_is_a_bad_reply(
    records: RedisRecords, monkeypatch: pytest.MonkeyPatch, reply: object
) -> None:
    monkeypatch.setitem(records._scripts, "take", _answering(reply))
    _bad_reply(lambda: records.take(NS, "k", now=NOW))


@pytest.mark.parametrize("reply", ["OK", [1], [2, 5], [1, "5"], [1, True]])
def test_an_advance_reply_of_another_shape_is_a_bad_reply(
    records: RedisRecords, monkeypatch: pytest.MonkeyPatch, reply: object
) -> None:
    monkeypatch.setitem(records._scripts, "advance", _answering(reply))
    _bad_reply(lambda: records.advance(NS, "k", 5, now=NOW))


@pytest.mark.parametrize("reply", ["3", True, None])
def test_a_forget_reply_that_is_not_a_count_is_a_bad_reply(
    records: RedisRecords, monkeypatch: pytest.MonkeyPatch, reply: object
) -> None:
    monkeypatch.setitem(records._scripts, "forget", _answering(reply))
    _bad_reply(lambda: records.forget(NS, "alice"))


def test_a_hash_read_that_is_not_a_mapping_is_a_bad_reply(
    records: RedisRecords, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_client, "hgetall", lambda name: [b"number", b"1"])
    _bad_reply(lambda: records.get(NS, "k", now=NOW))


@pytest.mark.parametrize("reply", [[None, "1", None, 0], [None, True, None, 0]])
def test_a_session_state_field_count_that_is_not_an_int_is_a_bad_reply(
    redis_client: Any, redis_prefix: str, monkeypatch: pytest.MonkeyPatch, reply: object
) -> None:
    store = RedisSessionStateStore(redis_client, prefix=redis_prefix)
    monkeypatch.setattr(store, "_state", lambda keys: reply)
    _bad_reply(lambda: store.session_state(user_id="u", session_id="s"))


@pytest.mark.parametrize("reply", ["OK", [1, 2, 3], [1, 2, 3, "4"], [True, 0, 0, 0]])
def test_a_rate_limit_reply_of_another_shape_is_a_bad_reply(
    redis_client: Any, redis_prefix: str, monkeypatch: pytest.MonkeyPatch, reply: object
) -> None:
    storage = RedisRateLimitStorage(redis_client, prefix=f"{redis_prefix}rl:")
    monkeypatch.setattr(storage, "_window", _answering(reply))
    _bad_reply(lambda: storage.acquire_window("k", limit=5, window_ms=1000, now_ms=0))
