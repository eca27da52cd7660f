"""Access-token verification and request authentication, async (JWT-2, REF-3, REF-4, KEY-4).

The token's checks are the synchronous verifier's, not a copy: :class:`AsyncAccessTokenVerifier`
holds an :class:`~storno_security.tokens.AccessTokenVerifier` whose session store says every
session is live, so calling it runs exactly the signature, header and claim checks (and the
verified-token cache) and nothing that waits; then the session state is read from the async
store and judged as the synchronous verifier judges it. The signature check is CPU work of
tens of microseconds on a cache miss and a hash on a hit: it runs on the loop.
"""

from __future__ import annotations

from datetime import datetime

from storno_security.aio.api_keys import AsyncApiKeyVerifier
from storno_security.aio.sessions import AsyncSessionStateStore
from storno_security.clock import Clock
from storno_security.errors import InvalidAccessTokenError
from storno_security.kit.auth import parse_authorization
from storno_security.kit.results import Caller
from storno_security.tokens.access import AccessTokenClaims, AccessTokenVerifier, VerifiedTokenCache
from storno_security.tokens.keys import KeyRing
from storno_security.tokens.policy import TokenPolicy
from storno_security.tokens.storage import SessionState

__all__ = ["AsyncAccessTokenVerifier", "AsyncAuthenticator", "check_session_state"]

_LIVE = SessionState(epoch=0, revoked=False)


class _EverySessionLive:
    """A session store for the stateless half of verification: every session live at epoch 0
    (no token's ``ver`` is below 0), so only the token itself is judged."""

    def session_state(self, *, user_id: str, session_id: str) -> SessionState:
        return _LIVE

    def current_epoch(self, user_id: str) -> int:  # pragma: no cover - never called
        return 0

    def bump_epoch(self, user_id: str) -> int:  # pragma: no cover - never called
        raise NotImplementedError

    def revoke_session(  # pragma: no cover - never called
        self, session_id: str, *, now: datetime, until: datetime
    ) -> None:
        raise NotImplementedError

    def purge_expired(self, *, now: datetime) -> int:  # pragma: no cover - never called
        return 0

    def forget_user(self, user_id: str) -> int:  # pragma: no cover - never called
        return 0


def check_session_state(claims: AccessTokenClaims, state: SessionState) -> AccessTokenClaims:
    """The session checks of :class:`~storno_security.tokens.AccessTokenVerifier`: a token
    issued before the user's current epoch, or of a revoked session, is dead.

    Raises:
        InvalidAccessTokenError: ``reason="session_epoch"`` or ``"session_revoked"``.
    """
    if claims.epoch < state.epoch:
        raise InvalidAccessTokenError(reason="session_epoch")
    if state.revoked:
        raise InvalidAccessTokenError(reason="session_revoked")
    return claims


class AsyncAccessTokenVerifier:
    """Verifies access tokens (JWT-2) and their session (REF-3, REF-4), the session state read
    from an async store.

    Args:
        ring: the keys that verify (the kit's ``keys.jwt``).
        policy: the token policy (the kit's ``policy.tokens``).
        clock: the time source.
        sessions: the async session-state read.
        cache: a verified-token cache; by default one of ``policy.verified_cache_size``
            entries (none when that is 0).

    Raises:
        TypeError: ``ring`` or ``policy`` is not of its type.
    """

    def __init__(
        self,
        ring: KeyRing,
        policy: TokenPolicy,
        *,
        clock: Clock,
        sessions: AsyncSessionStateStore,
        cache: VerifiedTokenCache | None = None,
    ) -> None:
        self._tokens = AccessTokenVerifier(
            ring, policy, clock=clock, sessions=_EverySessionLive(), cache=cache
        )
        self._sessions = sessions

    def __repr__(self) -> str:
        return f"AsyncAccessTokenVerifier({self._sessions!r})"

    async def verify(self, token: str) -> AccessTokenClaims:
        """Verify ``token`` and its session; return its claims.

        Raises:
            TypeError: ``token`` is not a ``str``.
            InvalidAccessTokenError: for every way the token can be wrong (the reasons of
                :meth:`AccessTokenVerifier.verify
                <storno_security.tokens.AccessTokenVerifier.verify>`).
            StoreError: the session store failed.
        """
        claims = self._tokens.verify(token)
        state = await self._sessions.session_state(
            user_id=claims.subject, session_id=claims.session_id
        )
        return check_session_state(claims, state)


class AsyncAuthenticator:
    """The caller of a request from its ``Authorization`` header, async: what
    :meth:`Kit.authenticate <storno_security.kit.Kit.authenticate>` answers.

    Args:
        tokens: verifies ``Bearer`` access tokens.
        api_keys: verifies bare ``af_`` keys.
    """

    def __init__(self, tokens: AsyncAccessTokenVerifier, api_keys: AsyncApiKeyVerifier) -> None:
        self.tokens = tokens
        self.api_keys = api_keys

    def __repr__(self) -> str:
        return f"AsyncAuthenticator({self.tokens!r}, {self.api_keys!r})"

    async def authenticate(self, authorization: str | None) -> Caller | None:
        """``Bearer <access token>`` or a bare ``af_...`` key; ``None`` without a header.

        Raises:
            InvalidAccessTokenError: a malformed header, or a token that does not verify.
            InvalidApiKeyError: a key that does not verify, or a key sent as ``Bearer``.
            StoreError: a store failed.
        """
        parsed = parse_authorization(authorization)
        if parsed is None:
            return None
        kind, credential = parsed
        if kind == "api_key":
            principal = await self.api_keys.verify(credential)
            return Caller(user_id=principal.user_id, kind="api_key", api_key=principal)
        claims = await self.tokens.verify(credential)
        return Caller(user_id=claims.subject, kind="user", claims=claims)
