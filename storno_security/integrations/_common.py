"""What the framework integrations share and no framework decides: the error answer (with the
request id, as the reference server answers, SRV-2), the request id, the client address behind
trusted proxies, and the JSON of the auth endpoints' answers. Private: no framework imported.
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from storno_security import _process
from storno_security._encoding import b64url_encode
from storno_security.accounts.model import UserAccount
from storno_security.api_keys.manager import CreatedApiKey
from storno_security.api_keys.storage import ApiKeyInfo
from storno_security.integrations.http import describe_error
from storno_security.kit.results import LoginResult, MfaRequired, MfaStatus, Session
from storno_security.passkeys.storage import PasskeyCredential
from storno_security.ratelimit.limiter import client_key
from storno_security.tokens.sessions import TokenPair

__all__ = [
    "HTTP_CODES",
    "ApiError",
    "ClientAddresses",
    "ErrorAnswer",
    "RequestIds",
    "TrustedProxies",
    "answer_error",
    "api_key_json",
    "authentication_required",
    "created_api_key_json",
    "encodable",
    "iso",
    "keys_refused",
    "limit_key",
    "login_json",
    "mfa_status_json",
    "passkey_json",
    "request_id_from",
    "session_json",
    "tokens_json",
    "user_json",
]

log = logging.getLogger("storno_security.integrations")

_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")

#: Status -> code of the errors a framework itself raises (no route, wrong method, ...).
HTTP_CODES: Final[Mapping[int, str]] = {
    400: "invalid_request",
    401: "authentication_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


class ApiError(Exception):
    """An answer the integration decides itself (a missing credential, a malformed request):
    status, stable code, safe message, headers, extra body fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def authentication_required() -> ApiError:
    """401 for a protected route called without credentials."""
    return ApiError(
        401,
        "authentication_required",
        "Authentication required.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def keys_refused() -> ApiError:
    """403 for an act only a signed-in person may do (KEY-5)."""
    return ApiError(403, "forbidden", "API keys cannot be used for this action.")


ErrorAnswer = tuple[int, dict[str, Any], dict[str, str]]


def answer_error(exc: BaseException, request_id: str | None) -> ErrorAnswer:
    """``(status, body, headers)`` for any exception: ``{"error", "code", "request_id", ...}``.

    The library's errors through :func:`~storno_security.integrations.http.describe_error`;
    :class:`ApiError` as it says; anything else is logged with its trace and answers 500 with
    nothing of it in the body.
    """
    if isinstance(exc, ApiError):
        body = {"error": exc.message, "code": exc.code, **exc.extra}
        return exc.status, {**body, "request_id": request_id}, exc.headers
    described = describe_error(exc)
    if described is None:
        log.error("request %s: unexpected %s", request_id, type(exc).__name__, exc_info=exc)
        body = {"error": "Internal server error.", "code": "internal_error"}
        return 500, {**body, "request_id": request_id}, {}
    if described.status == 503:
        log.warning("request %s: %s (%s)", request_id, described.code, type(exc).__name__)
    elif described.status >= 500:
        log.error("request %s failed: %s", request_id, type(exc).__name__, exc_info=exc)
    body = described.body()
    body.setdefault("request_id", request_id)
    return described.status, body, dict(described.headers)


def encodable(value: object) -> bool:
    """Whether every text in a JSON value is valid Unicode: JSON may carry a lone surrogate
    (``"\\ud800"``), which no store, log or answer can encode."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(encodable(k) and encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(encodable(item) for item in value)
    return True


def request_id_from(header: str | None) -> str:
    """The client's ``X-Request-Id`` when it is 1 to 64 of ``A-Z a-z 0-9 . _ -``, else a new
    random one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return secrets.token_hex(16)


class RequestIds:
    """Request ids as :func:`request_id_from` gives them, but a new one is a random prefix
    drawn once per process and a counter (distinct across workers and restarts, cheaper than
    fresh randomness per request; an id is not a secret)."""

    def __init__(self) -> None:
        self._process: int | None = None
        self._prefix = ""
        self._counter = itertools.count(1)

    def __call__(self, header: str | None) -> str:
        if header and _REQUEST_ID.fullmatch(header):
            return header
        if self._process != _process.generation():  # first use, or a forked worker:
            self._prefix = secrets.token_hex(8)  # a prefix of its own
            self._counter = itertools.count(1)
            self._process = _process.generation()
        return f"{self._prefix}{next(self._counter):016x}"


class ClientAddresses:
    """The client address (:meth:`TrustedProxies.client_ip`) and rate-limit key
    (:func:`limit_key`) of a (peer, ``X-Forwarded-For``) pair, remembered for the last few
    thousand pairs so that the common case parses no address."""

    _MAX = 8192

    def __init__(self, proxies: TrustedProxies) -> None:
        self._proxies = proxies
        self._known: dict[tuple[str, str | None], tuple[str, str]] = {}

    def resolve(self, peer: str, forwarded_for: str | None) -> tuple[str, str]:
        """``(client address, rate-limit key)``."""
        pair = (peer, forwarded_for)
        found = self._known.get(pair)
        if found is None:
            address = self._proxies.client_ip(peer, forwarded_for)
            found = (address, limit_key(address))
            if forwarded_for is not None and len(forwarded_for) > 256:
                return found  # long chains are not kept
            if len(self._known) >= self._MAX:
                self._known.clear()  # bounded: a flood of new pairs costs parsing, not memory
            self._known[pair] = found
        return found


class TrustedProxies:
    """Which peers may say who the client is (``X-Forwarded-For``).

    Args:
        networks: addresses or networks of your reverse proxies (``"10.0.0.0/8"``); none by
            default, so the peer address is the client.

    Raises:
        ValueError: an entry is not an address or network.
    """

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address: the peer, or, when the peer is a trusted proxy, the nearest
        hop of ``X-Forwarded-For`` that is not one (right to left). A peer that is no address
        (a Unix socket, a test client) is given as it is."""
        address = peer or "unknown"
        if not self._networks or not forwarded_for or not self._trusted(address):
            return address
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        for hop in reversed(hops):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                return address  # a garbled chain: trust nothing in it
            if not self._trusted(hop):
                return hop
        return hops[0] if hops else address


def limit_key(client_ip: str) -> str:
    """What a client is rate-limited by: its address (an IPv6 client by its /64, see
    :func:`~storno_security.ratelimit.client_key`), or, for a peer that is no address, its
    name."""
    try:
        return client_key(client_ip)
    except ValueError:
        return f"peer:{client_ip[:200]}"


# --- the JSON of the auth endpoints (the reference server's shapes) ---------------------------


def iso(value: datetime | None) -> str | None:
    """An aware datetime as RFC 3339 UTC with a ``Z``."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def user_json(user: UserAccount) -> dict[str, Any]:
    return {
        "id": user.user_id,
        "email": user.email,
        "email_confirmed": user.email_confirmed,
        "name": user.name,
        "mfa_enabled": user.mfa_enabled,
        "has_password": user.has_password,
        "created_at": iso(user.created_at),
    }


def tokens_json(pair: TokenPair, **extra: Any) -> dict[str, Any]:
    """A token pair, the refresh token in the body."""
    return {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
        "refresh_expires_at": iso(pair.refresh_expires_at),
        **extra,
    }


def login_json(result: LoginResult) -> dict[str, Any]:
    """A session, or the MFA challenge (MFA-4)."""
    if isinstance(result, MfaRequired):
        return result.response()
    return session_json(result)


def session_json(session: Session, **extra: Any) -> dict[str, Any]:
    if session.backup_codes_left is not None:
        extra["backup_codes_left"] = session.backup_codes_left
    return tokens_json(session.tokens, user=user_json(session.user), **extra)


def mfa_status_json(status: MfaStatus) -> dict[str, Any]:
    return {
        "enabled": status.enabled,
        "methods": list(status.methods),
        "backup_codes_left": status.backup_codes_left,
        "pending_enrolment": status.pending_enrolment,
        "has_passkeys": status.has_passkeys,
    }


def passkey_json(credential: PasskeyCredential) -> dict[str, Any]:
    return {
        "id": b64url_encode(credential.credential_id),
        "name": credential.name,
        "created_at": iso(credential.created_at),
        "last_used_at": iso(credential.last_used_at),
        "backed_up": credential.backed_up,
    }


def api_key_json(info: ApiKeyInfo) -> dict[str, Any]:
    return {
        "id": info.key_id,
        "name": info.name,
        "scope": info.scope.value,
        "permissions": None if info.permissions is None else list(info.permissions),
        "organization_id": info.organization_id,
        "created_at": iso(info.created_at),
        "expires_at": iso(info.expires_at),
        "revoked_at": iso(info.revoked_at),
        "last_used_at": iso(info.last_used_at),
    }


def created_api_key_json(created: CreatedApiKey) -> dict[str, Any]:
    """A new key: shown once (KEY-2)."""
    return {"key": created.key, **api_key_json(created.info)}
