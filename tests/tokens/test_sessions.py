"""Refresh families: rotation, reuse detection, absolute expiry, logout, revoke-all (REF-1..4)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidAccessTokenError,
    InvalidRefreshTokenError,
    RefreshTokenReuseError,
    StoreUnavailableError,
)
from storno_security.stores.memory import MemoryRefreshFamilyStore, MemorySessionStateStore
from storno_security.tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    SessionEvent,
    SessionManager,
    TokenPolicy,
    hash_refresh_token,
)
from storno_security.tokens.sessions import DEFAULT_REUSE_GRACE
from tests._concurrency import at_once


@pytest.fixture
def events(manager: SessionManager) -> list[SessionEvent]:
    recorded: list[SessionEvent] = []
    manager._on_event = recorded.append
    return recorded


@pytest.mark.spec("REF-1")
def test_refresh_token_is_opaque_256_bit_and_stored_hashed(
    manager: SessionManager, families: MemoryRefreshFamilyStore
) -> None:
    pair = manager.start("user-1")
    assert len(pair.refresh_token) == 43  # 32 random bytes, base64url
    assert pair.refresh_token.count(".") == 0  # not a JWT
    stored = repr(families._tokens) + repr(families._families)
    assert pair.refresh_token not in stored
    assert hash_refresh_token(pair.refresh_token) in families._tokens
    assert pair.refresh_token not in repr(pair)
    assert pair.access_token not in repr(pair)


@pytest.mark.spec("REF-2")
def test_each_use_rotates(manager: SessionManager, verifier: AccessTokenVerifier) -> None:
    first = manager.start("user-1")
    second = manager.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert second.session_id == first.session_id
    assert verifier.verify(second.access_token).session_id == first.session_id
    third = manager.refresh(second.refresh_token)
    assert third.refresh_token not in (first.refresh_token, second.refresh_token)


@pytest.mark.spec("REF-2")
def test_concurrent_uses_in_threads_exactly_one_wins(manager: SessionManager) -> None:
    pair = manager.start("user-1")

    def present() -> str:
        try:
            manager.refresh(pair.refresh_token)
        except RefreshTokenReuseError:
            return "reused"
        return "ok"

    outcomes = at_once([present] * 20)
    assert outcomes.count("ok") == 1
    assert outcomes.count("reused") == 19


@pytest.mark.spec("REF-3")
def test_reuse_revokes_the_whole_family(
    manager: SessionManager, verifier: AccessTokenVerifier, events: list[SessionEvent]
) -> None:
    first = manager.start("user-1")
    other_login = manager.start("user-1")
    second = manager.refresh(first.refresh_token)
    verifier.verify(second.access_token)  # cached
    with pytest.raises(RefreshTokenReuseError) as info:
        manager.refresh(first.refresh_token)
    assert info.value.family_id == first.session_id
    assert info.value.user_id == "user-1"
    # every refresh and access token of that login is dead
    with pytest.raises(InvalidRefreshTokenError) as revoked:
        manager.refresh(second.refresh_token)
    assert revoked.value.reason == "revoked"
    for token in (first.access_token, second.access_token):
        with pytest.raises(InvalidAccessTokenError) as dead:
            verifier.verify(token)
        assert dead.value.reason == "session_revoked"
    # the user's other login is untouched
    verifier.verify(other_login.access_token)
    manager.refresh(other_login.refresh_token)
    # and a security event was recorded, without secrets
    assert [e.kind for e in events] == ["refresh_token_reused"]
    assert events[0].session_ids == (first.session_id,)
    assert first.refresh_token not in repr(events[0])


@pytest.mark.spec("REF-1")
def test_family_lifetime_is_absolute(manager: SessionManager, clock: FrozenClock) -> None:
    pair = manager.start("user-1")
    end = pair.refresh_expires_at
    assert end - clock.now() == timedelta(days=30)
    clock.advance(timedelta(days=29))
    renewed = manager.refresh(pair.refresh_token)
    assert renewed.refresh_expires_at == end  # rotation never extends the family
    clock.advance(timedelta(days=1))
    with pytest.raises(InvalidRefreshTokenError) as info:
        manager.refresh(renewed.refresh_token)
    assert info.value.reason == "expired"
    assert not isinstance(info.value, RefreshTokenReuseError)


@pytest.mark.spec("REF-1")
def test_refresh_token_of_another_user(
    manager: SessionManager, verifier: AccessTokenVerifier
) -> None:
    mine = manager.start("alice")
    theirs = manager.start("bob")
    with pytest.raises(InvalidRefreshTokenError) as info:
        manager.refresh(theirs.refresh_token, expected_user_id="alice")
    assert info.value.reason == "wrong_user"
    with pytest.raises(InvalidRefreshTokenError):
        manager.logout(theirs.refresh_token, user_id="alice")
    # nothing changed for bob: his token still rotates, his access token still works
    verifier.verify(theirs.access_token)
    manager.refresh(theirs.refresh_token, expected_user_id="bob")
    manager.refresh(mine.refresh_token, expected_user_id="alice")


@pytest.mark.parametrize(
    "token",
    ["", "short", "a" * 42, "a" * 44, "a" * 42 + "=", "a" * 42 + "+", "é" * 43, None, 42],
)
def test_malformed_refresh_token_refused_before_any_lookup(
    token: Any, policy: Any, issuer: Any, clock: FrozenClock
) -> None:
    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"store touched: {name}")

    manager = SessionManager(
        reuse_grace=timedelta(0),  # REF-2/REF-3 alone; REF-5 has its own tests
        issuer=issuer,
        policy=policy,
        families=Exploding(),  # type: ignore[arg-type]
        sessions=Exploding(),  # type: ignore[arg-type]
        clock=clock,
    )
    with pytest.raises(InvalidRefreshTokenError) as info:
        manager.refresh(token)
    assert info.value.reason == "malformed"
    with pytest.raises(InvalidRefreshTokenError):
        manager.logout(token, user_id="u")


def test_unknown_refresh_token(manager: SessionManager) -> None:
    with pytest.raises(InvalidRefreshTokenError) as info:
        manager.refresh("A" * 43)
    assert info.value.reason == "unknown"


@pytest.mark.spec("REF-4")
def test_logout_revokes_the_family_and_its_access_tokens(
    manager: SessionManager, verifier: AccessTokenVerifier, events: list[SessionEvent]
) -> None:
    pair = manager.start("user-1")
    other = manager.start("user-1")
    manager.logout(pair.refresh_token, user_id="user-1")
    with pytest.raises(InvalidRefreshTokenError):
        manager.refresh(pair.refresh_token)
    with pytest.raises(InvalidAccessTokenError):
        verifier.verify(pair.access_token)
    verifier.verify(other.access_token)
    assert events[-1].kind == "session_revoked"


@pytest.mark.spec("REF-4")
@pytest.mark.parametrize(
    "reason", ["password_changed", "password_reset", "mfa_disabled", "account_deleted"]
)
def test_revoke_all_kills_every_token_at_once(
    reason: Any,
    manager: SessionManager,
    verifier: AccessTokenVerifier,
    events: list[SessionEvent],
) -> None:
    pairs = [manager.start("user-1") for _ in range(3)]
    bystander = manager.start("user-2")
    for pair in pairs:
        verifier.verify(pair.access_token)  # cached: still must die
    assert manager.revoke_all("user-1", reason=reason) == 3
    for pair in pairs:
        with pytest.raises(InvalidAccessTokenError) as info:
            verifier.verify(pair.access_token)
        assert info.value.reason == "session_epoch"
        with pytest.raises(InvalidRefreshTokenError):
            manager.refresh(pair.refresh_token)
    verifier.verify(bystander.access_token)
    # a new login after the change works
    fresh = manager.start("user-1")
    verifier.verify(fresh.access_token)
    assert manager.refresh(fresh.refresh_token).user_id == "user-1"
    assert events[-1].kind == "sessions_revoked"
    assert events[-1].reason == reason
    assert len(events[-1].session_ids) == 3


def test_start_with_bad_claims_stores_nothing(
    manager: SessionManager, families: MemoryRefreshFamilyStore
) -> None:
    with pytest.raises(ValueError, match="override"):
        manager.start("user-1", extra_claims={"sid": "forged"})
    assert families._families == {}
    assert families._tokens == {}


def _manager(issuer: Any, policy: Any, clock: FrozenClock, families: Any, state: Any) -> Any:
    return SessionManager(
        reuse_grace=timedelta(0),  # REF-2/REF-3 alone; REF-5 has its own tests
        issuer=issuer,
        policy=policy,
        families=families,
        sessions=state,
        clock=clock,
    )


def test_store_shared_by_two_managers(
    issuer: Any, policy: Any, clock: FrozenClock, families: MemoryRefreshFamilyStore
) -> None:
    """Two app instances over one store see each other's rotations (the family is in the store)."""
    state = MemorySessionStateStore()
    one = _manager(issuer, policy, clock, families, state)
    two = _manager(issuer, policy, clock, families, state)
    pair = one.start("user-1")
    two.refresh(pair.refresh_token)
    with pytest.raises(RefreshTokenReuseError):
        one.refresh(pair.refresh_token)


class _FlakyState(MemorySessionStateStore):
    """A session store whose reads can be made to fail."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def current_epoch(self, user_id: str) -> int:
        if self.down:
            raise StoreUnavailableError()
        return super().current_epoch(user_id)


def test_store_failures_fail_closed(
    issuer: Any, policy: Any, clock: FrozenClock, families: MemoryRefreshFamilyStore
) -> None:
    state = _FlakyState()
    manager = _manager(issuer, policy, clock, families, state)
    pair = manager.start("user-1")
    state.down = True
    with pytest.raises(StoreUnavailableError):
        manager.refresh(pair.refresh_token)
    with pytest.raises(StoreUnavailableError):
        manager.start("user-2")
    assert all(row.family.user_id == "user-1" for row in families._families.values())
    state.down = False
    # the presented token was spent by the failed refresh: the session is closed, not reopened
    with pytest.raises(InvalidRefreshTokenError):
        manager.refresh(pair.refresh_token)


# -- REF-5: a refresh whose reply was lost can be retried -------------------------------------


def _graceful(
    issuer: AccessTokenIssuer,
    policy: TokenPolicy,
    families: MemoryRefreshFamilyStore,
    state: MemorySessionStateStore,
    clock: FrozenClock,
) -> SessionManager:
    return SessionManager(
        issuer=issuer, policy=policy, families=families, sessions=state, clock=clock
    )


@pytest.mark.spec("REF-5")
def test_a_retry_within_the_grace_gets_a_fresh_pair_once(
    issuer: AccessTokenIssuer,
    policy: TokenPolicy,
    families: MemoryRefreshFamilyStore,
    state: MemorySessionStateStore,
    clock: FrozenClock,
) -> None:
    manager = _graceful(issuer, policy, families, state, clock)
    first = manager.start("user-1")
    lost = manager.refresh(first.refresh_token)  # the reply never reached the client
    clock.advance(timedelta(seconds=5))
    retried = manager.refresh(first.refresh_token)
    assert retried.session_id == first.session_id
    assert retried.refresh_token not in (lost.refresh_token, first.refresh_token)
    # the lost successor is dead now; presenting it is reuse and kills the family (REF-3)
    with pytest.raises(RefreshTokenReuseError):
        manager.refresh(lost.refresh_token)
    with pytest.raises(InvalidRefreshTokenError):
        manager.refresh(retried.refresh_token)


@pytest.mark.spec("REF-5")
@pytest.mark.spec("REF-3")
def test_no_retry_once_the_successor_was_used_or_after_the_grace(
    issuer: AccessTokenIssuer,
    policy: TokenPolicy,
    families: MemoryRefreshFamilyStore,
    state: MemorySessionStateStore,
    clock: FrozenClock,
) -> None:
    manager = _graceful(issuer, policy, families, state, clock)
    used = manager.start("user-1")
    successor = manager.refresh(used.refresh_token)
    manager.refresh(successor.refresh_token)  # the successor was used
    with pytest.raises(RefreshTokenReuseError):
        manager.refresh(used.refresh_token)
    late = manager.start("user-1")
    manager.refresh(late.refresh_token)
    clock.advance(DEFAULT_REUSE_GRACE + timedelta(seconds=1))
    with pytest.raises(RefreshTokenReuseError):
        manager.refresh(late.refresh_token)


@pytest.mark.spec("REF-5")
def test_a_second_retry_is_reuse(
    issuer: AccessTokenIssuer,
    policy: TokenPolicy,
    families: MemoryRefreshFamilyStore,
    state: MemorySessionStateStore,
    clock: FrozenClock,
) -> None:
    manager = _graceful(issuer, policy, families, state, clock)
    first = manager.start("user-1")
    manager.refresh(first.refresh_token)
    manager.refresh(first.refresh_token)
    with pytest.raises(RefreshTokenReuseError):
        manager.refresh(first.refresh_token)


def test_the_grace_is_bounded(
    issuer: AccessTokenIssuer,
    policy: TokenPolicy,
    families: MemoryRefreshFamilyStore,
    state: MemorySessionStateStore,
    clock: FrozenClock,
) -> None:
    for bad in (timedelta(seconds=-1), timedelta(minutes=2)):
        with pytest.raises(ValueError, match="reuse_grace"):
            SessionManager(
                issuer=issuer,
                policy=policy,
                families=families,
                sessions=state,
                clock=clock,
                reuse_grace=bad,
            )


@pytest.mark.parametrize("user_id", ["", None, 42])
def test_session_calls_refuse_an_empty_or_non_text_user_id(
    manager: SessionManager, families: MemoryRefreshFamilyStore, user_id: Any
) -> None:
    with pytest.raises(ValueError, match="user_id must be a non-empty string"):
        manager.start(user_id)
    with pytest.raises(ValueError, match="user_id must be a non-empty string"):
        manager.live_sessions(user_id)
    with pytest.raises(ValueError, match="user_id must be a non-empty string"):
        manager.revoke_all(user_id, reason="password_changed")
    assert families._families == {}
