"""RS256 access tokens: issuing and verifying (JWT-1, JWT-2, REF-4).

Issuing uses :func:`jwt.encode`. Verification is deliberately narrow: the token is split and its
segments decoded strictly (URL-safe base64 alphabet only, canonical, no duplicate JSON members);
the header must be exactly ``alg``/``kid``/``typ`` with ``alg`` from the policy's allow-list and
``kid`` from the ring, so a token can choose neither its algorithm nor its key; the signature is
checked with PyJWT's algorithm object for the policy's algorithm *before* the payload is parsed;
then every registered claim is required and typed. Finally the user's session epoch and the
session's revocation are checked in the :class:`~storno_security.tokens.storage.SessionStateStore`.

Verified tokens are remembered in a bounded :class:`VerifiedTokenCache` keyed by the SHA-256 of the
verifier's policy fingerprint (issuer, audience, allowed algorithms) followed by the token: a
token seen before costs a hash and a dictionary lookup, not an RSA verification, and a cache
shared by verifiers of different policies never lets one stand in for another's checks. A cache
entry never outlives the token's ``exp``, dies with its key's retirement, and the session state is
still checked on every call.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

import attrs
import jwt
from jwt.algorithms import get_default_algorithms

from storno_security._jws import compact_parts, restricted_header, segment_bytes, segment_json
from storno_security.clock import Clock
from storno_security.errors import InvalidAccessTokenError
from storno_security.tokens.keys import KeyRing
from storno_security.tokens.policy import TokenPolicy
from storno_security.tokens.storage import SessionStateStore

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "AccessTokenClaims",
    "AccessTokenIssuer",
    "AccessTokenVerifier",
    "IssuedAccessToken",
    "VerifiedTokenCache",
]

#: The ``typ`` header of our access tokens (RFC 9068), so no other JWT signed by the same key
#: (a license, an ID token) is ever accepted as one.
ACCESS_TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a media type, not a secret

_REGISTERED: Final = frozenset({"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "sid", "ver"})
_ALGORITHMS: Final = get_default_algorithms()


def _reject(reason: str) -> InvalidAccessTokenError:
    return InvalidAccessTokenError(reason=reason)


def _numeric_date(payload: Mapping[str, Any], name: str) -> int | float:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _reject(f"claim_{name}")
    return value


def _string_claim(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise _reject(f"claim_{name}")
    return value


@attrs.frozen
class IssuedAccessToken:
    """A freshly issued access token.

    Attributes:
        token: the compact JWT (secret: never logged, not in ``repr``).
        token_id: its ``jti``.
        kid: the signing key's id.
        issued_at: ``iat``.
        expires_at: ``exp``.
    """

    token: str = attrs.field(repr=False)
    token_id: str
    kid: str
    issued_at: datetime
    expires_at: datetime


@attrs.frozen
class AccessTokenClaims:
    """The verified content of an access token.

    Attributes:
        subject: ``sub``, the user id.
        session_id: ``sid``, the refresh family of the login.
        epoch: ``ver``, the user's session epoch when the token was issued.
        token_id: ``jti``.
        issuer: ``iss``.
        audience: ``aud`` (a string, or a tuple when the token carries a list).
        issued_at: ``iat`` as an aware UTC datetime.
        not_before: ``nbf``.
        expires_at: ``exp``.
        kid: the key that signed it.
        extra: any other claims, read-only.
    """

    subject: str
    session_id: str
    epoch: int
    token_id: str
    issuer: str
    audience: str | tuple[str, ...]
    issued_at: datetime
    not_before: datetime
    expires_at: datetime
    kid: str
    extra: Mapping[str, Any] = attrs.field(factory=lambda: MappingProxyType({}))


class AccessTokenIssuer:
    """Signs access tokens with the ring's signing key (JWT-1).

    Args:
        ring: the key ring; its current signer signs.
        policy: issuer, audience, lifetime and algorithm.
        clock: the time source.
    """

    def __init__(self, ring: KeyRing, policy: TokenPolicy, *, clock: Clock) -> None:
        if not isinstance(ring, KeyRing):
            raise TypeError("ring must be a KeyRing")
        if not isinstance(policy, TokenPolicy):
            raise TypeError("policy must be a TokenPolicy")
        self._ring = ring
        self._policy = policy
        self._clock = clock

    def jwks(self) -> dict[str, Any]:
        """The public JWKS document to publish: the ring's keys, each with the ``alg`` this
        issuer signs with (the policy's ``signing_algorithm``), so a relying party's stock JWT
        library verifies our tokens with it."""
        return self._ring.jwks(algorithm=self._policy.signing_algorithm)

    def issue(
        self,
        subject: str,
        *,
        session_id: str,
        epoch: int,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> IssuedAccessToken:
        """Issue an access token for ``subject`` in session ``session_id`` at ``epoch``.

        Args:
            subject: the user id (``sub``).
            session_id: the refresh family id (``sid``).
            epoch: the user's current session epoch (``ver``).
            extra_claims: more claims (JSON values); registered names are refused.

        Raises:
            ValueError: empty ``subject``/``session_id``, negative ``epoch``, or an extra claim
                that would override a registered one.
        """
        if not isinstance(subject, str) or not subject:
            raise ValueError("subject must be a non-empty string")
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id must be a non-empty string")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError("epoch must be a non-negative int")
        extra = dict(extra_claims or {})
        clash = _REGISTERED.intersection(extra)
        if clash:
            raise ValueError(f"extra claims may not override {sorted(clash)}")
        now = int(self._clock.now().timestamp())
        exp = now + int(self._policy.access_token_lifetime.total_seconds())
        token_id = secrets.token_urlsafe(16)
        payload = {
            **extra,
            "iss": self._policy.issuer,
            "aud": self._policy.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": token_id,
            "sid": session_id,
            "ver": epoch,
        }
        signer = self._ring.signer
        token = jwt.encode(
            payload,
            signer.private_key,
            algorithm=self._policy.signing_algorithm,
            headers={"kid": signer.kid, "typ": ACCESS_TOKEN_TYPE},
        )
        return IssuedAccessToken(
            token=token,
            token_id=token_id,
            kid=signer.kid,
            issued_at=datetime.fromtimestamp(now, UTC),
            expires_at=datetime.fromtimestamp(exp, UTC),
        )


def _policy_fingerprint(policy: TokenPolicy) -> bytes:
    """SHA-256 of what a cached verification checked once and a hit does not check again.

    The issuer, the audience and the allowed algorithms. Not the leeway (applied at every hit),
    the ring (every hit looks its ``kid`` up in the verifier's own ring, and a ``kid`` is the
    key's thumbprint) nor the session store (consulted on every call).
    """
    scope = [policy.issuer, policy.audience, sorted(policy.algorithms), ACCESS_TOKEN_TYPE]
    return hashlib.sha256(json.dumps(scope, separators=(",", ":")).encode()).digest()


@attrs.frozen
class _CacheEntry:
    claims: AccessTokenClaims
    not_before: float
    expires: float


class VerifiedTokenCache:
    """A bounded map from SHA-256(policy fingerprint || token) to verified claims.

    Holds hashes, never tokens. When full, the oldest entry goes first. Thread-safe: lookups
    take no lock; inserts and evictions do. One cache may be shared by several verifiers, of
    the same policy or not: each verifier's keys start with the fingerprint of the policy parts
    its cached checks depend on (issuer, audience, allowed algorithms), so a token verified under
    one policy is never served from the cache to a verifier of another.

    Args:
        max_entries: the bound (at least 1).
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError("max_entries must be a positive int")
        self._max = max_entries
        self._entries: dict[bytes, _CacheEntry] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> _CacheEntry | None:
        """The entry for ``key``, or ``None``."""
        return self._entries.get(key)

    def put(self, key: bytes, entry: _CacheEntry) -> None:
        """Store ``entry``, evicting the oldest entries beyond the bound."""
        with self._lock:
            entries = self._entries
            entries[key] = entry
            while len(entries) > self._max:
                del entries[next(iter(entries))]

    def discard(self, key: bytes) -> None:
        """Forget ``key`` if present."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()


class AccessTokenVerifier:
    """Verifies access tokens (JWT-2) and their session (REF-3, REF-4).

    Args:
        ring: the keys that verify; the token's ``kid`` must name one of them.
        policy: algorithms, issuer, audience, leeway, cache size.
        clock: the time source.
        sessions: epochs and revoked sessions, consulted on every call.
        cache: a cache, possibly shared with other verifiers (entries are bound to the
            policy, see :class:`VerifiedTokenCache`); by default one of
            ``policy.verified_cache_size`` entries (none when that is 0).
    """

    def __init__(
        self,
        ring: KeyRing,
        policy: TokenPolicy,
        *,
        clock: Clock,
        sessions: SessionStateStore,
        cache: VerifiedTokenCache | None = None,
    ) -> None:
        if not isinstance(ring, KeyRing):
            raise TypeError("ring must be a KeyRing")
        if not isinstance(policy, TokenPolicy):
            raise TypeError("policy must be a TokenPolicy")
        self._ring = ring
        self._policy = policy
        self._clock = clock
        self._sessions = sessions
        if cache is None and policy.verified_cache_size:
            cache = VerifiedTokenCache(policy.verified_cache_size)
        self._cache = cache
        self._leeway = policy.leeway.total_seconds()
        self._algorithms = {name: _ALGORITHMS[name] for name in policy.algorithms}
        self._cache_scope = _policy_fingerprint(policy)

    def verify(self, token: str) -> AccessTokenClaims:
        """Verify ``token`` and return its claims.

        Raises:
            TypeError: ``token`` is not a ``str``.
            InvalidAccessTokenError: for every way the token can be wrong; ``reason`` says which
                (``malformed``, ``header``, ``algorithm``, ``unknown_key``, ``signature``,
                ``claim_<name>``, ``issuer``, ``audience``, ``expired``, ``not_yet_valid``,
                ``session_epoch``, ``session_revoked``).
            StoreError: the session store failed.
        """
        if not isinstance(token, str):
            raise TypeError(f"token must be str, not {type(token).__name__}")
        if len(token) > self._policy.max_token_bytes or not token.isascii():
            raise _reject("malformed")
        now = self._clock.now().timestamp()
        cache = self._cache
        key = b""
        if cache is not None:
            # Fixed-length prefix, so (scope, token) pairs never collide by concatenation.
            key = hashlib.sha256(self._cache_scope + token.encode("ascii")).digest()
            entry = cache.get(key)
            if entry is not None:
                if self._ring.verification_key(entry.claims.kid) is None:
                    cache.discard(key)
                    raise _reject("unknown_key")
                if now >= entry.expires + self._leeway:
                    cache.discard(key)
                    raise _reject("expired")
                if now < entry.not_before - self._leeway:
                    raise _reject("not_yet_valid")
                return self._check_session(entry.claims)
        claims, nbf, exp = self._verify_uncached(token, now)
        claims = self._check_session(claims)
        if cache is not None:
            cache.put(key, _CacheEntry(claims, nbf, exp))
        return claims

    def _verify_uncached(self, token: str, now: float) -> tuple[AccessTokenClaims, float, float]:
        header_b64, payload_b64, signature_b64 = compact_parts(
            token, max_bytes=self._policy.max_token_bytes, error=InvalidAccessTokenError
        )
        # jku, jwk, x5u, x5c, crit, b64, ...: nothing but alg/kid/typ is accepted.
        header = restricted_header(header_b64, InvalidAccessTokenError)
        alg = header.get("alg")
        algorithm = self._algorithms.get(alg) if isinstance(alg, str) else None
        if algorithm is None:
            raise _reject("algorithm")
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise _reject("header")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _reject("unknown_key")
        public = self._ring.verification_key(kid)
        if public is None:
            raise _reject("unknown_key")
        signature = segment_bytes(signature_b64, InvalidAccessTokenError)  # canonical
        signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
        if not algorithm.verify(signing_input, public.key, signature):
            raise _reject("signature")
        # Only now, with the signature checked, is the payload read.
        payload = segment_json(payload_b64, InvalidAccessTokenError)
        return self._check_claims(payload, kid, now)

    def _check_claims(
        self, payload: dict[str, Any], kid: str, now: float
    ) -> tuple[AccessTokenClaims, float, float]:
        policy = self._policy
        leeway = self._leeway
        issuer = _string_claim(payload, "iss")
        if issuer != policy.issuer:
            raise _reject("issuer")
        raw_aud = payload.get("aud")
        audience: str | tuple[str, ...]
        if isinstance(raw_aud, str):
            audience = raw_aud
            audience_ok = raw_aud == policy.audience
        elif isinstance(raw_aud, list) and raw_aud and all(isinstance(a, str) for a in raw_aud):
            audience = tuple(raw_aud)
            audience_ok = policy.audience in audience
        else:
            raise _reject("claim_aud")
        if not audience_ok:
            raise _reject("audience")
        iat = _numeric_date(payload, "iat")
        nbf = _numeric_date(payload, "nbf")
        exp = _numeric_date(payload, "exp")
        if now >= exp + leeway:
            raise _reject("expired")
        if now < nbf - leeway or now < iat - leeway:
            raise _reject("not_yet_valid")
        subject = _string_claim(payload, "sub")
        token_id = _string_claim(payload, "jti")
        session_id = _string_claim(payload, "sid")
        epoch = payload.get("ver")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise _reject("claim_ver")
        extra = {k: v for k, v in payload.items() if k not in _REGISTERED}
        try:
            claims = AccessTokenClaims(
                subject=subject,
                session_id=session_id,
                epoch=epoch,
                token_id=token_id,
                issuer=issuer,
                audience=audience,
                issued_at=datetime.fromtimestamp(iat, UTC),
                not_before=datetime.fromtimestamp(nbf, UTC),
                expires_at=datetime.fromtimestamp(exp, UTC),
                kid=kid,
                extra=MappingProxyType(extra),
            )
        except (OverflowError, OSError, ValueError):
            raise _reject("claim_date") from None
        return claims, float(nbf), float(exp)

    def _check_session(self, claims: AccessTokenClaims) -> AccessTokenClaims:
        state = self._sessions.session_state(user_id=claims.subject, session_id=claims.session_id)
        if claims.epoch < state.epoch:
            raise _reject("session_epoch")
        if state.revoked:
            raise _reject("session_revoked")
        return claims
