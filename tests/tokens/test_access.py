"""Access tokens: issuing (JWT-1) and every rejection of JWT-2, plus the verified-token cache."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import attrs
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.clock import FrozenClock, SystemClock
from storno_security.errors import InvalidAccessTokenError
from storno_security.stores.memory import MemorySessionStateStore
from storno_security.tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    KeyRing,
    SigningKey,
    TokenPolicy,
    VerifiedTokenCache,
)
from storno_security.tokens import access as access_module
from tests.tokens import forge


def claims_for(clock: FrozenClock, policy: TokenPolicy, **override: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    claims = {
        "iss": policy.issuer,
        "aud": policy.audience,
        "sub": "user-1",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": "token-id",
        "sid": "session-1",
        "ver": 0,
    }
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


def header_for(key: SigningKey, **override: Any) -> dict[str, Any]:
    header = {"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}
    header.update(override)
    return {k: v for k, v in header.items() if v is not None}


def _forged(
    ring: KeyRing,
    clock: FrozenClock,
    policy: TokenPolicy,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A token signed by the ring's signer over ``claims_for`` (with overrides) by hand."""
    return forge.rs256(
        header_for(ring.signer, **(header or {})),
        claims_for(clock, policy, **claims),
        ring.signer.private_key,
    )


def reject(verifier: AccessTokenVerifier, token: str, reason: str | None = None) -> None:
    with pytest.raises(InvalidAccessTokenError) as info:
        verifier.verify(token)
    assert str(info.value) == "invalid access token"  # one opaque message for every cause
    if reason is not None:
        assert info.value.reason == reason


@pytest.mark.spec("JWT-1")
def test_issue_and_verify(
    issuer: AccessTokenIssuer, verifier: AccessTokenVerifier, ring: KeyRing, clock: FrozenClock
) -> None:
    issued = issuer.issue("user-1", session_id="sess-1", epoch=0, extra_claims={"amr": ["pwd"]})
    header = jwt.get_unverified_header(issued.token)
    assert header == {"alg": "RS256", "kid": ring.signer.kid, "typ": "at+jwt"}
    payload = jwt.decode(issued.token, options={"verify_signature": False})
    assert set(payload) == {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid", "ver", "amr"}
    assert payload["exp"] - payload["iat"] == 3600
    claims = verifier.verify(issued.token)
    assert claims.subject == "user-1"
    assert claims.session_id == "sess-1"
    assert claims.epoch == 0
    assert claims.kid == ring.signer.kid
    assert claims.expires_at - claims.issued_at == timedelta(hours=1)
    assert claims.issued_at == clock.now()
    assert claims.extra == {"amr": ["pwd"]}
    assert issued.token not in repr(issued)


@pytest.mark.spec("JWT-1")
def test_verifiable_by_plain_pyjwt_with_the_jwks(
    issuer: AccessTokenIssuer, ring: KeyRing, policy: TokenPolicy
) -> None:
    """Any relying party with our JWKS can check our tokens with a stock library."""
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    jwk = jwt.PyJWKSet.from_dict(ring.jwks())[jwt.get_unverified_header(token)["kid"]]
    payload = jwt.decode(
        token,
        jwk,
        algorithms=["RS256"],
        audience=policy.audience,
        issuer=policy.issuer,
        options={"verify_iat": False},
        leeway=10**9,  # the frozen clock is in the past of the wall clock
    )
    assert payload["sub"] == "user-1"


def test_issue_refuses_registered_extra_claims(issuer: AccessTokenIssuer) -> None:
    with pytest.raises(ValueError, match="override"):
        issuer.issue("user-1", session_id="s", epoch=0, extra_claims={"sub": "admin"})
    with pytest.raises(ValueError, match="epoch"):
        issuer.issue("user-1", session_id="s", epoch=-1)
    with pytest.raises(ValueError, match="subject"):
        issuer.issue("", session_id="s", epoch=0)


# --- JWT-2: every rejection --------------------------------------------------------------------


@pytest.mark.spec("JWT-2")
def test_truncated_token(issuer: AccessTokenIssuer, verifier: AccessTokenVerifier) -> None:
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    for cut in (1, 10, len(token) // 2, len(token) - 1):
        reject(verifier, token[:cut])
    head, payload, _signature = token.split(".")
    reject(verifier, f"{head}.{payload}", "malformed")
    reject(verifier, f"{head}.{payload}.", "malformed")


@pytest.mark.spec("JWT-2")
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_prefix_or_single_change_is_rejected(
    data: st.DataObject, issuer: AccessTokenIssuer, verifier: AccessTokenVerifier
) -> None:
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    position = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii"))
    tampered = token[:position] + replacement + token[position + 1 :]
    if tampered != token:
        reject(verifier, tampered)
    reject(verifier, token[:position])


@pytest.mark.spec("JWT-3")
def test_token_of_a_removed_key(
    signing_keys: list[SigningKey],
    ring: KeyRing,
    policy: TokenPolicy,
    clock: FrozenClock,
    issuer: AccessTokenIssuer,
    verifier: AccessTokenVerifier,
) -> None:
    old_token = issuer.issue("user-1", session_id="s", epoch=0).token
    verifier.verify(old_token)  # cached now
    old_kid = ring.signer.kid
    ring.rotate(signing_keys[1])
    # rotation alone does not invalidate live tokens
    verifier.verify(old_token)
    new_token = issuer.issue("user-1", session_id="s", epoch=0).token
    assert jwt.get_unverified_header(new_token)["kid"] == signing_keys[1].kid
    ring.retire(old_kid)
    reject(verifier, old_token, "unknown_key")  # even though it was cached
    verifier.verify(new_token)
    # a verifier that never saw it rejects it too
    fresh = AccessTokenVerifier(ring, policy, clock=clock, sessions=MemorySessionStateStore())
    reject(fresh, old_token, "unknown_key")


@pytest.mark.spec("JWT-2")
def test_alg_none(
    verifier: AccessTokenVerifier, policy: TokenPolicy, clock: FrozenClock, ring: KeyRing
) -> None:
    for alg in ("none", "None", "NONE"):
        token = forge.unsigned(header_for(ring.signer, alg=alg), claims_for(clock, policy))
        reject(verifier, token)
    token = forge.unsigned(header_for(ring.signer, alg="none"), claims_for(clock, policy))
    reject(verifier, token + "AAAA", "algorithm")


@pytest.mark.spec("JWT-2")
def test_hs256_signed_with_the_public_key_pem(
    verifier: AccessTokenVerifier, policy: TokenPolicy, clock: FrozenClock, ring: KeyRing
) -> None:
    public_pem = ring.signer.public.public_pem()
    der = ring.signer.private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_pem, public_pem.strip(), der, json.dumps(ring.jwks()).encode()):
        for alg in ("HS256", "HS384", "HS512"):
            token = forge.hs256(header_for(ring.signer, alg=alg), claims_for(clock, policy), secret)
            reject(verifier, token, "algorithm")


@pytest.mark.spec("JWT-2")
def test_algorithm_outside_the_allow_list(
    verifier: AccessTokenVerifier, policy: TokenPolicy, clock: FrozenClock, ring: KeyRing
) -> None:
    for alg in ("RS512", "PS256", "ES256", "EdDSA", "rs256", "RS256 "):
        token = _forged(ring, clock, policy, header={"alg": alg})
        reject(verifier, token, "algorithm")
    really_rs512 = jwt.encode(
        claims_for(clock, policy),
        ring.signer.private_key,
        algorithm="RS512",
        headers={"kid": ring.signer.kid, "typ": "at+jwt"},
    )
    reject(verifier, really_rs512, "algorithm")


@pytest.mark.spec("JWT-2")
def test_unknown_or_missing_kid(
    verifier: AccessTokenVerifier,
    policy: TokenPolicy,
    clock: FrozenClock,
    ring: KeyRing,
    signing_keys: list[SigningKey],
) -> None:
    stranger = signing_keys[2]
    token = forge.rs256(header_for(stranger), claims_for(clock, policy), stranger.private_key)
    reject(verifier, token, "unknown_key")
    # a stranger's signature under our kid
    token = forge.rs256(header_for(ring.signer), claims_for(clock, policy), stranger.private_key)
    reject(verifier, token, "signature")
    for kid in (None, 7, ["x"], ""):
        token = _forged(ring, clock, policy, header={"kid": kid})
        reject(verifier, token)


@pytest.mark.spec("JWT-2")
@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://attacker.example/jwks.json"},
        {"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}},
        {"x5u": "https://attacker.example/cert.pem"},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"]},
        {"crit": []},
        {"b64": False},
        {"cty": "JWT"},
    ],
    ids=lambda e: next(iter(e)),
)
def test_dangerous_headers(
    extra: dict[str, Any],
    verifier: AccessTokenVerifier,
    policy: TokenPolicy,
    clock: FrozenClock,
    ring: KeyRing,
) -> None:
    header = {**header_for(ring.signer), **extra}
    token = forge.rs256(header, claims_for(clock, policy), ring.signer.private_key)
    reject(verifier, token, "header")


@pytest.mark.spec("JWT-2")
@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "license+jwt"])
def test_wrong_typ(
    typ: str | None,
    verifier: AccessTokenVerifier,
    policy: TokenPolicy,
    clock: FrozenClock,
    ring: KeyRing,
) -> None:
    token = _forged(ring, clock, policy, header={"typ": typ})
    reject(verifier, token, "header")


@pytest.mark.spec("JWT-2")
@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"iss": "https://evil.example"}, "issuer"),
        ({"aud": "another-api"}, "audience"),
        ({"aud": ["another-api"]}, "audience"),
        ({"aud": []}, "claim_aud"),
        ({"aud": 5}, "claim_aud"),
        ({"iss": None}, "claim_iss"),
        ({"sub": None}, "claim_sub"),
        ({"sub": ""}, "claim_sub"),
        ({"sub": 42}, "claim_sub"),
        ({"jti": None}, "claim_jti"),
        ({"sid": None}, "claim_sid"),
        ({"ver": None}, "claim_ver"),
        ({"ver": "0"}, "claim_ver"),
        ({"ver": True}, "claim_ver"),
        ({"ver": -1}, "claim_ver"),
        ({"exp": None}, "claim_exp"),
        ({"exp": "never"}, "claim_exp"),
        ({"exp": True}, "claim_exp"),
        ({"nbf": None}, "claim_nbf"),
        ({"iat": None}, "claim_iat"),
        ({"exp": 10**30}, "claim_exp"),
    ],
)
def test_wrong_or_missing_claims(
    override: dict[str, Any],
    reason: str,
    verifier: AccessTokenVerifier,
    policy: TokenPolicy,
    clock: FrozenClock,
    ring: KeyRing,
) -> None:
    token = _forged(ring, clock, policy, **override)
    reject(verifier, token, reason)


def test_audience_list_containing_ours_is_accepted(
    verifier: AccessTokenVerifier, policy: TokenPolicy, clock: FrozenClock, ring: KeyRing
) -> None:
    token = _forged(ring, clock, policy, aud=["other", policy.audience])
    assert verifier.verify(token).audience == ("other", policy.audience)


@pytest.mark.spec("JWT-2")
def test_expired_with_leeway(
    issuer: AccessTokenIssuer, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    clock.advance(timedelta(hours=1, seconds=29))
    verifier.verify(token)  # within the 30 s leeway
    clock.advance(timedelta(seconds=1))
    reject(verifier, token, "expired")


@pytest.mark.spec("JWT-2")
def test_expired_on_first_sight(
    issuer: AccessTokenIssuer, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    clock.advance(timedelta(hours=2))
    reject(verifier, token, "expired")


@pytest.mark.spec("JWT-2")
def test_not_yet_valid(
    verifier: AccessTokenVerifier, policy: TokenPolicy, clock: FrozenClock, ring: KeyRing
) -> None:
    now = int(clock.now().timestamp())
    early = _forged(ring, clock, policy, nbf=now + 31, iat=now)
    reject(verifier, early, "not_yet_valid")
    future_iat = _forged(ring, clock, policy, iat=now + 120)
    reject(verifier, future_iat, "not_yet_valid")
    within = _forged(ring, clock, policy, nbf=now + 30)
    verifier.verify(within)


@pytest.mark.spec("JWT-2")
def test_leeway_capped_at_60_seconds() -> None:
    TokenPolicy(issuer="i", audience="a", leeway=timedelta(seconds=60))
    with pytest.raises(ValueError, match="leeway"):
        TokenPolicy(issuer="i", audience="a", leeway=timedelta(seconds=61))


@pytest.mark.spec("JWT-2")
def test_policy_refuses_non_rsa_algorithms() -> None:
    for algs in (("HS256",), ("none",), ("RS256", "HS256"), ()):
        with pytest.raises(ValueError, match="algorithms"):
            TokenPolicy(issuer="i", audience="a", algorithms=algs)


@pytest.mark.spec("JWT-2")
def test_malformed_encodings(
    verifier: AccessTokenVerifier,
    policy: TokenPolicy,
    clock: FrozenClock,
    ring: KeyRing,
    issuer: AccessTokenIssuer,
) -> None:
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    head, payload, signature = token.split(".")
    reject(verifier, f"{head}=.{payload}.{signature}", "malformed")  # padding
    reject(verifier, f"{head}.{payload}.{signature}==", "malformed")
    reject(verifier, f"{head}.{payload}.{signature.replace('-', '+').replace('_', '/')}")
    reject(verifier, f"{head}.{payload}.{signature}.extra", "malformed")
    reject(verifier, f"{head}.{payload}.{signature} ", "malformed")
    reject(verifier, "é" + token, "malformed")
    reject(verifier, "a" * 9000, "malformed")
    reject(verifier, "", "malformed")
    # a different encoding of the same signature bytes (non-zero unused bits) is refused
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = alphabet[alphabet.index(last) ^ 1]
    reject(verifier, f"{head}.{payload}.{signature[:-1]}{sibling}")
    # a header that is JSON but not an object, or not JSON
    reject(verifier, f"{forge.b64(b'[1,2]')}.{payload}.{signature}", "malformed")
    reject(verifier, f"{forge.b64(b'{nope')}.{payload}.{signature}", "malformed")
    not_utf8 = forge.b64(bytes([0xFF, 0xFE]))
    reject(verifier, f"{not_utf8}.{payload}.{signature}", "malformed")


@pytest.mark.spec("JWT-2")
def test_duplicate_json_members_refused(
    verifier: AccessTokenVerifier, policy: TokenPolicy, clock: FrozenClock, ring: KeyRing
) -> None:
    header = (
        '{"alg":"RS256","kid":"%s","typ":"at+jwt","alg":"RS256"}' % ring.signer.kid  # noqa: UP031
    ).encode()
    payload = json.dumps(claims_for(clock, policy), separators=(",", ":")).encode()
    reject(verifier, forge.raw_rs256(header, payload, ring.signer.private_key), "malformed")
    good_header = json.dumps(header_for(ring.signer)).encode()
    dup_payload = payload[:-1] + b',"sub":"admin"}'
    reject(verifier, forge.raw_rs256(good_header, dup_payload, ring.signer.private_key))


def test_non_str_token_is_type_error(verifier: AccessTokenVerifier) -> None:
    with pytest.raises(TypeError):
        verifier.verify(b"abc")  # type: ignore[arg-type]


# --- session epoch and revocation (REF-3, REF-4) -----------------------------------------------


@pytest.mark.spec("REF-4")
def test_epoch_bump_kills_live_tokens_at_once(
    issuer: AccessTokenIssuer, verifier: AccessTokenVerifier, state: MemorySessionStateStore
) -> None:
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    other = issuer.issue("user-2", session_id="t", epoch=0).token
    verifier.verify(token)  # cached
    assert state.bump_epoch("user-1") == 1
    reject(verifier, token, "session_epoch")
    verifier.verify(other)
    verifier.verify(issuer.issue("user-1", session_id="s", epoch=1).token)


@pytest.mark.spec("REF-3")
def test_revoked_session_kills_its_tokens(
    issuer: AccessTokenIssuer,
    verifier: AccessTokenVerifier,
    state: MemorySessionStateStore,
    clock: FrozenClock,
) -> None:
    token = issuer.issue("user-1", session_id="s1", epoch=0).token
    sibling = issuer.issue("user-1", session_id="s2", epoch=0).token
    verifier.verify(token)
    state.revoke_session("s1", now=clock.now(), until=clock.now() + timedelta(hours=2))
    reject(verifier, token, "session_revoked")
    verifier.verify(sibling)


# --- the verified-token cache ------------------------------------------------------------------


def _count_rsa_verifies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counter = [0]
    real = access_module._SIGNATURE_CHECKS["RS256"]

    def counting(key: Any, msg: bytes, sig: bytes) -> bool:
        counter[0] += 1
        return real(key, msg, sig)

    monkeypatch.setitem(access_module._SIGNATURE_CHECKS, "RS256", counting)
    return counter


def test_repeated_token_costs_no_rsa_verify(
    monkeypatch: pytest.MonkeyPatch, issuer: AccessTokenIssuer, verifier: AccessTokenVerifier
) -> None:
    counter = _count_rsa_verifies(monkeypatch)
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    first = verifier.verify(token)
    for _ in range(5):
        assert verifier.verify(token) == first
    assert counter[0] == 1


def test_cache_never_outlives_exp(
    monkeypatch: pytest.MonkeyPatch,
    issuer: AccessTokenIssuer,
    verifier: AccessTokenVerifier,
    clock: FrozenClock,
) -> None:
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    verifier.verify(token)
    clock.advance(timedelta(hours=1, seconds=30))
    reject(verifier, token, "expired")


def test_cache_is_bounded_and_holds_no_token(
    ring: KeyRing, policy: TokenPolicy, clock: FrozenClock, issuer: AccessTokenIssuer
) -> None:
    cache = VerifiedTokenCache(max_entries=3)
    verifier = AccessTokenVerifier(
        ring, policy, clock=clock, sessions=MemorySessionStateStore(), cache=cache
    )
    tokens = [issuer.issue(f"user-{i}", session_id="s", epoch=0).token for i in range(5)]
    for token in tokens:
        verifier.verify(token)
    assert len(cache) == 3
    for key in cache.digests():
        assert len(key) == 32
        assert all(key not in token.encode() for token in tokens)


def test_cache_can_be_turned_off(
    monkeypatch: pytest.MonkeyPatch, ring: KeyRing, clock: FrozenClock
) -> None:
    policy = TokenPolicy(issuer="i", audience="a", verified_cache_size=0)
    issuer = AccessTokenIssuer(ring, policy, clock=clock)
    verifier = AccessTokenVerifier(ring, policy, clock=clock, sessions=MemorySessionStateStore())
    counter = _count_rsa_verifies(monkeypatch)
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    verifier.verify(token)
    verifier.verify(token)
    assert counter[0] == 2


def test_a_rejected_token_is_not_cached(
    monkeypatch: pytest.MonkeyPatch,
    issuer: AccessTokenIssuer,
    verifier: AccessTokenVerifier,
    state: MemorySessionStateStore,
) -> None:
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    state.bump_epoch("user-1")
    reject(verifier, token, "session_epoch")
    assert len(verifier._cache or []) == 0


# --- fuzzing: nothing but our error ever comes out ---------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@pytest.mark.spec("JWT-2")
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(max_size=300))
def test_arbitrary_text_gives_only_our_error(verifier: AccessTokenVerifier, token: str) -> None:
    with pytest.raises(InvalidAccessTokenError):
        verifier.verify(token)


@pytest.mark.spec("JWT-2")
@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit"]), _json_values),
    payload=_json_values,
)
def test_arbitrary_signed_json_gives_only_our_error(
    verifier: AccessTokenVerifier, ring: KeyRing, header: dict[str, Any], payload: Any
) -> None:
    """Even with a valid signature by our key, junk claims never escape as another error."""
    token = forge.raw_rs256(
        json.dumps({**header, "kid": ring.signer.kid, "alg": "RS256", "typ": "at+jwt"}).encode(),
        json.dumps(payload).encode(),
        ring.signer.private_key,
    )
    with pytest.raises(InvalidAccessTokenError):
        verifier.verify(token)


def test_deeply_nested_json_is_refused(verifier: AccessTokenVerifier, ring: KeyRing) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    header = json.dumps({"alg": "RS256", "kid": ring.signer.kid, "typ": "at+jwt"}).encode()
    token = forge.raw_rs256(header, deep, ring.signer.private_key)
    reject(verifier, token, "malformed")  # too long before it is even parsed
    big = AccessTokenVerifier(
        ring,
        TokenPolicy(issuer="i", audience="a", max_token_bytes=65536),
        clock=FrozenClock(),
        sessions=MemorySessionStateStore(),
    )
    nested = b"[" * 20_000 + b"]" * 20_000
    reject(big, forge.raw_rs256(header, nested, ring.signer.private_key), "malformed")


@pytest.mark.spec("JWT-2")
def test_first_sight_exactly_at_the_end_of_the_leeway_is_expired(
    issuer: AccessTokenIssuer, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    token = issuer.issue("user-1", session_id="s", epoch=0).token
    clock.advance(timedelta(hours=1, seconds=30))  # exp + the 30 s leeway, never seen before
    reject(verifier, token, "expired")


def test_issuer_and_verifier_check_their_parts(
    ring: KeyRing, policy: TokenPolicy, clock: FrozenClock, state: MemorySessionStateStore
) -> None:
    with pytest.raises(TypeError, match="ring must be a KeyRing"):
        AccessTokenIssuer(ring.signer, policy, clock=clock)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="policy must be a TokenPolicy"):
        AccessTokenIssuer(ring, {"issuer": policy.issuer}, clock=clock)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ring must be a KeyRing"):
        AccessTokenVerifier(ring.signer, policy, clock=clock, sessions=state)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="policy must be a TokenPolicy"):
        AccessTokenVerifier(ring, {"issuer": policy.issuer}, clock=clock, sessions=state)  # type: ignore[arg-type]


@pytest.mark.parametrize("session_id", ["", None, 7])
def test_issue_refuses_a_token_without_a_session(
    issuer: AccessTokenIssuer, session_id: Any
) -> None:
    with pytest.raises(ValueError, match="session_id must be a non-empty string"):
        issuer.issue("user-1", session_id=session_id, epoch=0)


@pytest.mark.spec("JWT-2")
def test_header_spellings_made_up_to_fill_the_header_memo_are_bounded(
    verifier: AccessTokenVerifier, ring: KeyRing, clock: FrozenClock, policy: TokenPolicy
) -> None:
    """Every valid token may spell its header differently (whitespace, member order); the
    verifier remembers checked headers, at most 32 of them, and starts afresh when full."""
    key = ring.signer
    payload = json.dumps(claims_for(clock, policy)).encode()
    for spaces in range(access_module._MAX_HEADERS + 1):
        header = f'{{"alg":"RS256",{" " * spaces}"kid":"{key.kid}","typ":"at+jwt"}}'.encode()
        claims = verifier.verify(forge.raw_rs256(header, payload, key.private_key))
        assert claims.subject == "user-1"
        assert len(verifier._headers) == spaces % access_module._MAX_HEADERS + 1
    forged = forge.raw_rs256(
        f'{{"alg":"RS256", "kid":"{key.kid}","typ":"JWT"}}'.encode(), payload, key.private_key
    )
    reject(verifier, forged, "header")  # a refused header is never remembered
    assert len(verifier._headers) == 1


@pytest.mark.parametrize("bits", [1024, 2047, "4096", None])
def test_policy_refuses_rsa_minimums_below_2048(bits: Any) -> None:
    with pytest.raises(ValueError, match="min_rsa_bits must be an int of at least 2048"):
        TokenPolicy(issuer="i", audience="a", min_rsa_bits=bits)


@pytest.mark.parametrize("size", [-1, 10_000_001, 1.5, "100"])
def test_policy_refuses_impossible_cache_sizes(size: Any) -> None:
    with pytest.raises(ValueError, match="verified_cache_size must be an int between 0"):
        TokenPolicy(issuer="i", audience="a", verified_cache_size=size)


@pytest.mark.spec("JWT-1")
@pytest.mark.parametrize(
    ("claim", "reason"), [("iss", "claim_iss"), ("jti", "claim_jti"), ("sid", "claim_sid")]
)
def test_an_empty_identifying_claim_is_malformed(
    verifier: AccessTokenVerifier,
    ring: KeyRing,
    clock: FrozenClock,
    policy: TokenPolicy,
    claim: str,
    reason: str,
) -> None:
    # an empty string is no issuer, token id or session: refused as a malformed claim, not
    # compared (an empty `sid` would name no session a logout can end)
    reject(verifier, _forged(ring, clock, policy, **{claim: ""}), reason)


def test_auth_time_is_a_datetime_no_later_than_the_issue(
    issuer: AccessTokenIssuer, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    issued = issuer.issue("user-1", session_id="sess-1", epoch=0, auth_time=clock.now())
    assert verifier.verify(issued.token).auth_time == clock.now()  # exactly now: accepted
    with pytest.raises(TypeError, match="auth_time must be a datetime"):
        issuer.issue("user-1", session_id="sess-1", epoch=0, auth_time="2026-01-01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not be later than the time of issue"):
        issuer.issue(
            "user-1", session_id="sess-1", epoch=0, auth_time=clock.now() + timedelta(seconds=1)
        )


@pytest.mark.spec("JWT-2")
def test_an_auth_time_exactly_the_leeway_after_issue_passes_on_every_check(
    verifier: AccessTokenVerifier, ring: KeyRing, clock: FrozenClock, policy: TokenPolicy
) -> None:
    # the cache's hit must answer as the first sight did, at the exact edge of the leeway
    now = int(clock.now().timestamp())
    leeway = int(policy.leeway.total_seconds())
    at_edge = _forged(ring, clock, policy, auth_time=now + leeway)
    first = verifier.verify(at_edge)
    assert verifier.verify(at_edge) == first  # the cached answer
    reject(verifier, _forged(ring, clock, policy, auth_time=now + leeway + 1), "claim_auth_time")


def test_a_token_of_exactly_the_longest_length_is_read(
    ring: KeyRing, clock: FrozenClock, policy: TokenPolicy, state: MemorySessionStateStore
) -> None:
    token = _forged(ring, clock, policy)
    exact = AccessTokenVerifier(
        ring, attrs.evolve(policy, max_token_bytes=len(token)), clock=clock, sessions=state
    )
    assert exact.verify(token).subject == "user-1"
    shorter = AccessTokenVerifier(
        ring, attrs.evolve(policy, max_token_bytes=len(token) - 1), clock=clock, sessions=state
    )
    reject(shorter, token, "malformed")


def test_a_verifier_on_the_system_clock_reads_the_real_time(
    ring: KeyRing, policy: TokenPolicy
) -> None:
    """The real clock is read without a datetime; a subclass that moves its now() is still
    read through now() (its time, not the wall clock's, decides expiry)."""
    hour = timedelta(hours=1)
    real = SystemClock().now()

    class AheadClock(SystemClock):
        __slots__ = ()

        def now(self) -> datetime:
            return super().now() + 2 * hour

    # a token two hours old is expired by either clock; a fresh one only by the one ahead
    for clock, fresh_ok in ((SystemClock(), True), (AheadClock(), False)):
        verifier = AccessTokenVerifier(
            ring, policy, clock=clock, sessions=MemorySessionStateStore()
        )
        fresh = AccessTokenIssuer(ring, policy, clock=FrozenClock(real)).issue(
            "user-1", session_id="s", epoch=0
        )
        stale = AccessTokenIssuer(ring, policy, clock=FrozenClock(real - 2 * hour)).issue(
            "user-1", session_id="s", epoch=0
        )
        for token, ok in ((stale.token, False), (fresh.token, fresh_ok)):
            if ok:
                assert verifier.verify(token).subject == "user-1"
            else:
                reject(verifier, token, "expired")
