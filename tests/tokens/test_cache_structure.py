"""Issue 18: the verified-token cache is a bounded, sharded map with O(1) operations.

Timing is the bench's business (``bench/tokens.py``); here the structure: the bound holds
after any sequence of operations, the newest entry is always kept, a discarded key is gone,
eviction goes oldest first within a shard, and keys are SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storno_security.tokens import VerifiedTokenCache
from storno_security.tokens.access import _SHARD_SIZE, _shard

ENTRY: Any = object()  # the cache stores entries without looking at them


def _key(n: int) -> bytes:
    return hashlib.sha256(n.to_bytes(8, "big")).digest()


@settings(max_examples=100, deadline=None)
@given(
    max_entries=st.sampled_from([1, 2, 3, 7, 100, _SHARD_SIZE, _SHARD_SIZE + 1, 5_000]),
    operations=st.lists(
        st.tuples(st.sampled_from(["put", "put", "put", "discard"]), st.integers(0, 6_000)),
        max_size=300,
    ),
)
def test_the_bound_holds_and_the_newest_entry_stays(
    max_entries: int, operations: list[tuple[str, int]]
) -> None:
    cache = VerifiedTokenCache(max_entries)
    for verb, n in operations:
        key = _key(n)
        if verb == "put":
            cache.put(key, ENTRY)
            assert cache.get(key) is ENTRY
        else:
            cache.discard(key)
            assert cache.get(key) is None
        assert len(cache) <= max_entries


def test_a_shard_evicts_oldest_first() -> None:
    cache = VerifiedTokenCache(3)  # one shard
    keys = [_key(n) for n in range(5)]
    for key in keys:
        cache.put(key, ENTRY)
    assert cache.digests() == keys[2:]
    cache.put(keys[3], ENTRY)  # replacing keeps its place
    assert cache.digests() == keys[2:]


def test_a_full_cache_of_many_shards_holds_nearly_its_size() -> None:
    cache = VerifiedTokenCache(20_000)
    for n in range(40_000):
        cache.put(_key(n), ENTRY)
    assert 0.97 * 20_000 <= len(cache) <= 20_000
    shards = cache._mask + 1
    assert shards == 16
    assert max(len(shard) for shard in cache._shards) <= math.ceil(20_000 / shards)


def test_shards_are_picked_by_the_digest() -> None:
    cache = VerifiedTokenCache(100_000)
    counts = [0] * (cache._mask + 1)
    for n in range(10_000):
        counts[_shard(_key(n), cache._mask)] += 1
    assert min(counts) > 0.5 * 10_000 / len(counts)  # spread over every shard


@pytest.mark.parametrize("key", [b"", b"x", b"\x00" * 31, b"\x00" * 33])
def test_keys_are_32_byte_digests(key: bytes) -> None:
    cache = VerifiedTokenCache(10)
    with pytest.raises(ValueError, match="32 bytes"):
        cache.put(key, ENTRY)
    assert cache.get(key) is None
    cache.discard(key)  # nothing to do


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10"])
def test_the_bound_is_a_positive_int(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_entries"):
        VerifiedTokenCache(bad)


def test_clear_and_repr() -> None:
    cache = VerifiedTokenCache(5_000)
    for n in range(100):
        cache.put(_key(n), ENTRY)
    assert repr(cache) == "VerifiedTokenCache(max_entries=5000, entries=100)"
    assert cache.max_entries == 5_000
    cache.clear()
    assert len(cache) == 0


def test_every_key_is_found_where_it_was_put_in_a_many_shard_cache() -> None:
    """With hundreds of shards both bytes of the shard index matter: a put and a get that
    disagreed on either would miss (a slower verify, and a cache that never bounds)."""
    cache = VerifiedTokenCache(_SHARD_SIZE * 512)
    keys = [_key(n) for n in range(2_000)]
    for key in keys:
        cache.put(key, ENTRY)
    assert all(cache.get(key) is ENTRY for key in keys)
    assert len(cache) == len(keys)
    assert {_shard(key, 511) for key in keys} >= {0, 511}  # the keys spread over the shards


# --- the verified claims, built without the generated __init__ ---------------------------------


def test_verified_claims_are_built_as_the_class_builds_them() -> None:
    # _verified_claims sets every slot directly; that is all __init__ does only while the
    # class has exactly these fields, none with a validator or converter, and no post-init.
    import attrs

    from storno_security.tokens import AccessTokenClaims
    from storno_security.tokens.access import _verified_claims

    fields = attrs.fields(AccessTokenClaims)
    assert [f.name for f in fields] == [
        "subject",
        "session_id",
        "epoch",
        "token_id",
        "issuer",
        "audience",
        "issued_at",
        "not_before",
        "expires_at",
        "kid",
        "extra",
        "auth_time",
    ]
    assert all(f.validator is None and f.converter is None for f in fields)
    assert not hasattr(AccessTokenClaims, "__attrs_post_init__")
    assert not hasattr(AccessTokenClaims, "__attrs_pre_init__")
    moment = datetime(2026, 12, 7, tzinfo=UTC)
    values: dict[str, Any] = {
        "subject": "user-1",
        "session_id": "s-1",
        "epoch": 3,
        "token_id": "t-1",
        "issuer": "https://issuer.test",
        "audience": ("a", "b"),
        "issued_at": moment,
        "not_before": moment - timedelta(seconds=1),
        "expires_at": moment + timedelta(hours=1),
        "kid": "k-1",
        "extra": MappingProxyType({"x": 1}),
        "auth_time": moment - timedelta(minutes=5),
    }
    built = _verified_claims(*values.values())
    assert built == AccessTokenClaims(**values)
    assert attrs.asdict(built, recurse=False) == values
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.subject = "someone else"  # type: ignore[misc]
