"""Login sessions: refresh-token families with rotation, reuse detection and revocation.

A :class:`SessionManager` ties the pieces together: it starts a session (a refresh family plus
the first token pair), rotates refresh tokens (REF-2), turns a replayed refresh token into the
revocation of its whole family (REF-3), and revokes sessions on logout, password change, reset,
MFA disable or account deletion (REF-4).

Refresh tokens are 256-bit random strings (43 URL-safe characters). Only their SHA-256 reaches a
store. A malformed token is refused before any store lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import attrs

from storno_security.clock import Clock
from storno_security.errors import InvalidRefreshTokenError, RefreshTokenReuseError
from storno_security.tokens.access import AccessTokenIssuer
from storno_security.tokens.policy import TokenPolicy
from storno_security.tokens.storage import (
    RefreshFamily,
    RefreshFamilyStore,
    RotationOutcome,
    SessionStateStore,
)

__all__ = [
    "DEFAULT_REUSE_GRACE",
    "SessionEvent",
    "SessionManager",
    "TokenPair",
    "hash_refresh_token",
]

_REFRESH_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{43}")

#: REF-5: long enough for a client to retry a refresh whose reply was lost (a dropped
#: connection, a 503 after the commit), short enough that a stolen token replayed later is
#: reuse. A retry is granted once, and only while the successor is unused, so the legitimate
#: client presenting its successor after a thief's retry still revokes the family (REF-3).
DEFAULT_REUSE_GRACE: Final = timedelta(seconds=10)
MAX_REUSE_GRACE: Final = timedelta(minutes=1)

#: Why a user's sessions were all revoked (REF-4), for the audit trail.
RevokeReason = Literal[
    "password_changed", "password_reset", "mfa_disabled", "account_deleted", "admin", "user"
]


def hash_refresh_token(token: str) -> str:
    """The SHA-256 (hex) under which a refresh token is stored.

    Raises:
        InvalidRefreshTokenError: ``token`` is not a well-formed refresh token.
    """
    if not isinstance(token, str) or _REFRESH_TOKEN_RE.fullmatch(token) is None:
        raise InvalidRefreshTokenError(reason="malformed")
    return hashlib.sha256(token.encode("ascii")).hexdigest()


_ISSUING: Final = frozenset({RotationOutcome.ROTATED, RotationOutcome.REISSUED})


@attrs.frozen
class TokenPair:
    """What a login or a refresh returns to the client.

    Attributes:
        access_token: RS256 JWT (secret).
        refresh_token: opaque refresh token (secret).
        token_type: always ``"Bearer"``.
        expires_in: seconds until the access token expires.
        access_expires_at: when the access token expires.
        refresh_expires_at: when the refresh family ends (absolute, REF-1).
        session_id: the family id (``sid``).
        user_id: the owner.
    """

    access_token: str = attrs.field(repr=False)
    refresh_token: str = attrs.field(repr=False)
    expires_in: int
    access_expires_at: datetime
    refresh_expires_at: datetime
    session_id: str
    user_id: str
    token_type: str = "Bearer"  # noqa: S105 - the RFC 6750 scheme name


@attrs.frozen
class SessionEvent:
    """A security event from the session manager, for the audit trail (no secrets).

    Attributes:
        kind: ``refresh_token_reused`` (REF-3), ``session_revoked`` (logout) or
            ``sessions_revoked`` (every session of the user, REF-4).
        user_id: the user concerned.
        at: when.
        session_ids: the families concerned.
        reason: for ``sessions_revoked``, why.
    """

    kind: Literal["refresh_token_reused", "session_revoked", "sessions_revoked"]
    user_id: str
    at: datetime
    session_ids: tuple[str, ...] = ()
    reason: str | None = None


class SessionManager:
    """Starts, refreshes and revokes login sessions.

    Args:
        issuer: signs the access tokens.
        policy: lifetimes (must be the issuer's policy).
        families: refresh-family storage.
        sessions: session epochs and revoked-session markers (the verifier's store).
        clock: the time source.
        on_event: called with every :class:`SessionEvent`, for the audit trail.
        reuse_grace: how long after a rotation the just-rotated token may be presented once
            more, while its successor is unused, for a fresh pair instead of a revoked family
            (REF-5): a client whose reply was lost retries. ``timedelta(0)`` turns it off.
            Default 10 seconds (at most 1 minute).
    """

    def __init__(
        self,
        *,
        issuer: AccessTokenIssuer,
        policy: TokenPolicy,
        families: RefreshFamilyStore,
        sessions: SessionStateStore,
        clock: Clock,
        on_event: Callable[[SessionEvent], None] | None = None,
        reuse_grace: timedelta = DEFAULT_REUSE_GRACE,
    ) -> None:
        if not isinstance(reuse_grace, timedelta) or not (
            timedelta(0) <= reuse_grace <= MAX_REUSE_GRACE
        ):
            raise ValueError("reuse_grace must be a timedelta from 0 to 1 minute")
        self._reuse_grace = reuse_grace if reuse_grace > timedelta(0) else None
        self._issuer = issuer
        self._policy = policy
        self._families = families
        self._sessions = sessions
        self._clock = clock
        self._on_event = on_event

    def _emit(self, event: SessionEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def _marker_until(self, now: datetime) -> datetime:
        # Access tokens of a revoked session live at most one lifetime plus leeway from now.
        return now + self._policy.access_token_lifetime + self._policy.leeway

    def _pair(
        self,
        family: RefreshFamily,
        refresh_token: str,
        extra_claims: Mapping[str, Any] | None,
        auth_time: datetime | None = None,
    ) -> tuple[TokenPair, int]:
        """The token pair of ``family`` and the epoch its access token carries."""
        epoch = self._sessions.current_epoch(family.user_id)
        access = self._issuer.issue(
            family.user_id,
            session_id=family.family_id,
            epoch=epoch,
            extra_claims=extra_claims,
            auth_time=auth_time,
        )
        pair = TokenPair(
            access_token=access.token,
            refresh_token=refresh_token,
            expires_in=int((access.expires_at - access.issued_at).total_seconds()),
            access_expires_at=access.expires_at,
            refresh_expires_at=family.expires_at,
            session_id=family.family_id,
            user_id=family.user_id,
        )
        return pair, epoch

    def _confirm(self, pair: TokenPair, *, epoch: int) -> TokenPair:
        """Hand out ``pair`` only if no :meth:`revoke_all` can have missed it (REF-4).

        ``pair`` was signed at ``epoch`` and its family is in the store already (created by
        :meth:`start`, or live at the rotation in :meth:`refresh`). :meth:`revoke_all` bumps
        the epoch (B), then lists and revokes the user's live families (L), then marks them
        (M). Our family write (W: the create or the rotation), our epoch read (E) and the
        session-state read below (S) happen in that order. Every store operation is
        linearizable, and linearizability composes across objects, so these operations have
        one total order that respects real time:

        * E before B before S: S sees a newer epoch, and L may have run before W and missed
          the family. We revoke the family and mark the session ourselves and refuse: neither
          token leaves this method.
        * S before B: W precedes S precedes B precedes L, so L finds the family and revokes it
          (the refresh token dies), and the access token carries an epoch older than the
          bumped one, which the verifier rejects for good.
        * B before E: the access token carries the new epoch. If the family was live at W and
          L runs later, L revokes it and M marks it; if M is already done when S reads, we
          lengthen the marker to cover the access token just signed, whose expiry may lie
          beyond revoke_all's marker when this call stalled for longer than the leeway.

        A marker may also come from a concurrent reuse of the same refresh token (REF-3): the
        pair is then dead already and is returned as before, so exactly one rotation wins.

        Raises:
            InvalidRefreshTokenError: ``reason="revoked"``: the user's epoch moved while the
                pair was made; the family is revoked and marked.
            StoreError: a store failed; no token is handed out.
        """
        state = self._sessions.session_state(user_id=pair.user_id, session_id=pair.session_id)
        if state.epoch == epoch and not state.revoked:
            return pair
        now = self._clock.now()
        # Covers the access token even if the clock was set back since it was signed.
        until = max(pair.access_expires_at + self._policy.leeway, self._marker_until(now))
        if state.epoch != epoch:
            self._families.revoke_family(pair.session_id, now=now)
            self._sessions.revoke_session(pair.session_id, now=now, until=until)
            raise InvalidRefreshTokenError(reason="revoked")
        self._sessions.revoke_session(pair.session_id, now=now, until=until)
        return pair

    def start(
        self,
        user_id: str,
        *,
        auth_time: datetime | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> TokenPair:
        """Start a session after a successful login: a new family and its first token pair.

        ``auth_time`` (when the person proved who they are; usually now) goes into the first
        access token only: tokens from :meth:`refresh` never carry it, so a refreshed session
        never counts as a fresh login (ACC-6).

        Raises:
            ValueError: empty ``user_id``, or ``extra_claims`` overriding a registered claim.
            InvalidRefreshTokenError: ``reason="revoked"``: :meth:`revoke_all` ran for this user
                while the session was being started (a password change racing the login); the
                new family is revoked and no token is handed out. The user logs in again.
            StoreError: the store failed; no session was handed out.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        now = self._clock.now()
        refresh_token = secrets.token_urlsafe(32)
        family = RefreshFamily(
            family_id=secrets.token_hex(16),
            user_id=user_id,
            created_at=now,
            expires_at=now + self._policy.refresh_token_lifetime,
        )
        # Issue first: if that fails (bad claims) nothing is stored.
        pair, epoch = self._pair(family, refresh_token, extra_claims, auth_time)
        self._families.create_family(family, token_hash=hash_refresh_token(refresh_token))
        return self._confirm(pair, epoch=epoch)

    def refresh(
        self,
        refresh_token: str,
        *,
        expected_user_id: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> TokenPair:
        """Rotate ``refresh_token``: it dies and a new pair is returned (REF-2).

        Args:
            refresh_token: the token the client presented.
            expected_user_id: when the caller knows who is asking, a token of anyone else is
                refused without any change.
            extra_claims: claims for the new access token.

        A token rotated a moment ago (within ``reuse_grace``) and presented again while its
        successor is unused is taken as a retry after a lost reply: it gets a fresh pair, once,
        and the successor dies (REF-5).

        Raises:
            RefreshTokenReuseError: the token had been rotated already (outside the grace, or
                its successor was used, or it was retried once already); its family (every
                refresh and access token of that login) is now revoked (REF-3).
            InvalidRefreshTokenError: malformed, unknown, another user's, expired (REF-1) or
                revoked (before the call, or by a :meth:`revoke_all` racing it: then the
                rotated family is revoked too); ``reason`` says which.
            StoreError: a store failed. If the family store failed, nothing changed. If the
                session store failed after the rotation, the presented token is spent and the
                client has to log in again: the failure closes the session, never reopens one.
        """
        presented = hash_refresh_token(refresh_token)
        now = self._clock.now()
        new_token = secrets.token_urlsafe(32)
        result = self._families.rotate(
            presented_hash=presented,
            new_hash=hash_refresh_token(new_token),
            now=now,
            expected_user_id=expected_user_id,
            grace=self._reuse_grace,
        )
        family = result.family
        if result.outcome in _ISSUING and family is not None:
            # Only signing and the session-state check follow the commit; if either fails the
            # client retries the same token within the grace and gets a fresh pair (REF-5).
            pair, epoch = self._pair(family, new_token, extra_claims)
            return self._confirm(pair, epoch=epoch)
        if result.outcome is RotationOutcome.REUSED and family is not None:
            self._sessions.revoke_session(family.family_id, now=now, until=self._marker_until(now))
            self._emit(
                SessionEvent(
                    kind="refresh_token_reused",
                    user_id=family.user_id,
                    at=now,
                    session_ids=(family.family_id,),
                )
            )
            raise RefreshTokenReuseError(family_id=family.family_id, user_id=family.user_id)
        raise InvalidRefreshTokenError(reason=result.outcome.value)

    def logout(self, refresh_token: str, *, user_id: str) -> None:
        """End the session of ``refresh_token`` (REF-4): its family and access tokens die.

        Raises:
            InvalidRefreshTokenError: malformed, unknown, or another user's token (nothing
                changed).
            StoreError: the store failed.
        """
        presented = hash_refresh_token(refresh_token)
        now = self._clock.now()
        family = self._families.revoke_by_token(presented, now=now, expected_user_id=user_id)
        if family is None:
            raise InvalidRefreshTokenError(reason="unknown")
        self._sessions.revoke_session(family.family_id, now=now, until=self._marker_until(now))
        self._emit(
            SessionEvent(
                kind="session_revoked", user_id=user_id, at=now, session_ids=(family.family_id,)
            )
        )

    def live_sessions(self, user_id: str) -> list[RefreshFamily]:
        """The user's sessions (refresh families) neither revoked nor over, oldest first.

        Raises:
            StoreError: the store failed.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        return self._families.live_families(user_id, now=self._clock.now())

    def revoke_all(self, user_id: str, *, reason: RevokeReason) -> int:
        """Kill every session of the user (REF-4): call after a password change or reset, MFA
        disable, or account deletion.

        The epoch is bumped first, so access tokens issued before this call fail at once; then
        every family is revoked and marked, so a refresh racing with this call cannot leave a
        live session behind.

        Returns:
            The number of families revoked.

        Raises:
            StoreError: the store failed; call again (every step is idempotent).
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        now = self._clock.now()
        self._sessions.bump_epoch(user_id)
        revoked = self._families.revoke_user_families(user_id, now=now)
        until = self._marker_until(now)
        for family_id in revoked:
            self._sessions.revoke_session(family_id, now=now, until=until)
        self._emit(
            SessionEvent(
                kind="sessions_revoked",
                user_id=user_id,
                at=now,
                session_ids=tuple(revoked),
                reason=reason,
            )
        )
        return len(revoked)
