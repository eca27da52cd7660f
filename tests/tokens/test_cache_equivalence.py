"""Issue 14: the verified-token cache never answers otherwise than a fresh verification.

A cache hit used to check only the ``kid``'s presence in the ring and ``nbf``: a token whose
``iat`` lies in the future was refused on first sight but accepted from the cache once the
clock had moved back, and a ring whose ``kid`` came to name another key kept accepting tokens
the old key had signed. A stateful Hypothesis test now drives clocks both ways, key rings that
gain, lose, rotate and *replace* keys, session epochs and revocations, and verifiers of
different leeways, rings and policies sharing one cache; every verification through the cache
must give what a verifier without a cache gives: the same claims, or the same error reason.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, rule

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidAccessTokenError, KeyRingError, UnknownKeyError
from storno_security.stores.memory import MemorySessionStateStore
from storno_security.tokens import (
    AccessTokenClaims,
    AccessTokenVerifier,
    KeyRing,
    PublicKey,
    SigningKey,
    TokenPolicy,
    VerifiedTokenCache,
)
from tests.tokens import forge

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ISSUER = "https://api.storno.test"


@cache
def _keys() -> tuple[SigningKey, ...]:
    return tuple(
        SigningKey.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        for _ in range(3)
    )


def _outcome(verifier: AccessTokenVerifier, token: str) -> tuple[str, Any]:
    try:
        return "ok", verifier.verify(token)
    except InvalidAccessTokenError as exc:
        return "error", exc.reason


class CacheAgreesWithAFreshVerification(RuleBasedStateMachine):
    tokens = Bundle("tokens")

    @initialize()
    def setup(self) -> None:
        keys = _keys()
        self.keys = keys
        self.clock = FrozenClock(START)
        self.sessions = MemorySessionStateStore()
        self.shared = VerifiedTokenCache(max_entries=64)
        # two rings: verifiers of one cache need not hold the same keys
        self.rings = [
            KeyRing(keys[0], verify_only=[keys[1].public]),
            KeyRing(keys[1], verify_only=[keys[0].public, keys[2].public]),
        ]
        policies = [
            TokenPolicy(issuer=ISSUER, audience="api", leeway=timedelta(seconds=30)),
            TokenPolicy(issuer=ISSUER, audience="api", leeway=timedelta(0)),
            TokenPolicy(issuer=ISSUER, audience="api", leeway=timedelta(seconds=60)),
            TokenPolicy(issuer=ISSUER, audience="billing", leeway=timedelta(seconds=30)),
        ]
        # (cached verifier, its twin without a cache)
        self.pairs: list[tuple[AccessTokenVerifier, AccessTokenVerifier]] = []
        for ring in self.rings:
            for policy in policies:
                uncached = TokenPolicy(
                    issuer=policy.issuer,
                    audience=policy.audience,
                    leeway=policy.leeway,
                    verified_cache_size=0,
                )
                self.pairs.append(
                    (
                        AccessTokenVerifier(
                            ring,
                            policy,
                            clock=self.clock,
                            sessions=self.sessions,
                            cache=self.shared,
                        ),
                        AccessTokenVerifier(
                            ring, uncached, clock=self.clock, sessions=self.sessions
                        ),
                    )
                )

    @rule(
        target=tokens,
        signer=st.sampled_from([0, 0, 1, 2]),
        kid_of=st.sampled_from([None, None, None, 0, 1, 2]),  # mostly the signer's own
        iat=st.one_of(st.sampled_from([-100, -100, 0, 0, 100]), st.integers(-200, 200)),
        nbf=st.one_of(st.sampled_from([-100, -100, 0, 0, 100]), st.integers(-200, 200)),
        lifetime=st.one_of(st.just(3600), st.integers(-100, 400)),
        auth=st.one_of(
            st.none(),
            st.none(),
            st.sampled_from([-600, 0, 45]),
            st.integers(-200, 120),
            st.sampled_from(["x", 1.5, True]),
        ),
        audience=st.sampled_from(["api", "billing", ["api", "billing"]]),
        user=st.sampled_from(["u1", "u2"]),
        session=st.sampled_from(["s1", "s2"]),
        epoch=st.integers(0, 2),
    )
    def mint(
        self,
        signer: int,
        kid_of: int | None,
        iat: int,
        nbf: int,
        lifetime: int,
        auth: Any,
        audience: Any,
        user: str,
        session: str,
        epoch: int,
    ) -> str:
        """A token signed by one key, naming (usually) its own kid, with dates around now."""
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "sub": user,
            "iat": now + iat,
            "nbf": now + nbf,
            "exp": now + max(iat, nbf) + lifetime,
            "jti": f"t{now}{iat}{nbf}",
            "sid": session,
            "ver": epoch,
        }
        if auth is not None:
            claims["auth_time"] = auth if not isinstance(auth, int) else now + iat + auth
            if isinstance(auth, bool):
                claims["auth_time"] = auth
        kid = self.keys[signer if kid_of is None else kid_of].kid
        header = {"alg": "RS256", "kid": kid, "typ": "at+jwt"}
        return forge.rs256(header, claims, self.keys[signer].private_key)

    @rule(
        seconds=st.one_of(st.sampled_from([-300, -100, -45, 45, 100, 300]), st.integers(-500, 500))
    )
    def move_clock(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    @rule(ring=st.integers(0, 1), key=st.integers(0, 2))
    def add_key(self, ring: int, key: int) -> None:
        self.rings[ring].add_verification_key(self.keys[key].public)

    @rule(ring=st.integers(0, 1), key=st.integers(0, 2))
    def retire_key(self, ring: int, key: int) -> None:
        with contextlib.suppress(KeyRingError, UnknownKeyError):
            self.rings[ring].retire(self.keys[key].kid)

    @rule(ring=st.integers(0, 1), key=st.integers(0, 2))
    def rotate(self, ring: int, key: int) -> None:
        with contextlib.suppress(KeyRingError):
            self.rings[ring].rotate(self.keys[key])

    @rule(ring=st.integers(0, 1), kid_of=st.integers(0, 2), key=st.integers(0, 2))
    def replace_key_of_a_kid(self, ring: int, kid_of: int, key: int) -> None:
        """The ring maps a kid to another key (a replaced entry, a migration gone wrong)."""
        if self.rings[ring].signer.kid == self.keys[kid_of].kid:
            return
        self.rings[ring].add_verification_key(
            PublicKey(kid=self.keys[kid_of].kid, key=self.keys[key].private_key.public_key())
        )

    @rule(user=st.sampled_from(["u1", "u2"]))
    def bump_epoch(self, user: str) -> None:
        self.sessions.bump_epoch(user)

    @rule(session=st.sampled_from(["s1", "s2"]))
    def revoke(self, session: str) -> None:
        now = self.clock.now()
        self.sessions.revoke_session(session, now=now, until=now + timedelta(hours=2))

    @rule(token=tokens, pair=st.integers(0, 7))
    def verify(self, token: str, pair: int) -> None:
        cached, fresh = self.pairs[pair]
        expected = _outcome(fresh, token)
        got = _outcome(cached, token)
        assert got == expected, (got, expected)
        if got[0] == "ok":
            assert isinstance(got[1], AccessTokenClaims)

    @rule(token=tokens)
    def verify_with_every_verifier(self, token: str) -> None:
        for pair in range(len(self.pairs)):
            self.verify(token, pair)


CacheAgreesWithAFreshVerification.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCacheAgreesWithAFreshVerification = pytest.mark.spec("JWT-2")(
    pytest.mark.spec("JWT-3")(CacheAgreesWithAFreshVerification.TestCase)
)


# --- the two flaws, as plain regression tests ---------------------------------------------------


def _pair(
    ring: KeyRing, clock: FrozenClock, cache: VerifiedTokenCache, leeway: int = 30
) -> tuple[AccessTokenVerifier, AccessTokenVerifier]:
    sessions = MemorySessionStateStore()
    policy = TokenPolicy(issuer=ISSUER, audience="api", leeway=timedelta(seconds=leeway))
    fresh = TokenPolicy(
        issuer=ISSUER, audience="api", leeway=timedelta(seconds=leeway), verified_cache_size=0
    )
    return (
        AccessTokenVerifier(ring, policy, clock=clock, sessions=sessions, cache=cache),
        AccessTokenVerifier(ring, fresh, clock=clock, sessions=sessions),
    )


def _token(key: SigningKey, now: int, **claims: Any) -> str:
    payload = {
        "iss": ISSUER,
        "aud": "api",
        "sub": "u",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": "j",
        "sid": "s",
        "ver": 0,
        **claims,
    }
    return forge.rs256({"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}, payload, key.private_key)


@pytest.mark.spec("JWT-2")
def test_a_cached_token_issued_in_the_future_is_refused_once_the_clock_moves_back() -> None:
    key = _keys()[0]
    clock = FrozenClock(START)
    cached, fresh = _pair(KeyRing(key), clock, VerifiedTokenCache())
    now = int(START.timestamp())
    token = _token(key, now, iat=now + 100, nbf=now - 100)  # nbf passed, iat not yet
    clock.advance(timedelta(seconds=200))
    cached.verify(token)  # cached now
    clock.advance(timedelta(seconds=-200))
    for verifier in (fresh, cached):
        with pytest.raises(InvalidAccessTokenError) as info:
            verifier.verify(token)
        assert info.value.reason == "not_yet_valid"


@pytest.mark.spec("JWT-2")
def test_a_stricter_leeway_sharing_the_cache_is_not_bypassed() -> None:
    key = _keys()[0]
    clock = FrozenClock(START)
    shared = VerifiedTokenCache()
    now = int(START.timestamp())
    token = _token(key, now, iat=now + 20, auth_time=now + 40)  # within 30 s, not within 0 s
    lenient, _ = _pair(KeyRing(key), clock, shared, leeway=30)
    strict, strict_fresh = _pair(KeyRing(key), clock, shared, leeway=0)
    lenient.verify(token)
    clock.advance(timedelta(seconds=25))  # iat has passed; auth_time is still 20 s after it
    for verifier in (strict_fresh, strict):
        with pytest.raises(InvalidAccessTokenError) as info:
            verifier.verify(token)
        assert info.value.reason == "claim_auth_time"


@pytest.mark.spec("JWT-3")
def test_a_kid_that_comes_to_name_another_key_verifies_again() -> None:
    old, new = _keys()[0], _keys()[1]
    clock = FrozenClock(START)
    ring = KeyRing(new, verify_only=[old.public])
    cached, fresh = _pair(ring, clock, VerifiedTokenCache())
    token = _token(old, int(START.timestamp()))
    cached.verify(token)  # cached now, verified by `old`
    ring.add_verification_key(PublicKey(kid=old.kid, key=new.private_key.public_key()))
    for verifier in (fresh, cached):
        with pytest.raises(InvalidAccessTokenError) as info:
            verifier.verify(token)
        assert info.value.reason == "signature"
    ring.add_verification_key(old.public)  # the right key again: verifies, from scratch
    assert cached.verify(token).subject == "u"


@pytest.mark.spec("JWT-3")
def test_rings_holding_the_same_key_in_other_objects_share_hits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two rings loaded from the same PEMs hold different objects of one key: a token one
    verifier cached is a hit for the other, without another RSA verification."""
    from storno_security.tokens import access as access_module
    from storno_security.tokens import load_public_key

    key = _keys()[0]
    clock = FrozenClock(START)
    shared = VerifiedTokenCache()
    first, _ = _pair(KeyRing(key), clock, shared)
    other_ring = KeyRing(_keys()[1], verify_only=[load_public_key(key.public.public_pem())])
    second, _ = _pair(other_ring, clock, shared)
    token = _token(key, int(START.timestamp()))
    first.verify(token)
    calls = []
    real = access_module._SIGNATURE_CHECKS["RS256"]
    monkeypatch.setitem(
        access_module._SIGNATURE_CHECKS, "RS256", lambda *a: calls.append(1) or real(*a)
    )
    assert second.verify(token).subject == "u"
    assert calls == []
