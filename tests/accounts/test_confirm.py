"""ACC-5: email-confirmation tokens are single use, stored hashed, and expire after 24 hours.

Every test runs over each store (memory, SQLite, PostgreSQL, MariaDB, Redis) at a frozen clock.
The stores are the shared adapter on the records primitive: no backend code of their own.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from storno_security.accounts import (
    CONFIRMATION_TOKEN_PREFIX,
    ConfirmationUse,
    ConfirmedAddress,
    EmailConfirmationPolicy,
    EmailConfirmationStore,
    EmailConfirmationTokens,
    InvalidConfirmationTokenError,
    hash_confirmation_token,
)
from storno_security.clock import FrozenClock
from storno_security.stores import memory, sql
from storno_security.stores import redis as redis_stores
from storno_security.stores.memory import accounts as memory_accounts
from storno_security.stores.redis import accounts as redis_accounts
from storno_security.stores.sql import accounts as sql_accounts
from tests._concurrency import at_once
from tests.contract._scan import stored_text
from tests.contract.conftest import store_fixture

confirm_store = store_fixture(
    "confirm_store",
    {
        "memory": memory.MemoryEmailConfirmationStore,
        "sql": sql.SqlEmailConfirmationStore,
        "redis": redis_stores.RedisEmailConfirmationStore,
    },
)
EMAIL = "ana@example.com"


@pytest.fixture
def confirmations(confirm_store: Any, clock: FrozenClock) -> EmailConfirmationTokens:
    return EmailConfirmationTokens(confirm_store, clock=clock)


def _reason(confirmations: EmailConfirmationTokens, token: object) -> str:
    with pytest.raises(InvalidConfirmationTokenError) as caught:
        confirmations.consume(token)  # type: ignore[arg-type]
    assert str(caught.value) == InvalidConfirmationTokenError.default_message
    return caught.value.reason


@pytest.mark.spec("ACC-5")
def test_store_satisfies_the_protocol(confirm_store: Any) -> None:
    assert isinstance(confirm_store, EmailConfirmationStore)


@pytest.mark.spec("ACC-5")
def test_token_proves_the_address_once(
    confirmations: EmailConfirmationTokens, clock: FrozenClock, user_id: str
) -> None:
    issued = confirmations.issue(user_id, email=EMAIL)
    assert issued.token.startswith(CONFIRMATION_TOKEN_PREFIX)
    assert len(issued.token) == len(CONFIRMATION_TOKEN_PREFIX) + 43  # 256 bits, base64url
    assert issued.expires_at == clock.now() + timedelta(hours=24)
    assert "token" not in repr(issued)
    assert confirmations.consume(issued.token) == ConfirmedAddress(user_id, EMAIL)
    assert _reason(confirmations, issued.token) == "unknown_or_used"


@pytest.mark.spec("ACC-5")
def test_token_expires_after_24_hours(
    confirmations: EmailConfirmationTokens, clock: FrozenClock, user_id: str
) -> None:
    late = confirmations.issue(user_id, email=EMAIL)
    just_in_time = confirmations.issue(user_id, email=EMAIL)
    clock.advance(timedelta(hours=24) - timedelta(microseconds=1))
    assert confirmations.consume(just_in_time.token).user_id == user_id
    late_reason = _reason(confirmations, late.token)  # killed by its sibling's win
    assert late_reason == "unknown_or_used"
    expired = confirmations.issue(user_id, email=EMAIL)
    clock.advance(timedelta(hours=24))
    assert _reason(confirmations, expired.token) in {"expired", "unknown_or_used"}


@pytest.mark.spec("ACC-5")
def test_expired_is_told_apart_where_the_store_still_holds_it(
    confirm_store: Any, clock: FrozenClock, user_id: str
) -> None:
    token_hash = hashlib.sha256(b"x").hexdigest()
    now = clock.now()
    confirm_store.add(
        token_hash,
        user_id=user_id,
        email=EMAIL,
        created_at=now,
        expires_at=now + timedelta(hours=1),
        max_active=3,
    )
    used = confirm_store.consume(token_hash, now=now + timedelta(hours=1))
    # Redis forgets it on its own clock; the others keep it until purged
    assert used in (ConfirmationUse(expired=True), ConfirmationUse())
    assert used.user_id is None


@pytest.mark.spec("ACC-5")
def test_a_win_kills_the_users_other_tokens_only(
    confirmations: EmailConfirmationTokens, user_id: str
) -> None:
    mine = [confirmations.issue(user_id, email=EMAIL) for _ in range(3)]
    other = confirmations.issue(user_id + "-2", email="bo@example.com")
    assert confirmations.consume(mine[1].token).email == EMAIL
    for issued in (mine[0], mine[2]):
        assert _reason(confirmations, issued.token) == "unknown_or_used"
    assert confirmations.consume(other.token).user_id == user_id + "-2"


@pytest.mark.spec("ACC-5")
def test_a_fourth_token_drops_the_oldest(
    confirmations: EmailConfirmationTokens, user_id: str
) -> None:
    tokens = [confirmations.issue(user_id, email=EMAIL) for _ in range(4)]
    assert _reason(confirmations, tokens[0].token) == "unknown_or_used"
    assert confirmations.consume(tokens[3].token).user_id == user_id


@pytest.mark.spec("ACC-5")
def test_revoke_all_and_forget_user_leave_no_trace(
    confirmations: EmailConfirmationTokens, confirm_store: Any, user_id: str
) -> None:
    issued = confirmations.issue(user_id, email=EMAIL)
    everything = stored_text(confirm_store)
    assert hashlib.sha256(issued.token.encode()).hexdigest() in everything
    assert issued.token.removeprefix(CONFIRMATION_TOKEN_PREFIX) not in everything
    assert confirmations.revoke_all(user_id) == 1
    assert _reason(confirmations, issued.token) == "unknown_or_used"
    confirmations.issue(user_id, email=EMAIL)
    assert confirm_store.forget_user(user_id) == 1
    assert user_id not in stored_text(confirm_store)


@pytest.mark.spec("ACC-5")
def test_purge_expired(
    confirmations: EmailConfirmationTokens, clock: FrozenClock, user_id: str
) -> None:
    confirmations.issue(user_id, email=EMAIL)
    clock.advance(timedelta(hours=24))
    assert confirmations.purge_expired() >= 0


@pytest.mark.spec("ACC-5")
@pytest.mark.parametrize(
    "token",
    [
        None,
        7,
        "",
        "cnf_",
        "rst_" + "a" * 43,
        "cnf_" + "a" * 42,
        "cnf_" + "a" * 44,
        "cnf_" + "+" * 43,
    ],
)
def test_malformed_tokens_are_refused_before_any_lookup(clock: FrozenClock, token: object) -> None:
    class Nowhere(memory.MemoryEmailConfirmationStore):
        def consume(self, token_hash: str, *, now: Any) -> ConfirmationUse:
            raise AssertionError("looked up")

    assert _reason(EmailConfirmationTokens(Nowhere(), clock=clock), token) == "malformed"
    with pytest.raises(InvalidConfirmationTokenError):
        hash_confirmation_token(token)


@pytest.mark.spec("ACC-5")
def test_policy_and_arguments(clock: FrozenClock) -> None:
    assert EmailConfirmationPolicy().lifetime == timedelta(hours=24)
    assert EmailConfirmationPolicy().max_active == 3
    with pytest.raises(ValueError, match="max_active"):
        EmailConfirmationPolicy(max_active=0)
    with pytest.raises(TypeError):
        EmailConfirmationTokens(memory.MemoryEmailConfirmationStore(), clock=clock, policy=1)  # type: ignore[arg-type]
    service = EmailConfirmationTokens(memory.MemoryEmailConfirmationStore(), clock=clock)
    with pytest.raises(ValueError, match="email"):
        service.issue("u", email="")
    with pytest.raises(TypeError):
        service.issue(None, email=EMAIL)  # type: ignore[arg-type]


@pytest.mark.spec("ACC-5")
def test_one_use_among_concurrent_callers(
    confirmations: EmailConfirmationTokens, user_id: str
) -> None:
    tokens = [confirmations.issue(user_id, email=EMAIL).token for _ in range(3)]

    def use(token: str) -> str:
        try:
            return confirmations.consume(token).user_id
        except InvalidConfirmationTokenError as exc:
            return exc.reason

    outcomes = Counter(at_once([functools.partial(use, t) for t in tokens * 3]))
    assert outcomes == {user_id: 1, "unknown_or_used": 8}


@pytest.mark.spec("ACC-5")
def test_the_stores_need_no_backend_code() -> None:
    """A new short-lived store is the shared adapter and a constructor: no SQL, no Lua."""
    for module in (memory_accounts, sql_accounts, redis_accounts):
        source = inspect.getsource(module)
        for marker in ("redis.call", "sa.select", "sa.insert", "sa.update", "sa.delete", "_lock"):
            assert marker not in source, (module.__name__, marker)


def test_the_service_shows_its_lifetime_and_nothing_else(clock: FrozenClock) -> None:
    confirmations = EmailConfirmationTokens(memory.MemoryEmailConfirmationStore(), clock=clock)
    assert repr(confirmations) == "EmailConfirmationTokens(lifetime=1 day, 0:00:00)"
