"""Verifying Google ID tokens ("Sign in with Google").

The token is split and decoded strictly; the header may hold only ``alg``, ``kid`` and ``typ``,
``alg`` must be on the policy's RSA allow-list, and the key is the JWKS entry named by ``kid``
(with one refresh of the JWKS when the ``kid`` is unknown). The signature is checked with PyJWT's
algorithm object for the policy's algorithm *before* the payload is parsed; then ``iss``, ``aud``
(and ``azp`` whenever present, required for several audiences), ``exp``, ``iat``, ``nbf``
(numbers within the calendar, years 1 to 9999) against the injected clock with a bounded
leeway, ``sub``, ``email`` and ``email_verified``. Every failure raises one
:class:`~storno_security.errors.InvalidIdTokenError` whose ``reason`` names the cause.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import RSAAlgorithm, get_default_algorithms

from storno_security._compare import constant_time_equal
from storno_security._jws import (
    compact_parts,
    numeric_date,
    numeric_date_in_range,
    restricted_header,
    segment_bytes,
    segment_json,
)
from storno_security.clock import Clock
from storno_security.errors import IdentityProviderUnavailableError, InvalidIdTokenError
from storno_security.oidc.jwks import JwksFetcher
from storno_security.oidc.policy import MIN_RSA_BITS, GoogleIdTokenPolicy

__all__ = ["GoogleIdTokenVerifier", "GoogleIdentity"]

_ALGORITHMS: Final = get_default_algorithms()
_MAX_TEXT: Final = 320  # longest email address; also bounds sub and name


def _reject(reason: str) -> InvalidIdTokenError:
    return InvalidIdTokenError(reason=reason)


def _number(payload: Mapping[str, Any], name: str) -> float:
    value = payload.get(name)
    if not numeric_date_in_range(value):  # huge, before year 1, after 9999, NaN
        raise _reject(f"claim_{name}")
    return float(value)


def _utc(value: float, name: str) -> datetime:
    moment = numeric_date(value)  # None for a float that rounds past 9999-12-31
    if moment is None:  # pragma: no cover - _number checked the range (see numeric_date)
        raise _reject(f"claim_{name}")
    return moment


def _text(payload: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT:
        raise _reject(f"claim_{name}")
    return value


@attrs.frozen
class GoogleIdentity:
    """Who a verified Google ID token says the user is.

    Attributes:
        subject: Google's stable user id (``sub``); link accounts by it, not by email.
        email: the verified email address.
        name: the display name, if the token carries one.
        hosted_domain: the Google Workspace domain (``hd``), if any.
        audience: the client id the token was issued to.
        issued_at: ``iat``.
        expires_at: ``exp``.
    """

    subject: str
    email: str
    name: str | None
    hosted_domain: str | None
    audience: str
    issued_at: datetime
    expires_at: datetime


class GoogleIdTokenVerifier:
    """Verifies Google ID tokens against keys from an application-supplied fetcher.

    Args:
        policy: client ids, issuers, algorithms, leeway.
        fetcher: supplies the JWKS; asked once more with ``refresh=True`` for an unknown ``kid``.
        clock: the time source for ``exp``/``iat``/``nbf``.
    """

    def __init__(self, policy: GoogleIdTokenPolicy, *, fetcher: JwksFetcher, clock: Clock) -> None:
        if not isinstance(policy, GoogleIdTokenPolicy):
            raise TypeError("policy must be a GoogleIdTokenPolicy")
        self._policy = policy
        self._fetcher = fetcher
        self._clock = clock

    def __repr__(self) -> str:
        return f"GoogleIdTokenVerifier(client_ids={self._policy.client_ids!r})"

    def verify(self, token: str, *, expected_nonce: str | None = None) -> GoogleIdentity:
        """Verify ``token`` and return the identity it asserts.

        Args:
            token: the ID token (a compact JWS) from Google Identity Services.
            expected_nonce: when the login request carried a nonce, the token must carry the
                same one.

        Raises:
            TypeError: ``token`` is not a str.
            InvalidIdTokenError: for every way the token can be wrong; ``reason`` says which
                (``malformed``, ``header``, ``algorithm``, ``unknown_key``, ``signature``,
                ``claim_<name>``, ``issuer``, ``audience``, ``expired``, ``issued_in_future``,
                ``not_yet_valid``, ``email_not_verified``, ``hosted_domain``, ``nonce``).
            IdentityProviderUnavailableError: the fetcher could not supply a usable JWKS.
        """
        header_b64, payload_b64, signature_b64 = compact_parts(
            token, max_bytes=self._policy.max_token_bytes, error=InvalidIdTokenError
        )
        # jku, jwk, x5u, x5c, crit, ...: never followed
        header = restricted_header(header_b64, InvalidIdTokenError)
        if "typ" in header and header["typ"] != "JWT":
            raise _reject("header")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._policy.algorithms:
            raise _reject("algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _reject("unknown_key")
        key = self._key(kid, alg)
        signature = segment_bytes(signature_b64, InvalidIdTokenError)
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        if not _ALGORITHMS[alg].verify(signing_input, key, signature):
            raise _reject("signature")
        # Only now, with the signature checked, is the payload read.
        payload = segment_json(payload_b64, InvalidIdTokenError)
        return self._check_claims(payload, expected_nonce)

    def _key(self, kid: str, alg: str) -> RSAPublicKey:
        key = _find_key(self._fetch(refresh=False), kid, alg)
        if key is None:
            key = _find_key(self._fetch(refresh=True), kid, alg)
        if key is None:
            raise _reject("unknown_key")
        return key

    def _fetch(self, *, refresh: bool) -> Mapping[str, Any]:
        try:
            document = self._fetcher.jwks(refresh=refresh)
        except IdentityProviderUnavailableError:
            raise
        except Exception as exc:  # the application's fetcher failed: no keys, no login
            raise IdentityProviderUnavailableError(reason="fetch_failed") from exc
        if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
            raise IdentityProviderUnavailableError(reason="bad_jwks")
        return document

    def _check_claims(self, payload: dict[str, Any], expected_nonce: str | None) -> GoogleIdentity:
        policy = self._policy
        now = self._clock.now().timestamp()
        leeway = policy.leeway.total_seconds()

        issuer = payload.get("iss")
        if not isinstance(issuer, str) or issuer not in policy.issuers:
            raise _reject("issuer")
        audience = _audience(payload, policy.client_ids)

        exp = _number(payload, "exp")
        iat = _number(payload, "iat")
        if now >= exp + leeway:
            raise _reject("expired")
        if iat > now + leeway or iat > exp:
            raise _reject("issued_in_future")
        if "nbf" in payload and now < _number(payload, "nbf") - leeway:
            raise _reject("not_yet_valid")

        subject = _text(payload, "sub", required=True)
        email = _text(payload, "email", required=True)
        verified = payload.get("email_verified")
        if verified is not True and verified != "true":
            raise _reject("email_not_verified")
        name = _text(payload, "name", required=False)
        hosted_domain = _text(payload, "hd", required=False)
        if policy.hosted_domains is not None and hosted_domain not in policy.hosted_domains:
            raise _reject("hosted_domain")
        if expected_nonce is not None:
            nonce = payload.get("nonce")
            if not isinstance(nonce, str) or not constant_time_equal(nonce, expected_nonce):
                raise _reject("nonce")
        if subject is None or email is None:  # pragma: no cover - required above
            raise _reject("malformed")
        return GoogleIdentity(
            subject=subject,
            email=email,
            name=name,
            hosted_domain=hosted_domain,
            audience=audience,
            issued_at=_utc(iat, "iat"),
            expires_at=_utc(exp, "exp"),
        )


def _audience(payload: Mapping[str, Any], client_ids: tuple[str, ...]) -> str:
    """The client id the token is for: ``aud`` must name one of ours, and ``azp`` (the party it
    was issued to), whenever it is present, must be one of ours too (OpenID Connect Core
    3.1.3.7); with several audiences it must be present."""
    raw = payload.get("aud")
    if isinstance(raw, str):
        audiences = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(a, str) for a in raw):
        audiences = raw
    else:
        raise _reject("audience")
    ours = [a for a in audiences if a in client_ids]
    if not ours:
        raise _reject("audience")
    if "azp" in payload or len(audiences) > 1:
        azp = payload.get("azp")
        if not isinstance(azp, str) or azp not in client_ids:
            raise _reject("audience")
        if len(audiences) > 1:
            return azp
    return ours[0]


def _find_key(document: Mapping[str, Any], kid: str, alg: str) -> RSAPublicKey | None:
    """The RSA key named ``kid`` that may be used with ``alg``, or ``None``.

    Entries that are not RSA signing keys, that name another algorithm, or are weaker than
    2048 bits are skipped, never used.
    """
    for entry in document["keys"]:
        if not isinstance(entry, Mapping) or entry.get("kid") != kid:
            continue
        if entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", alg) != alg:
            continue
        try:
            key = RSAAlgorithm.from_jwk(dict(entry))
        except (jwt.InvalidKeyError, ValueError, TypeError, KeyError):
            continue
        if isinstance(key, RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
            return key
    return None
