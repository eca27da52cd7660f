"""Regression tests for the security-review findings on tokens.

1. (REF-4) A login or a refresh racing ``revoke_all`` must not leave a live token behind.
2. A shared :class:`VerifiedTokenCache` must not let one verifier's policy stand in for another's.
3. The JWKS ``alg`` must be the algorithm the key signs with, not always ``RS256``.

The races are injected deterministically: a store wrapper calls ``revoke_all`` from inside the
store operation (no threads, no sleeps).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidAccessTokenError, InvalidRefreshTokenError
from storno_security.stores.memory import MemoryRefreshFamilyStore, MemorySessionStateStore
from storno_security.tokens import (
    RSA_ALGORITHMS,
    AccessTokenIssuer,
    AccessTokenVerifier,
    KeyRing,
    RefreshFamily,
    Rotation,
    SessionManager,
    TokenPolicy,
    VerifiedTokenCache,
)

# ---------------------------------------------------------------------------------------------
# 1. Login / refresh racing revoke_all (REF-4)
# ---------------------------------------------------------------------------------------------


class _RacingFamilies:
    """A refresh-family store that runs a hook before or after ``create_family`` / ``rotate``."""

    def __init__(self, inner: MemoryRefreshFamilyStore) -> None:
        self.inner = inner
        self.before_create: Callable[[], None] | None = None
        self.after_create: Callable[[], None] | None = None
        self.before_rotate: Callable[[], None] | None = None
        self.after_rotate: Callable[[], None] | None = None
        self.created: list[RefreshFamily] = []

    @staticmethod
    def _fire(hook: Callable[[], None] | None) -> None:
        if hook is not None:
            hook()

    def create_family(self, family: RefreshFamily, *, token_hash: str) -> None:
        self._fire(self.before_create)
        self.inner.create_family(family, token_hash=token_hash)
        self.created.append(family)
        self._fire(self.after_create)

    def rotate(self, **kwargs: Any) -> Rotation:
        self._fire(self.before_rotate)
        result = self.inner.rotate(**kwargs)
        self._fire(self.after_rotate)
        return result

    def revoke_by_token(self, token_hash: str, **kwargs: Any) -> RefreshFamily | None:
        return self.inner.revoke_by_token(token_hash, **kwargs)

    def revoke_family(self, family_id: str, *, now: datetime) -> bool:
        return self.inner.revoke_family(family_id, now=now)

    def revoke_user_families(self, user_id: str, *, now: datetime) -> list[str]:
        return self.inner.revoke_user_families(user_id, now=now)

    def live_families(self, user_id: str, *, now: datetime) -> list[RefreshFamily]:
        return self.inner.live_families(user_id, now=now)

    def purge_expired(self, *, now: datetime) -> int:
        return self.inner.purge_expired(now=now)


@pytest.fixture
def racing(families: MemoryRefreshFamilyStore) -> _RacingFamilies:
    return _RacingFamilies(families)


@pytest.fixture
def racy_manager(
    issuer: AccessTokenIssuer,
    policy: TokenPolicy,
    racing: _RacingFamilies,
    state: MemorySessionStateStore,
    clock: FrozenClock,
) -> SessionManager:
    return SessionManager(
        reuse_grace=timedelta(0),  # REF-2/REF-3 alone; REF-5 has its own tests
        issuer=issuer,
        policy=policy,
        families=racing,  # type: ignore[arg-type]
        sessions=state,
        clock=clock,
    )


def _family_is_dead(
    family: RefreshFamily, racing: _RacingFamilies, state: MemorySessionStateStore, now: datetime
) -> None:
    # revoke_family reports whether the family was still live: it must not have been.
    assert racing.inner.revoke_family(family.family_id, now=now) is False
    assert state.session_state(user_id=family.user_id, session_id=family.family_id).revoked


@pytest.mark.finding("internal review of tokens")
@pytest.mark.spec("REF-4")
@pytest.mark.parametrize("when", ["before_create", "after_create"])
def test_login_racing_revoke_all_leaves_no_live_token(
    racy_manager: SessionManager,
    racing: _RacingFamilies,
    state: MemorySessionStateStore,
    clock: FrozenClock,
    when: str,
) -> None:
    """revoke_all runs after start read the epoch: before (or just after) the family exists.

    Before the fix, "before_create" returned a pair whose refresh token stayed live and whose
    refresh yielded an access token with the new epoch: a session surviving a password change.
    """
    setattr(racing, when, lambda: racy_manager.revoke_all("user-1", reason="password_changed"))
    with pytest.raises(InvalidRefreshTokenError) as excinfo:
        racy_manager.start("user-1")
    assert excinfo.value.reason == "revoked"
    (family,) = racing.created
    _family_is_dead(family, racing, state, clock.now())


@pytest.mark.finding("internal review of tokens")
@pytest.mark.spec("REF-4")
def test_login_after_revoke_all_is_unaffected(
    racy_manager: SessionManager,
    racing: _RacingFamilies,
    verifier: AccessTokenVerifier,
) -> None:
    """A login that starts after the epoch bump keeps working (the check is not over-eager)."""
    racy_manager.revoke_all("user-1", reason="password_changed")
    pair = racy_manager.start("user-1")
    assert verifier.verify(pair.access_token).epoch == 1
    again = racy_manager.refresh(pair.refresh_token)
    assert verifier.verify(again.access_token).epoch == 1


@pytest.mark.finding("internal review of tokens")
@pytest.mark.spec("REF-4")
def test_refresh_racing_revoke_all_after_a_stall_leaves_no_live_token(
    racy_manager: SessionManager,
    racing: _RacingFamilies,
    state: MemorySessionStateStore,
    verifier: AccessTokenVerifier,
    policy: TokenPolicy,
    clock: FrozenClock,
) -> None:
    """revoke_all runs whole between the rotation and the access token's issue, and the
    refreshing process stalls for longer than the leeway before it signs.

    Before the fix the access token carried the *new* epoch, so only revoke_all's marker stood
    against it; that marker lives one lifetime plus leeway from revoke_all's clock, the token
    one lifetime from its later issue, so once the marker was forgotten the token verified.
    """
    pair = racy_manager.start("user-1")

    def revoke_then_stall() -> None:
        racing.after_rotate = None
        racy_manager.revoke_all("user-1", reason="password_changed")
        clock.advance(policy.leeway + timedelta(minutes=5))

    racing.after_rotate = revoke_then_stall
    late = racy_manager.refresh(pair.refresh_token)
    with pytest.raises(InvalidRefreshTokenError):
        racy_manager.refresh(late.refresh_token)
    with pytest.raises(InvalidAccessTokenError):
        verifier.verify(late.access_token)
    # revoke_all's own marker is over; the access token is not.
    clock.set(late.access_expires_at - timedelta(minutes=1))
    state.purge_expired(now=clock.now())
    with pytest.raises(InvalidAccessTokenError) as excinfo:
        verifier.verify(late.access_token)
    assert excinfo.value.reason == "session_revoked"


class _RacingState(MemorySessionStateStore):
    """A session-state store that runs a hook right after ``current_epoch`` answers."""

    def __init__(self) -> None:
        super().__init__()
        self.after_epoch_read: Callable[[], None] | None = None

    def current_epoch(self, user_id: str) -> int:
        epoch = super().current_epoch(user_id)
        if self.after_epoch_read is not None:
            self.after_epoch_read()
        return epoch


@pytest.mark.finding("internal review of tokens")
@pytest.mark.spec("REF-4")
def test_refresh_racing_revoke_all_epoch_read_then_bump(
    issuer: AccessTokenIssuer,
    policy: TokenPolicy,
    racing: _RacingFamilies,
    clock: FrozenClock,
) -> None:
    """revoke_all bumps the epoch just after the refresh read it, and is still on its way to
    the family revocation: the refresh is refused and the rotated family dies with it, rather
    than a live refresh token leaving until revoke_all gets there."""
    state = _RacingState()
    manager = SessionManager(
        reuse_grace=timedelta(0),  # REF-2/REF-3 alone; REF-5 has its own tests
        issuer=issuer,
        policy=policy,
        families=racing,  # type: ignore[arg-type]
        sessions=state,
        clock=clock,
    )
    pair = manager.start("user-1")

    def bump() -> None:
        state.after_epoch_read = None
        state.bump_epoch("user-1")

    state.after_epoch_read = bump
    with pytest.raises(InvalidRefreshTokenError) as excinfo:
        manager.refresh(pair.refresh_token)
    assert excinfo.value.reason == "revoked"
    (family,) = racing.created
    _family_is_dead(family, racing, state, clock.now())


# ---------------------------------------------------------------------------------------------
# 2. A shared VerifiedTokenCache is bound to the verifying policy
# ---------------------------------------------------------------------------------------------


def _verifier(
    ring: KeyRing,
    policy: TokenPolicy,
    clock: FrozenClock,
    state: MemorySessionStateStore,
    cache: VerifiedTokenCache,
) -> AccessTokenVerifier:
    return AccessTokenVerifier(ring, policy, clock=clock, sessions=state, cache=cache)


@pytest.mark.spec("JWT-2")
@pytest.mark.parametrize(
    ("other", "reason"),
    [
        ({"audience": "admin-api"}, "audience"),
        ({"issuer": "https://other.storno.test"}, "issuer"),
        ({"algorithms": ("PS256",)}, "algorithm"),
    ],
)
@pytest.mark.finding("internal review of tokens")
def test_shared_cache_does_not_skip_another_policys_checks(
    ring: KeyRing,
    clock: FrozenClock,
    state: MemorySessionStateStore,
    other: dict[str, Any],
    reason: str,
) -> None:
    billing = TokenPolicy(issuer="https://api.storno.test", audience="billing-api")
    admin = TokenPolicy(**{"issuer": billing.issuer, "audience": billing.audience, **other})
    cache = VerifiedTokenCache()
    token = AccessTokenIssuer(ring, billing, clock=clock).issue("u", session_id="s", epoch=0).token
    assert _verifier(ring, billing, clock, state, cache).verify(token).subject == "u"
    assert len(cache) == 1
    with pytest.raises(InvalidAccessTokenError) as excinfo:
        _verifier(ring, admin, clock, state, cache).verify(token)
    assert excinfo.value.reason == reason
    # and the first verifier's entry still serves the first verifier
    assert _verifier(ring, billing, clock, state, cache).verify(token).subject == "u"


@pytest.mark.finding("internal review of tokens")
@pytest.mark.spec("JWT-2")
def test_shared_cache_still_shared_between_verifiers_of_one_policy(
    ring: KeyRing, policy: TokenPolicy, clock: FrozenClock, state: MemorySessionStateStore
) -> None:
    cache = VerifiedTokenCache()
    token = AccessTokenIssuer(ring, policy, clock=clock).issue("u", session_id="s", epoch=0).token
    _verifier(ring, policy, clock, state, cache).verify(token)
    same = TokenPolicy(issuer=policy.issuer, audience=policy.audience, leeway=timedelta(0))
    # A different leeway is applied at every hit, so it shares the entry.
    assert _verifier(ring, same, clock, state, cache).verify(token).subject == "u"
    assert len(cache) == 1


# ---------------------------------------------------------------------------------------------
# 3. The JWKS names the algorithm the keys sign with
# ---------------------------------------------------------------------------------------------


@pytest.mark.finding("internal review of tokens")
@pytest.mark.spec("JWT-3")
@pytest.mark.parametrize("algorithm", sorted(RSA_ALGORITHMS))
def test_stock_pyjwt_verifies_with_the_published_jwks(
    ring: KeyRing, clock: FrozenClock, algorithm: str
) -> None:
    policy = TokenPolicy(issuer="https://api.storno.test", audience="a", algorithms=(algorithm,))
    issuer = AccessTokenIssuer(ring, policy, clock=clock)
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    for document in (issuer.jwks(), ring.jwks(algorithm=policy.signing_algorithm)):
        assert {k["alg"] for k in document["keys"]} == {algorithm}
        jwk = jwt.PyJWKSet.from_dict(document)[jwt.get_unverified_header(token)["kid"]]
        payload = jwt.decode(
            token,
            jwk,
            algorithms=[algorithm],
            audience=policy.audience,
            issuer=policy.issuer,
            options={"verify_iat": False},
            leeway=10**9,  # the frozen clock is in the past of the wall clock
        )
        assert payload["sub"] == "user-1"


@pytest.mark.finding("internal review of tokens")
@pytest.mark.spec("JWT-3")
def test_jwks_alg_follows_the_signing_algorithm_of_a_multi_algorithm_policy(
    ring: KeyRing, clock: FrozenClock
) -> None:
    policy = TokenPolicy(issuer="i", audience="a", algorithms=("PS384", "RS256"))
    document = AccessTokenIssuer(ring, policy, clock=clock).jwks()
    assert [k["alg"] for k in document["keys"]] == ["PS384"]


@pytest.mark.finding("internal review of tokens")
@pytest.mark.spec("JWT-3")
@pytest.mark.parametrize("algorithm", ["HS256", "none", "ES256", "rs256", ""])
def test_jwks_refuses_a_non_rsa_algorithm(ring: KeyRing, algorithm: str) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        ring.jwks(algorithm=algorithm)
    with pytest.raises(ValueError, match="algorithm"):
        ring.signer.public.to_jwk(algorithm=algorithm)
