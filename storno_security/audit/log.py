"""The audit log: records events with the injected clock, purges by policy, pseudonymises a
deleted user's events (ACC-3, ACC-4)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Final

from storno_security.audit.capabilities import event_from_api_key_event
from storno_security.audit.events import Outcome, SecurityEvent, SecurityEventType
from storno_security.audit.export import to_jsonl
from storno_security.audit.policy import AuditPolicy
from storno_security.audit.sessions import SessionEventLike, event_from_session
from storno_security.audit.storage import AuditCursor, AuditStore
from storno_security.clock import Clock

__all__ = ["MIN_PSEUDONYM_KEY_BYTES", "AuditLog", "pseudonym"]

#: The shortest key :func:`pseudonym` accepts.
MIN_PSEUDONYM_KEY_BYTES: Final = 32
_PSEUDONYM_CONTEXT: Final = b"storno-security audit pseudonym v1\x00"
_EXPORT_PAGE: Final = 1000


def pseudonym(user_id: str, *, key: bytes) -> str:
    """The pseudonym that replaces ``user_id`` in audit events after GDPR deletion (ACC-4).

    ``"pseudo-"`` + the first 32 hex digits (128 bits) of HMAC-SHA256(key, user id): the same
    user always gets the same pseudonym, so one person's events stay linked, but without the
    key nobody can test a guessed id against it.

    Raises:
        TypeError: ``user_id`` is not a str or ``key`` not bytes.
        ValueError: ``user_id`` is empty, or ``key`` shorter than 32 bytes.
    """
    if not isinstance(user_id, str):
        raise TypeError("user_id must be a str")
    if not user_id:
        raise ValueError("user_id must not be empty")
    if not isinstance(key, bytes):
        raise TypeError("key must be bytes")
    if len(key) < MIN_PSEUDONYM_KEY_BYTES:
        raise ValueError(f"the pseudonym key must be at least {MIN_PSEUDONYM_KEY_BYTES} bytes")
    mac = hmac.new(key, _PSEUDONYM_CONTEXT + user_id.encode("utf-8"), hashlib.sha256)
    return "pseudo-" + mac.hexdigest()[:32]


class AuditLog:
    """Records security events and maintains the store.

    Args:
        store: where events go.
        clock: the time source of :meth:`record` and :meth:`purge_expired`.
        policy: retention; defaults to :class:`AuditPolicy` ().
        pseudonym_key: the secret key of :func:`pseudonym` (at least 32 bytes), needed only by
            :meth:`pseudonymise_user`. Keep it outside the database: with it, pseudonyms can be
            linked back to known ids.

    Raises:
        TypeError: ``pseudonym_key`` is not bytes.
        ValueError: ``pseudonym_key`` is shorter than 32 bytes.
    """

    def __init__(
        self,
        store: AuditStore,
        *,
        clock: Clock,
        policy: AuditPolicy | None = None,
        pseudonym_key: bytes | None = None,
    ) -> None:
        if pseudonym_key is not None:
            pseudonym("check", key=pseudonym_key)
        self._store = store
        self._clock = clock
        self._policy = policy if policy is not None else AuditPolicy()
        self._pseudonym_key = pseudonym_key

    def __repr__(self) -> str:
        return f"AuditLog({self._store!r}, retention={self._policy.retention})"

    @property
    def store(self) -> AuditStore:
        """The store events go to."""
        return self._store

    def record(
        self,
        event_type: SecurityEventType,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        actor_id: str | None = None,
        subject_id: str | None = None,
        organization_id: str | None = None,
        company_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> SecurityEvent:
        """Make an event stamped with the clock's time and record it.

        Returns:
            The recorded event.

        Raises:
            TypeError: a field has the wrong type.
            ValueError: a field is invalid, or the details hold something that looks like a
                secret (see :func:`~storno_security.audit.validate_details`).
            StoreError: the store failed; the event was not recorded.
        """
        event = SecurityEvent(
            type=event_type,
            at=self._clock.now(),
            outcome=outcome,
            actor_id=actor_id,
            subject_id=subject_id,
            organization_id=organization_id,
            company_id=company_id,
            ip=ip,
            user_agent=user_agent,
            details=details if details is not None else {},
        )
        self._store.record(event)
        return event

    def record_event(self, event: SecurityEvent) -> SecurityEvent:
        """Record an event made by a mapping (``event_from_...``) or by hand.

        Raises:
            TypeError: ``event`` is not a :class:`SecurityEvent`.
            StoreError: the store failed; the event was not recorded.
        """
        if not isinstance(event, SecurityEvent):
            raise TypeError("event must be a SecurityEvent")
        self._store.record(event)
        return event

    def emit(self, event: SecurityEvent) -> None:
        """Record ``event`` (the :class:`~storno_security.events.EventSink` protocol).

        Raises:
            StoreError: the store failed; the event was not recorded.
        """
        self._store.record(event)

    def api_key_listener(self) -> Callable[[object], None]:
        """A callback for ``ApiKeyManager(on_event=...)`` that records every key creation and
        revocation (see :func:`~storno_security.audit.event_from_api_key_event`)."""

        def listener(event: object) -> None:
            self._store.record(event_from_api_key_event(event))

        return listener

    def record_session_event(
        self,
        event: SessionEventLike,
        *,
        organization_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> SecurityEvent:
        """Record a token-session event (see :func:`event_from_session`).

        Raises:
            ValueError: an unknown kind or an invalid field.
            StoreError: the store failed.
        """
        security_event = event_from_session(
            event, organization_id=organization_id, ip=ip, user_agent=user_agent
        )
        self._store.record(security_event)
        return security_event

    def session_listener(self) -> Callable[[SessionEventLike], None]:
        """A callback for ``SessionManager(on_event=...)`` that records every session event."""

        def listener(event: SessionEventLike) -> None:
            self.record_session_event(event)

        return listener

    def purge_expired(self) -> int:
        """Delete events older than the policy's retention (run it from a scheduled command).

        Returns:
            How many events were deleted.

        Raises:
            StoreError: the store failed; nothing was deleted.
        """
        return self._store.purge(before=self._clock.now() - self._policy.retention)

    def pseudonymise_user(self, user_id: str) -> int:
        """Replace ``user_id`` by its pseudonym in every event, atomically (ACC-4).

        Returns:
            The number of events changed.

        Raises:
            ValueError: no ``pseudonym_key`` was given, or ``user_id`` is empty.
            StoreError: the store failed; nothing changed.
        """
        if self._pseudonym_key is None:
            raise ValueError("pseudonymisation needs a pseudonym_key")
        alias = pseudonym(user_id, key=self._pseudonym_key)
        return self._store.pseudonymise(user_id, pseudonym=alias)

    def export_jsonl(
        self,
        *,
        organization_id: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        actor_id: str | None = None,
    ) -> Iterator[str]:
        """Every matching event as JSON Lines, newest first, read page by page.

        Raises:
            ValueError: a naive time.
            StoreError: the store failed (possibly after some lines were yielded).
        """
        cursor: AuditCursor | None = None
        while True:
            page = self._store.query(
                organization_id=organization_id,
                since=since,
                until=until,
                actor_id=actor_id,
                cursor=cursor,
                limit=_EXPORT_PAGE,
            )
            yield from to_jsonl(page)
            if len(page) < _EXPORT_PAGE:
                return
            cursor = AuditCursor.after(page[-1])
