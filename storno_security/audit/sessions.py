"""Security events from the token sessions' own events (REF-3, REF-4).

:class:`~storno_security.tokens.SessionManager` reports reuse detection, logout and "revoke all"
as ``SessionEvent`` objects through its ``on_event`` callback. :func:`event_from_session` turns
one into a :class:`SecurityEvent`. It reads the event by shape (capabilities do not import each
other), so any object with the same attributes works.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Protocol

from storno_security.audit.events import Outcome, SecurityEvent, SecurityEventType

__all__ = ["SessionEventLike", "event_from_session"]

#: How many session ids an event lists in ``session_ids``; ``session_count`` has the total.
MAX_LISTED_SESSIONS: Final = 16

_TYPES: Final = {
    "refresh_token_reused": (SecurityEventType.TOKEN_REUSE_DETECTED, Outcome.FAILURE),
    "session_revoked": (SecurityEventType.LOGOUT, Outcome.SUCCESS),
    "sessions_revoked": (SecurityEventType.SESSIONS_REVOKED, Outcome.SUCCESS),
}


class SessionEventLike(Protocol):
    """The shape of ``storno_security.tokens.SessionEvent``."""

    @property
    def kind(self) -> str:
        """``refresh_token_reused``, ``session_revoked`` or ``sessions_revoked``."""
        ...

    @property
    def user_id(self) -> str:
        """The user concerned."""
        ...

    @property
    def at(self) -> datetime:
        """When."""
        ...

    @property
    def session_ids(self) -> Sequence[str]:
        """The sessions (refresh families) concerned."""
        ...

    @property
    def reason(self) -> str | None:
        """Why every session was revoked, for ``sessions_revoked``."""
        ...


def event_from_session(
    event: SessionEventLike,
    *,
    organization_id: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> SecurityEvent:
    """The security event for a session event.

    ``refresh_token_reused`` becomes ``TOKEN_REUSE_DETECTED`` (failure), ``session_revoked``
    ``LOGOUT``, ``sessions_revoked`` ``SESSIONS_REVOKED`` with the reason. The session ids (the
    non-secret ``sid`` values) go to the details; the tokens never reach the session event.

    Raises:
        ValueError: an unknown kind, or a field that :class:`SecurityEvent` refuses.
    """
    try:
        event_type, outcome = _TYPES[event.kind]
    except KeyError:
        raise ValueError("unknown session event kind") from None
    ids = tuple(event.session_ids)
    details: dict[str, str | int] = {"session_count": len(ids)}
    if ids:
        details["session_ids"] = ",".join(ids[:MAX_LISTED_SESSIONS])
    if event.reason is not None:
        details["reason"] = event.reason
    return SecurityEvent(
        type=event_type,
        at=event.at,
        outcome=outcome,
        actor_id=event.user_id,
        organization_id=organization_id,
        ip=ip,
        user_agent=user_agent,
        details=details,
    )
