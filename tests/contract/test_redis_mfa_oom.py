"""The Redis MFA stores on a full ``noeviction`` Redis: new records are refused, not squeezed in.

Under ``maxmemory-policy noeviction`` Redis refuses a command flagged ``denyoom`` (SET, HSET,
HINCRBY, ...) once memory is full. A Lua script is checked at its *first* write only: if that
write is one Redis lets through when full (DEL, PEXPIRE: not ``denyoom``), every later write of
the same script runs too, so the script could grow Redis past ``maxmemory``. Each MFA script must
therefore write an allocating command first (or only free memory). The first test reads the
scripts against the server's own command flags; the others run the stores and a misordered
script on a redis-server of their own, filled up to its ``maxmemory``. (No MFA script needed
reordering: each writes SET, HSET or HINCRBY before PEXPIRE, or only DEL. Since every
short-lived store runs on the shared records, the scripts read are those of
:mod:`storno_security.stores.redis._records`; their helpers are expanded where called.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storno_security.errors import StoreUnavailableError
from storno_security.mfa.storage import StoredChallenge, StoredStepUp
from storno_security.stores.redis import (
    RedisMfaChallengeStore,
    RedisMfaFailureStore,
    RedisStepUpStore,
    RedisTotpReplayStore,
)
from storno_security.stores.redis import _records as redis_records
from tests.contract.test_redis_durability import _flood
from tests.ratelimit.conftest import redis_server

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
_CALL = re.compile(r"redis\.call\('([A-Za-z]+)'")


@pytest.fixture(scope="module")
def full_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A client of a redis-server of this module's own (3 MB, ``noeviction``) that holds one
    record of each MFA store under ``before:`` and is then filled until it refuses writes."""
    import redis

    directory: Path = tmp_path_factory.mktemp("redis-mfa-oom")
    with redis_server(directory, maxmemory="3mb", maxmemory_policy="noeviction") as (port, _):
        client = redis.Redis(port=port, socket_timeout=5)
        try:
            for token_hash in ("c" * 64, "e" * 64):  # c: to count on, e: to consume
                _challenges(client).create_challenge(_challenge(token_hash))
            _grants(client).create_grant(_grant("g" * 64))
            for user_id in ("u-1", "u-3"):  # u-1: to count on, u-3: to clear
                RedisMfaFailureStore(client, prefix="before:").record_attempt(
                    user_id, now=NOW, window_ends_at=LATER
                )
            assert _flood(client) > 1_000
            yield client
        finally:
            client.close()


def _top_up(client: Any) -> None:
    """Make the server full for certain, not just at the instant of the flood's last refusal:
    memory moves (client buffers are freed, keys of the flood expire), so "full" is pinned by
    lowering ``maxmemory`` below what is already used. Every ``denyoom`` command is refused from
    here on, whatever happens to the memory in between."""
    client.config_set("maxmemory", 1)
    refused = (
        client.pipeline(transaction=False).set("top:probe", "x").execute(raise_on_error=False)[0]
    )
    if not isinstance(refused, Exception) or "maxmemory" not in str(refused):
        pytest.fail("Redis did not refuse a write: the test proves nothing")


def _challenges(client: Any) -> RedisMfaChallengeStore:
    return RedisMfaChallengeStore(client, prefix="before:")


def _grants(client: Any) -> RedisStepUpStore:
    return RedisStepUpStore(client, prefix="before:")


def _challenge(token_hash: str) -> StoredChallenge:
    return StoredChallenge(
        token_hash=token_hash,
        user_id="u-1",
        methods=("totp",),
        created_at=NOW,
        expires_at=LATER,
        max_failures=5,
        failures=0,
    )


def _grant(token_hash: str) -> StoredStepUp:
    return StoredStepUp(
        token_hash=token_hash,
        user_id="u-1",
        action="delete_account",
        method="totp",
        created_at=NOW,
        expires_at=LATER,
    )


_STEP = re.compile(r"redis\.call\('([A-Za-z]+)'|\b(write|index|forget)\(")


def _writes_in_order(
    text: str, helpers: dict[str, list[str]], flags: dict[str, set[str]]
) -> list[str]:
    """The write commands of ``text`` in the order they stand, the shared helpers' expanded."""
    out: list[str] = []
    for command, helper in _STEP.findall(text):
        if helper:
            out += helpers.get(helper, [])
        elif "write" in flags[command.lower()]:
            out.append(command.lower())
    return out


def _scripts() -> dict[str, str]:
    """Every Lua script of the Redis records (every short-lived store runs one), by name."""
    return {
        name: value
        for name, value in vars(redis_records).items()
        if name.startswith("_") and name != "_HELPERS" and isinstance(value, str) and "\n" in value
    }


def test_every_records_script_writes_an_allocating_command_first(full_redis: Any) -> None:
    flags = {
        name.lower(): {f.decode() if isinstance(f, bytes) else f for f in info["flags"]}
        for name, info in full_redis.command().items()
    }
    helpers: dict[str, list[str]] = {}
    for name, body in re.findall(
        r"local function (\w+)\(.*?\n(.*?)\nend\n", redis_records._HELPERS, re.S
    ):
        helpers[name] = _writes_in_order(body, helpers, flags)
    only_free, checked = [], []
    for name, script in _scripts().items():
        writes = _writes_in_order(script, helpers, flags)
        if not writes:
            continue
        checked.append(name)
        if not any("denyoom" in flags[c] for c in writes):
            only_free.append(name)  # DEL/ZREM only: may run when full, and frees memory
            continue
        # Redis checks a script for memory at its first write: it must be one that allocates.
        assert "denyoom" in flags[writes[0]], f"{name} writes {writes}"
    assert sorted(only_free) == ["_FORGET", "_TAKE"]
    assert sorted(checked) == ["_ADVANCE", "_COUNT", "_FORGET", "_INSERT", "_TAKE"]


def test_a_script_whose_first_write_is_del_would_grow_a_full_redis(full_redis: Any) -> None:
    """Why the order matters: on the full server, HSET after DEL is let through, HSET first
    is refused. (If Redis stops letting it through, the first test is merely stricter.)"""
    import redis

    misordered = full_redis.register_script(
        "redis.call('DEL', KEYS[1]) redis.call('HSET', KEYS[2], 'f', ARGV[1]) return 1"
    )
    ordered = full_redis.register_script(
        "redis.call('HSET', KEYS[2], 'f', ARGV[1]) redis.call('DEL', KEYS[1]) return 1"
    )
    _top_up(full_redis)
    with pytest.raises(redis.ResponseError, match="maxmemory"):
        ordered(keys=["probe:gone", "probe:ordered"], args=["x" * 64])
    assert full_redis.exists("probe:ordered") == 0
    assert misordered(keys=["probe:gone", "probe:misordered"], args=["x" * 64]) == 1
    assert full_redis.exists("probe:misordered") == 1
    full_redis.delete("probe:misordered")


@pytest.mark.spec("MFA-2")
def test_a_full_redis_refuses_every_new_mfa_record_and_writes_nothing(full_redis: Any) -> None:
    challenges, grants = _challenges(full_redis), _grants(full_redis)
    failures = RedisMfaFailureStore(full_redis, prefix="before:")
    _top_up(full_redis)
    keys = full_redis.dbsize()
    refusals = [
        lambda: RedisTotpReplayStore(full_redis, prefix="before:").record_step(
            "u-2", 1, now=NOW, until=LATER
        ),
        lambda: challenges.create_challenge(_challenge("d" * 64)),
        lambda: grants.create_grant(_grant("h" * 64)),
        lambda: failures.record_attempt("u-2", now=NOW, window_ends_at=LATER),  # new window
        lambda: failures.record_attempt("u-1", now=NOW, window_ends_at=LATER),  # HINCRBY
        lambda: challenges.record_failure("c" * 64, now=NOW),
    ]
    for write in refusals:
        with pytest.raises(StoreUnavailableError) as refused:
            write()
        assert refused.value.reason == "refused"
    assert full_redis.dbsize() == keys
    assert full_redis.hget("before:mfa:failures:u-1", "number") == b"1"
    pending = challenges.get_challenge("c" * 64, now=NOW)
    assert pending is not None
    assert pending.failures == 0


def test_a_full_redis_still_consumes_and_clears(full_redis: Any) -> None:
    """Consuming and clearing only delete: they work when Redis is full, and free memory."""
    challenges, grants = _challenges(full_redis), _grants(full_redis)
    _top_up(full_redis)
    assert challenges.consume_challenge("e" * 64, now=NOW) is not None
    assert challenges.consume_challenge("e" * 64, now=NOW) is None
    grant = grants.consume_grant("g" * 64, user_id="u-1", action="delete_account", now=NOW)
    assert grant is not None
    RedisMfaFailureStore(full_redis, prefix="before:").clear_failures("u-3")
    assert full_redis.exists("before:mfa:failures:u-3") == 0
