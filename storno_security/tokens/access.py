"""RS256 access tokens: issuing and verifying (JWT-1, JWT-2, REF-4).

Issuing uses :func:`jwt.encode`. Verification is deliberately narrow: the token is split and its
segments decoded strictly (URL-safe base64 alphabet only, canonical, no duplicate JSON members);
the header must be exactly ``alg``/``kid``/``typ`` with ``alg`` from the policy's allow-list and
``kid`` from the ring, so a token can choose neither its algorithm nor its key; the signature is
checked for the policy's algorithm *before* the payload is parsed; then every registered claim is
required and typed, every date within the calendar (years 1 to 9999). Finally the user's session
epoch and the session's revocation are checked in the
:class:`~storno_security.tokens.storage.SessionStateStore`.

A verifier remembers the header segments it has parsed and accepted (a handful: one per signing
key), so a token whose header it has seen costs no header decoding; which key the ``kid`` names
is still looked up in the ring on every call.

Verified tokens are remembered in a bounded :class:`VerifiedTokenCache` keyed by the SHA-256 of the
verifier's policy fingerprint (issuer, audience, allowed algorithms) followed by the token: a
token seen before costs a hash and a dictionary lookup, not an RSA verification, and a cache
shared by verifiers of different policies never lets one stand in for another's checks. A hit
gives exactly what verifying the token again would: the entry remembers the key that verified
it (a ring whose ``kid`` now names another key verifies again), every check that
depends on the clock or the leeway (``exp``, ``nbf``, ``iat``, ``auth_time``) is made again, an
entry never outlives the token's ``exp``, dies with its key's retirement, and the session state
is checked on every call.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, NamedTuple

import attrs
import jwt

from storno_security._jws import (
    MAX_NUMERIC_DATE,
    MIN_NUMERIC_DATE,
    RSA_SIGNATURE_CHECKS,
    SignatureCheck,
    numeric_date_in_range,
    restricted_header,
)
from storno_security._jws import segment_bytes as _segment_bytes
from storno_security._jws import segment_json as _segment_json
from storno_security.clock import Clock, ensure_aware_utc, timestamp_reader
from storno_security.errors import InvalidAccessTokenError
from storno_security.tokens.keys import KeyRing, PublicKey
from storno_security.tokens.policy import TokenPolicy
from storno_security.tokens.storage import SessionStateReader, SessionStateStore

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
#: The optional registered claim (OIDC Core section 2): when the person last authenticated.
_AUTH_TIME: Final = "auth_time"

#: The signature check per algorithm, looked up on every call (tests count the calls).
_SIGNATURE_CHECKS: Final[dict[str, SignatureCheck]] = dict(RSA_SIGNATURE_CHECKS)

_sha256: Final = hashlib.sha256

#: Header segments a verifier remembers at most (one per signing key is what a ring produces).
_MAX_HEADERS: Final = 32


def _reject(reason: str) -> InvalidAccessTokenError:
    return InvalidAccessTokenError(reason=reason)


def _numeric_date(payload: Mapping[str, Any], name: str) -> int | float:
    """A JSON number within the calendar: huge, negative beyond year 1, or non-finite numbers
    are refused here, so no date arithmetic below can overflow."""
    value = payload.get(name)
    if not numeric_date_in_range(value):
        raise _reject(f"claim_{name}")
    return value


def _utc(value: int | float, reason: str) -> datetime:
    """A date the caller checked is within the calendar (``_numeric_date``, or its first look
    inline) as an aware UTC datetime; an int is held exactly."""
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):  # pragma: no cover - platforms refusing t < 0
        raise _reject(reason) from None


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
        extra: any other claims, read-only. It still holds ``auth_time`` as the raw integer,
            for code written before :attr:`auth_time` existed.
        auth_time: ``auth_time`` (OpenID Connect's name): when the person last authenticated,
            as an aware UTC datetime; ``None`` when the token does not say. A refreshed token
            carries the time of the login, not of the refresh.
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
    auth_time: datetime | None = None


# One slot setter per field, in the class's order (unpacking fails at import if a field is
# added or removed: _verified_claims must then change with it).
(
    _set_subject,
    _set_session_id,
    _set_epoch,
    _set_token_id,
    _set_issuer,
    _set_audience,
    _set_issued_at,
    _set_not_before,
    _set_expires_at,
    _set_kid,
    _set_extra,
    _set_auth_time,
) = (AccessTokenClaims.__dict__[f.name].__set__ for f in attrs.fields(AccessTokenClaims))


def _verified_claims(
    subject: str,
    session_id: str,
    epoch: int,
    token_id: str,
    issuer: str,
    audience: str | tuple[str, ...],
    issued_at: datetime,
    not_before: datetime,
    expires_at: datetime,
    kid: str,
    extra: Mapping[str, Any],
    auth_time: datetime | None,
) -> AccessTokenClaims:
    """``AccessTokenClaims(...)`` of a verified token at about 40 % of the generated
    ``__init__``'s cost, which on a frozen class sets each field through a bound
    ``object.__setattr__``. The class has no validator, converter or post-init hook, and these
    are all its fields (a test holds both), so setting every slot is all ``__init__`` does."""
    claims: AccessTokenClaims = object.__new__(AccessTokenClaims)
    _set_subject(claims, subject)
    _set_session_id(claims, session_id)
    _set_epoch(claims, epoch)
    _set_token_id(claims, token_id)
    _set_issuer(claims, issuer)
    _set_audience(claims, audience)
    _set_issued_at(claims, issued_at)
    _set_not_before(claims, not_before)
    _set_expires_at(claims, expires_at)
    _set_kid(claims, kid)
    _set_extra(claims, extra)
    _set_auth_time(claims, auth_time)
    return claims


def _auth_time_claim(auth_time: datetime | None, extra: Mapping[str, Any], now: int) -> int | None:
    """The ``auth_time`` to write: the keyword, or (as before it existed) an int extra claim."""
    if auth_time is not None:
        if _AUTH_TIME in extra:
            raise ValueError("give auth_time once: as the keyword or as an extra claim")
        if not isinstance(auth_time, datetime):
            raise TypeError("auth_time must be a datetime")
        value = math.floor(ensure_aware_utc(auth_time).timestamp())
    elif _AUTH_TIME in extra:
        value = extra[_AUTH_TIME]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("the auth_time claim must be an int (seconds since the epoch)")
    else:
        return None
    if not MIN_NUMERIC_DATE <= value <= now:
        raise ValueError("auth_time must not be later than the time of issue")
    return value


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
        auth_time: datetime | None = None,
    ) -> IssuedAccessToken:
        """Issue an access token for ``subject`` in session ``session_id`` at ``epoch``.

        Args:
            subject: the user id (``sub``).
            session_id: the refresh family id (``sid``).
            epoch: the user's current session epoch (``ver``).
            extra_claims: more claims (JSON values); registered names are refused. An
                ``auth_time`` given here (an int) is still taken, as before the keyword.
            auth_time: when the person last authenticated (an aware datetime, not later than
                now), written as the integer ``auth_time`` claim: the login's time, which a
                refresh carries over and never renews.

        Raises:
            TypeError: ``auth_time`` is not a datetime.
            ValueError: empty ``subject``/``session_id``, negative ``epoch``, an extra claim
                that would override a registered one, a naive ``auth_time``, an ``auth_time``
                later than now or given twice, or an ``auth_time`` extra claim that is not an
                int.
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
        authenticated = _auth_time_claim(auth_time, extra, now)
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
        if authenticated is not None:
            payload[_AUTH_TIME] = authenticated
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
    the ring (every hit looks its ``kid`` up in the verifier's own ring and must find the key
    that verified the token) nor the session store (consulted on every call).
    """
    scope = [policy.issuer, policy.audience, sorted(policy.algorithms), ACCESS_TOKEN_TYPE]
    return hashlib.sha256(json.dumps(scope, separators=(",", ":")).encode()).digest()


def _same_key(a: PublicKey, b: PublicKey) -> bool:
    """Whether two key objects (of two rings, say, loaded from the same PEM) hold one key."""
    return a.key.public_numbers() == b.key.public_numbers()


_new_tuple: Final = tuple.__new__


class _CacheEntry(NamedTuple):
    """What a hit needs to give the answer a full verification would give now (built on the hot
    path with ``tuple.__new__``: the generated ``__new__`` is a Python call)."""

    claims: AccessTokenClaims
    #: The key that verified the signature: a hit in a ring where the ``kid`` names another
    #: key verifies again (the same object is the fast path; another object holding the same
    #: key is compared by its numbers).
    public: PublicKey
    #: ``max(nbf, iat)``: before it (less the leeway) the token is not yet valid.
    not_before: float
    #: ``exp``.
    expires: float
    #: ``auth_time - iat`` (``-inf`` without ``auth_time``): over the leeway, refused.
    auth_excess: float


#: Entries per shard of a :class:`VerifiedTokenCache`, at most about this many: a shard's
#: hash table is rebuilt now and then as entries come and go, and that costs O(shard size).
_SHARD_SIZE: Final = 2048
#: Shards are picked by the first two bytes of the key (a SHA-256 digest, so uniform): at most
#: 65,536, so even the largest cache a policy allows (10 million) keeps shards of about 150.
_MAX_SHARDS: Final = 65536
_KEY_BYTES: Final = 32


def _shard(key: bytes, mask: int) -> int:
    # Two bytes of the digest: far cheaper than hash(), which a fresh bytes object computes.
    return (key[0] << 8 | key[1]) & mask


class VerifiedTokenCache:
    """A bounded map from SHA-256(policy fingerprint || token) to verified claims.

    Holds hashes, never tokens. Every operation costs O(1), whatever the size: the entries are
    spread by hash over shards of at most about 2,048, each an insertion-ordered map, and when
    a shard is full its oldest entry goes first (so the cache as a whole evicts in about the
    order entries came). No operation ever walks or rebuilds more than one shard. Thread-safe:
    lookups take no lock; inserts and evictions take one short lock.

    One cache may be shared by several verifiers, of the same policy or not: each verifier's keys
    start with the fingerprint of the policy parts its cached checks depend on (issuer,
    audience, allowed algorithms), so a token verified under one policy is never served from
    the cache to a verifier of another.

    Keys are SHA-256 digests (32 bytes), as the verifiers make them.

    Args:
        max_entries: the bound (at least 1).
    """

    __slots__ = ("_base", "_extra", "_lock", "_mask", "_max", "_shards")

    def __init__(self, max_entries: int = 10_000) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError("max_entries must be a positive int")
        count = 1
        while count * _SHARD_SIZE < max_entries and count < _MAX_SHARDS:
            count *= 2
        self._max = max_entries
        self._mask = count - 1
        # Shard i holds at most _base + (i < _extra) entries: the bounds add up to max_entries.
        self._base, self._extra = divmod(max_entries, count)
        self._shards: tuple[OrderedDict[bytes, _CacheEntry], ...] = tuple(
            OrderedDict() for _ in range(count)
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(map(len, self._shards))

    def __repr__(self) -> str:
        return f"VerifiedTokenCache(max_entries={self._max}, entries={len(self)})"

    @property
    def max_entries(self) -> int:
        """The bound."""
        return self._max

    def digests(self) -> list[bytes]:
        """Every key held (hashes, never tokens), oldest first within each shard."""
        return [key for shard in self._shards for key in list(shard)]

    def get(self, key: bytes) -> _CacheEntry | None:
        """The entry for ``key``, or ``None``."""
        if len(key) != _KEY_BYTES:
            return None
        return self._shards[(key[0] << 8 | key[1]) & self._mask].get(key)  # _shard, inline

    def put(self, key: bytes, entry: _CacheEntry) -> None:
        """Store ``entry``, evicting the oldest entry of its shard beyond the bound.

        Raises:
            ValueError: ``key`` is not 32 bytes long.
        """
        if len(key) != _KEY_BYTES:
            raise ValueError("a cache key is a SHA-256 digest (32 bytes)")
        index = (key[0] << 8 | key[1]) & self._mask  # _shard, inline
        shard = self._shards[index]
        with self._lock:
            shard[key] = entry
            if len(shard) > self._base + (index < self._extra):
                shard.popitem(last=False)

    def discard(self, key: bytes) -> None:
        """Forget ``key`` if present."""
        if len(key) != _KEY_BYTES:
            return
        with self._lock:
            self._shards[_shard(key, self._mask)].pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            for shard in self._shards:
                shard.clear()


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
        # the real clock's time read without building a datetime (the same instant)
        self._timestamp = timestamp_reader(clock)
        self._sessions = sessions
        if cache is None and policy.verified_cache_size:
            cache = VerifiedTokenCache(policy.verified_cache_size)
        self._cache = cache
        # the cache's shards, looked up directly on the hot path (VerifiedTokenCache.get)
        self._cache_shards = cache._shards if cache is not None else ()
        self._cache_mask = cache._mask if cache is not None else 0
        self._leeway = policy.leeway.total_seconds()
        self._max_bytes = policy.max_token_bytes
        self._algorithms = frozenset(policy.algorithms)
        # the cache key is SHA-256(scope || token): the scope's part hashed once, then copied
        self._cache_hasher = _sha256(_policy_fingerprint(policy))
        # header segment -> (kid, alg) of headers that passed every header check
        self._headers: dict[str, tuple[str, str]] = {}

    def verify(
        self, token: str, *, session_state: SessionStateReader | None = None
    ) -> AccessTokenClaims:
        """Verify ``token`` and return its claims.

        Args:
            token: the compact JWS.
            session_state: reads the session state instead of the store given at construction
                (called as the store's ``session_state``, once per call, after every other
                check passed). It must read the same records: the kit passes one that reads
                the caller's own records in the same statement.

        Raises:
            TypeError: ``token`` is not a ``str``.
            InvalidAccessTokenError: for every way the token can be wrong; ``reason`` says which
                (``malformed``, ``header``, ``algorithm``, ``unknown_key``, ``signature``,
                ``claim_<name>``, ``issuer``, ``audience``, ``expired``, ``not_yet_valid``,
                ``session_epoch``, ``session_revoked``). ``claim_auth_time``: an ``auth_time``
                that is not an integer, or later than ``iat`` beyond the leeway.
            StoreError: the session store failed.
        """
        if not isinstance(token, str):
            raise TypeError(f"token must be str, not {type(token).__name__}")
        if len(token) > self._max_bytes or not token.isascii():
            raise _reject("malformed")
        now = self._timestamp()
        cache = self._cache
        if cache is None:
            claims, _ = self._verify_uncached(token, now)
            return self._check_session(claims, session_state)
        # Fixed-length prefix, so (scope, token) pairs never collide by concatenation.
        hasher = self._cache_hasher.copy()
        hasher.update(token.encode("ascii"))
        key = hasher.digest()
        entry = self._cache_shards[(key[0] << 8 | key[1]) & self._cache_mask].get(key)  # _shard
        if entry is not None:
            claims = entry.claims
            public = self._ring.verification_key(claims.kid)
            if public is None:
                cache.discard(key)
                raise _reject("unknown_key")
            if public is entry.public or _same_key(public, entry.public):
                leeway = self._leeway
                if now >= entry.expires + leeway:
                    cache.discard(key)
                    raise _reject("expired")
                if now < entry.not_before - leeway:
                    raise _reject("not_yet_valid")
                if entry.auth_excess > leeway:
                    raise _reject("claim_auth_time")
                # _check_session, inline on the hot path
                read = self._sessions.session_state if session_state is None else session_state
                state = read(user_id=claims.subject, session_id=claims.session_id)
                if claims.epoch < state.epoch:
                    raise _reject("session_epoch")
                if state.revoked:
                    raise _reject("session_revoked")
                return claims
            # The kid names another key now: verify again, exactly as on first sight.
        claims, entry = self._verify_uncached(token, now)
        self._check_session(claims, session_state)
        cache.put(key, entry)
        return claims

    def _header(self, segment: str) -> tuple[str, str]:
        """``(kid, alg)`` of a header segment that passes every check but the ring lookup."""
        known = self._headers.get(segment)
        if known is not None:
            return known
        # jku, jwk, x5u, x5c, crit, b64, ...: nothing but alg/kid/typ is accepted.
        header = restricted_header(segment, InvalidAccessTokenError)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise _reject("algorithm")
        if header.get("typ") != ACCESS_TOKEN_TYPE:
            raise _reject("header")
        kid = header.get("kid")
        if not isinstance(kid, str) or self._ring.verification_key(kid) is None:
            raise _reject("unknown_key")
        headers = self._headers
        if len(headers) >= _MAX_HEADERS:  # spellings made up to fill it: start afresh
            headers.clear()
        headers[segment] = (kid, alg)
        return kid, alg

    def _verify_uncached(self, token: str, now: float) -> tuple[AccessTokenClaims, _CacheEntry]:
        # verify() checked the type, the length and ASCII.
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            raise _reject("malformed")
        header_b64, payload_b64, signature_b64 = parts
        kid, alg = self._header(header_b64)
        public = self._ring.verification_key(kid)
        if public is None:
            raise _reject("unknown_key")
        signature = _segment_bytes(signature_b64, InvalidAccessTokenError)  # canonical
        signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode("ascii")
        if not _SIGNATURE_CHECKS[alg](public.key, signing_input, signature):
            raise _reject("signature")
        # Only now, with the signature checked, is the payload read.
        payload = _segment_json(payload_b64, InvalidAccessTokenError)
        return self._check_claims(payload, public, now)

    def _check_claims(
        self, payload: dict[str, Any], public: PublicKey, now: float
    ) -> tuple[AccessTokenClaims, _CacheEntry]:
        # The order of the time checks (expired, not yet valid, auth_time) is the order of a
        # cache hit's, so both give the same reason. The hot path: helpers inlined.
        get = payload.get
        issuer = get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise _reject("claim_iss")
        if issuer != self._policy.issuer:
            raise _reject("issuer")
        raw_aud = get("aud")
        audience: str | tuple[str, ...]
        if isinstance(raw_aud, str):
            audience = raw_aud
            audience_ok = raw_aud == self._policy.audience
        elif isinstance(raw_aud, list) and raw_aud and all(isinstance(a, str) for a in raw_aud):
            audience = tuple(raw_aud)
            audience_ok = self._policy.audience in audience
        else:
            raise _reject("claim_aud")
        if not audience_ok:
            raise _reject("audience")
        # _numeric_date's first look inline: an int within the calendar needs no call
        iat = get("iat")
        if type(iat) is not int or not MIN_NUMERIC_DATE <= iat <= MAX_NUMERIC_DATE:
            iat = _numeric_date(payload, "iat")
        nbf = get("nbf")
        if type(nbf) is not int or not MIN_NUMERIC_DATE <= nbf <= MAX_NUMERIC_DATE:
            nbf = _numeric_date(payload, "nbf")
        exp = get("exp")
        if type(exp) is not int or not MIN_NUMERIC_DATE <= exp <= MAX_NUMERIC_DATE:
            exp = _numeric_date(payload, "exp")
        auth_time = get(_AUTH_TIME)
        auth_excess = -math.inf
        if auth_time is not None or _AUTH_TIME in payload:
            if (
                isinstance(auth_time, bool)
                or not isinstance(auth_time, int)
                or not numeric_date_in_range(auth_time)
            ):
                raise _reject("claim_auth_time")
            auth_excess = auth_time - iat
        leeway = self._leeway
        if now >= exp + leeway:
            raise _reject("expired")
        not_before = nbf if nbf >= iat else iat
        if now < not_before - leeway:
            raise _reject("not_yet_valid")
        if auth_excess > leeway:  # authenticated after the token was issued: made up
            raise _reject("claim_auth_time")
        subject = get("sub")
        if not isinstance(subject, str) or not subject:
            raise _reject("claim_sub")
        token_id = get("jti")
        if not isinstance(token_id, str) or not token_id:
            raise _reject("claim_jti")
        session_id = get("sid")
        if not isinstance(session_id, str) or not session_id:
            raise _reject("claim_sid")
        epoch = get("ver")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise _reject("claim_ver")
        if len(payload) > len(_REGISTERED):
            extra = {k: v for k, v in payload.items() if k not in _REGISTERED}
        else:
            extra = {}
        issued_at = _utc(iat, "claim_iat")
        claims = _verified_claims(
            subject,
            session_id,
            epoch,
            token_id,
            issuer,
            audience,
            issued_at,
            issued_at if nbf == iat else _utc(nbf, "claim_nbf"),
            _utc(exp, "claim_exp"),
            public.kid,
            MappingProxyType(extra),
            None if auth_time is None else _utc(auth_time, "claim_auth_time"),
        )
        entry = _new_tuple(
            _CacheEntry, (claims, public, float(not_before), float(exp), auth_excess)
        )
        return claims, entry

    def _check_session(
        self, claims: AccessTokenClaims, session_state: SessionStateReader | None
    ) -> AccessTokenClaims:
        read = self._sessions.session_state if session_state is None else session_state
        state = read(user_id=claims.subject, session_id=claims.session_id)
        if claims.epoch < state.epoch:
            raise _reject("session_epoch")
        if state.revoked:
            raise _reject("session_revoked")
        return claims
