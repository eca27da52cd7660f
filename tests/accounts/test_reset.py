"""ACC-2: password-reset tokens are single use, stored hashed, and expire after one hour.

Every test runs over each store (memory, SQLite, PostgreSQL, MariaDB) at a frozen clock.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

from storno_security.accounts import (
    RESET_TOKEN_PREFIX,
    IssuedResetToken,
    PasswordResetPolicy,
    PasswordResetTokens,
    ResetTokenStore,
    ResetTokenUse,
    hash_reset_token,
)
from storno_security.clock import FrozenClock
from storno_security.errors import AccountError, InvalidResetTokenError, StoreError
from storno_security.stores.memory import MemoryResetTokenStore
from tests.contract._scan import stored_text

HOUR = timedelta(hours=1)
TICK = timedelta(microseconds=1)


def _reason(resets: PasswordResetTokens, token: object) -> str:
    with pytest.raises(InvalidResetTokenError) as caught:
        resets.consume(token)  # type: ignore[arg-type]
    assert str(caught.value) == InvalidResetTokenError.default_message  # one message for all
    return caught.value.reason


# --- issuing ---------------------------------------------------------------------------------


@pytest.mark.spec("ACC-2")
def test_issued_token_has_the_prefix_256_bits_and_one_hour(
    resets: PasswordResetTokens, clock: FrozenClock, user_id: str
) -> None:
    issued = resets.issue(user_id)
    assert isinstance(issued, IssuedResetToken)
    assert issued.token.startswith(RESET_TOKEN_PREFIX)
    assert len(issued.token) == len("rst_") + 43  # base64url of 32 bytes
    assert issued.user_id == user_id
    assert issued.expires_at == clock.now() + HOUR
    assert issued.token not in repr(issued)
    assert resets.issue(user_id).token != issued.token


def test_store_satisfies_the_protocol(reset_store: Any) -> None:
    assert isinstance(reset_store, ResetTokenStore)


# --- single use, expiry ----------------------------------------------------------------------


@pytest.mark.spec("ACC-2")
def test_token_works_once(resets: PasswordResetTokens, user_id: str) -> None:
    issued = resets.issue(user_id)
    assert resets.consume(issued.token) == user_id
    assert _reason(resets, issued.token) == "unknown_or_used"


@pytest.mark.spec("ACC-2")
def test_token_expires_at_exactly_one_hour(
    resets: PasswordResetTokens, clock: FrozenClock, user_id: str
) -> None:
    late = resets.issue(user_id)
    clock.advance(HOUR)
    assert _reason(resets, late.token) == "expired"
    assert _reason(resets, late.token) == "expired"  # a refused token is left as it was


@pytest.mark.spec("ACC-2")
def test_token_works_until_just_before_one_hour(
    resets: PasswordResetTokens, clock: FrozenClock, user_id: str
) -> None:
    issued = resets.issue(user_id)
    clock.advance(HOUR - TICK)
    assert resets.consume(issued.token) == user_id


@pytest.mark.spec("ACC-2")
def test_unknown_token_is_refused(resets: PasswordResetTokens) -> None:
    assert _reason(resets, RESET_TOKEN_PREFIX + "A" * 43) == "unknown_or_used"


@pytest.mark.spec("ACC-2")
def test_tokens_of_another_length_within_bounds_still_work(
    reset_store: Any, clock: FrozenClock, user_id: str
) -> None:
    """A policy change of ``token_bytes`` does not break the links already mailed."""
    long_tokens = PasswordResetTokens(
        reset_store, clock=clock, policy=PasswordResetPolicy(token_bytes=64)
    )
    issued = long_tokens.issue(user_id)
    assert len(issued.token) == len("rst_") + 86
    assert PasswordResetTokens(reset_store, clock=clock).consume(issued.token) == user_id


# --- siblings, revocation, the cap on live tokens --------------------------------------------


@pytest.mark.spec("ACC-2")
def test_using_one_token_kills_every_other_token_of_the_user(
    resets: PasswordResetTokens, clock: FrozenClock, user_id: str
) -> None:
    first = resets.issue(user_id)
    clock.advance(60)
    second = resets.issue(user_id)
    other = resets.issue(user_id + "-other")
    assert resets.consume(second.token) == user_id
    assert _reason(resets, first.token) == "unknown_or_used"
    assert resets.consume(other.token) == user_id + "-other"  # other users are untouched


@pytest.mark.spec("ACC-2")
def test_revoke_all_kills_every_token_of_the_user_only(
    resets: PasswordResetTokens, clock: FrozenClock, user_id: str
) -> None:
    tokens = [resets.issue(user_id) for _ in range(3)]
    other = resets.issue(user_id + "-other")
    assert resets.revoke_all(user_id) == 3
    assert resets.revoke_all(user_id) == 0
    for issued in tokens:
        assert _reason(resets, issued.token) == "unknown_or_used"
    assert resets.consume(other.token) == user_id + "-other"


@pytest.mark.spec("ACC-2")
def test_fourth_token_drops_the_oldest(
    resets: PasswordResetTokens, clock: FrozenClock, user_id: str
) -> None:
    tokens = []
    for _ in range(4):
        tokens.append(resets.issue(user_id))
        clock.advance(1)
    assert _reason(resets, tokens[0].token) == "unknown_or_used"
    assert resets.revoke_all(user_id) == 3  # exactly max_active_per_user were left


@pytest.mark.spec("ACC-2")
def test_drop_oldest_breaks_ties_of_the_same_instant_by_issue_order(
    resets: PasswordResetTokens, user_id: str
) -> None:
    tokens = [resets.issue(user_id) for _ in range(5)]  # the clock does not move
    for dropped in tokens[:2]:
        assert _reason(resets, dropped.token) == "unknown_or_used"
    assert resets.consume(tokens[2].token) == user_id


@pytest.mark.spec("ACC-2")
def test_expired_tokens_do_not_count_towards_the_cap(
    reset_store: Any, clock: FrozenClock, user_id: str
) -> None:
    resets = PasswordResetTokens(
        reset_store, clock=clock, policy=PasswordResetPolicy(max_active_per_user=1)
    )
    resets.issue(user_id)
    clock.advance(2 * HOUR)
    fresh = resets.issue(user_id)  # the dead one is dropped, not counted
    assert resets.revoke_all(user_id) == 1
    assert _reason(resets, fresh.token) == "unknown_or_used"


@pytest.mark.spec("ACC-2")
def test_purge_expired_deletes_only_dead_tokens(
    resets: PasswordResetTokens, clock: FrozenClock, user_id: str
) -> None:
    old = resets.issue(user_id)
    clock.advance(HOUR - TICK)
    young = resets.issue(user_id + "-young")
    clock.advance(TICK)  # old is dead exactly now
    assert resets.purge_expired() >= 1
    assert _reason(resets, old.token) == "unknown_or_used"  # gone, not merely expired
    assert resets.consume(young.token) == user_id + "-young"


# --- malformed tokens never reach the store --------------------------------------------------


class _SpyStore(MemoryResetTokenStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def consume(self, token_hash: str, *, now: datetime) -> ResetTokenUse:
        self.calls["consume"] += 1
        return super().consume(token_hash, now=now)


MALFORMED = [
    "",
    "rst_",
    "A" * 47,
    "rst_" + "A" * 42,
    "rst_" + "A" * 87,
    "rst_" + "A" * 42 + "=",
    "rst_" + "A" * 42 + "é",
    "RST_" + "A" * 43,
    "rst_" + "A" * 43 + "\n",
    " rst_" + "A" * 43,
    "af_" + "A" * 44,
    None,
    42,
    b"rst_" + b"A" * 43,
]


@pytest.mark.spec("ACC-2")
@pytest.mark.parametrize("token", MALFORMED)
def test_malformed_tokens_are_refused_before_any_store_call(
    clock: FrozenClock, token: object
) -> None:
    store = _SpyStore()
    resets = PasswordResetTokens(store, clock=clock)
    assert _reason(resets, token) == "malformed"
    assert store.calls == {}
    with pytest.raises(InvalidResetTokenError):
        hash_reset_token(token)


def test_reset_token_error_is_an_account_error_not_a_value_error() -> None:
    assert issubclass(InvalidResetTokenError, AccountError)
    assert not issubclass(InvalidResetTokenError, ValueError)


# --- never stored in clear -------------------------------------------------------------------


@pytest.mark.spec("ACC-2")
def test_store_holds_only_the_sha256_never_the_token(
    resets: PasswordResetTokens, reset_store: Any, user_id: str
) -> None:
    issued = resets.issue(user_id)
    everything = stored_text(reset_store) + repr(reset_store)
    assert hashlib.sha256(issued.token.encode()).hexdigest() in everything
    secret_part = issued.token.removeprefix(RESET_TOKEN_PREFIX)
    assert secret_part not in everything
    assert secret_part[:16] not in everything


@pytest.mark.spec("ACC-2")
@pytest.mark.spec("ACC-7")
def test_revoke_all_leaves_no_trace_of_the_user(
    resets: PasswordResetTokens, reset_store: Any, user_id: str
) -> None:
    """After account deletion (``revoke_all``) nothing the store wrote names the user, lock
    rows and indexes included."""
    resets.issue(user_id)
    resets.consume(resets.issue(user_id).token)
    resets.issue(user_id)
    assert user_id in stored_text(reset_store)
    resets.revoke_all(user_id)
    assert user_id not in stored_text(reset_store)


# --- argument checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"lifetime": timedelta(hours=1, seconds=1)}, ValueError),
        ({"lifetime": timedelta(seconds=59)}, ValueError),
        ({"lifetime": 3600}, TypeError),
        ({"token_bytes": 31}, ValueError),
        ({"token_bytes": 65}, ValueError),
        ({"token_bytes": True}, TypeError),
        ({"max_active_per_user": 0}, ValueError),
        ({"max_active_per_user": 11}, ValueError),
    ],
)
def test_policy_refuses_weak_or_impossible_values(
    changes: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        PasswordResetPolicy(**changes)


def test_policy_defaults_are_the_spec_ones() -> None:
    policy = PasswordResetPolicy()
    assert (policy.lifetime, policy.token_bytes, policy.max_active_per_user) == (HOUR, 32, 3)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.lifetime = HOUR * 2  # type: ignore[misc]


def test_service_refuses_bad_arguments(clock: FrozenClock) -> None:
    with pytest.raises(TypeError, match="PasswordResetPolicy"):
        PasswordResetTokens(MemoryResetTokenStore(), clock=clock, policy=object())  # type: ignore[arg-type]
    resets = PasswordResetTokens(MemoryResetTokenStore(), clock=clock)
    with pytest.raises(TypeError, match="user_id"):
        resets.issue(7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="user_id"):
        resets.issue("")
    with pytest.raises(ValueError, match="user_id"):
        resets.revoke_all("")


@pytest.mark.spec("ACC-2")
def test_store_refuses_impossible_rows(reset_store: Any, clock: FrozenClock) -> None:
    now = clock.now()
    good = {"user_id": "u", "created_at": now, "expires_at": now + HOUR, "max_active": 3}
    with pytest.raises(ValueError, match="after created_at"):
        reset_store.add("h" * 64, **{**good, "expires_at": now})
    with pytest.raises(ValueError, match="max_active"):
        reset_store.add("h" * 64, **{**good, "max_active": 0})
    with pytest.raises(TypeError, match="max_active"):
        reset_store.add("h" * 64, **{**good, "max_active": "3"})
    with pytest.raises(ValueError, match="naive"):
        reset_store.add("h" * 64, **{**good, "created_at": now.replace(tzinfo=None)})
    with pytest.raises(ValueError, match="naive"):
        reset_store.consume("h" * 64, now=now.replace(tzinfo=None))


@pytest.mark.spec("ACC-2")
def test_store_refuses_a_duplicate_hash(reset_store: Any, clock: FrozenClock, user_id: str) -> None:
    now = clock.now()
    token_hash = hashlib.sha256(user_id.encode()).hexdigest()
    reset_store.add(
        token_hash, user_id=user_id, created_at=now, expires_at=now + HOUR, max_active=3
    )
    with pytest.raises(StoreError) as caught:
        reset_store.add(
            token_hash, user_id="someone", created_at=now, expires_at=now + HOUR, max_active=3
        )
    assert caught.value.reason == "duplicate"
    assert reset_store.consume(token_hash, now=now) == ResetTokenUse(user_id=user_id)


@pytest.mark.spec("ACC-2")
def test_store_lookup_of_an_unstorable_hash_matches_nothing(
    reset_store: Any, clock: FrozenClock
) -> None:
    assert reset_store.consume("a\x00b", now=clock.now()) == ResetTokenUse()
    assert reset_store.consume("\ud800", now=clock.now()) == ResetTokenUse()
    assert reset_store.revoke_all("\ud800") == 0


@pytest.mark.spec("ACC-2")
def test_hash_comparison_is_exact(reset_store: Any, clock: FrozenClock, user_id: str) -> None:
    """MariaDB's default collation ignores case and trailing spaces: hashes must not."""
    now = clock.now()
    token_hash = hashlib.sha256(user_id.encode()).hexdigest()
    reset_store.add(
        token_hash, user_id=user_id, created_at=now, expires_at=now + HOUR, max_active=3
    )
    assert reset_store.consume(token_hash.upper(), now=now) == ResetTokenUse()
    assert reset_store.consume(token_hash + " ", now=now) == ResetTokenUse()
    assert reset_store.consume(token_hash, now=now) == ResetTokenUse(user_id=user_id)


def test_the_service_shows_its_lifetime_and_nothing_else(clock: FrozenClock) -> None:
    resets = PasswordResetTokens(MemoryResetTokenStore(), clock=clock)
    assert repr(resets) == "PasswordResetTokens(lifetime=1:00:00)"
