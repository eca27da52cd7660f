"""The short-lived stores, written once as thin adapters on :class:`~._records.Records`: each
backend package only names them and hands in its records (``MemoryRecords``, ``SqlRecords``,
``RedisRecords``). Their docstrings are the protocols'; what is said here is how each maps onto
records (namespace, key, subject, and what ``number``, ``tag`` and ``data`` hold).

Every one that keeps data by user also has ``forget_user(user_id) -> int`` (ACC-7): the records
carry the user as their subject, so forgetting needs no key names.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NoReturn

from storno_security.accounts.storage import ConfirmationUse, ResetTokenUse, _check_max_active
from storno_security.clock import ensure_aware_utc
from storno_security.errors import CorruptRecordError
from storno_security.mfa.storage import FailureCount, StoredChallenge, StoredStepUp, _check_window
from storno_security.passkeys.storage import ChallengePurpose, PasskeyChallenge
from storno_security.stores._records import Record, Records, from_micros, micros, storable

__all__ = [
    "EmailConfirmations",
    "LastSeen",
    "MfaChallenges",
    "MfaFailures",
    "PasskeyChallenges",
    "ResetTokens",
    "SessionStates",
    "StepUps",
    "TotpReplay",
]

_TIMELESS = datetime(1970, 1, 1, tzinfo=UTC)  # "now" for records that never expire
_US = timedelta(microseconds=1)


class _Adapter:
    """A store on records of one namespace."""

    _namespace: str

    def __init__(self, records: Records) -> None:
        self._records = records

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._records!r})"

    def purge_expired(self, *, now: datetime) -> int:
        """Delete the records that ended before ``now``; return how many (see the protocol)."""
        return self._records.purge(self._namespace, now=now)

    def forget_user(self, user_id: str) -> int:
        """Delete every record of the user (ACC-7); return how many (see the protocol)."""
        return self._records.forget(self._namespace, user_id)


class SessionStates(_Adapter):
    """Session epochs (namespace ``epoch``: a counter per user that never expires) and
    revoked-session markers (``revoked``: the session's ``until``, in microseconds, advanced
    forward only, expiring at it). Each backend adds ``session_state``, its one read of both
    (a marker counts while it exists, until purged or forgotten by Redis).

    ``forget_user`` deletes the user's epoch: call it only once the user's access tokens have
    expired, since a user without an epoch is at epoch 0 again.
    """

    _namespace = "epoch"

    def current_epoch(self, user_id: str) -> int:
        """See :meth:`~storno_security.tokens.storage.SessionStateStore.current_epoch`."""
        record = self._records.get("epoch", user_id, now=_TIMELESS)
        return 0 if record is None else _epoch(record.number)

    def bump_epoch(self, user_id: str) -> int:
        """See :meth:`~storno_security.tokens.storage.SessionStateStore.bump_epoch`."""
        record = self._records.count("epoch", user_id, now=_TIMELESS, subject=user_id)
        if record is None or record.number < 1:
            raise CorruptRecordError(reason="bad_epoch")
        return record.number

    def revoke_session(self, session_id: str, *, now: datetime, until: datetime) -> None:
        """See :meth:`~storno_security.tokens.storage.SessionStateStore.revoke_session`.
        A marker whose ``until`` is not after ``now`` is not written (its tokens are dead)."""
        self._records.advance("revoked", session_id, micros(until), now=now, expires_at=until)

    def purge_expired(self, *, now: datetime) -> int:
        """See :meth:`~storno_security.tokens.storage.SessionStateStore.purge_expired`."""
        return self._records.purge("revoked", now=now)


def _epoch(number: int) -> int:
    if number < 0:
        raise CorruptRecordError(reason="bad_epoch")
    return number


class TotpReplay(_Adapter):
    """The last accepted TOTP step per user: ``advance`` of the step, keyed and owned by the
    user, expiring at ``until``."""

    _namespace = "mfa:totp"

    def record_step(self, user_id: str, step: int, *, now: datetime, until: datetime) -> bool:
        """See :meth:`~storno_security.mfa.storage.TotpReplayStore.record_step`. The record
        lives until ``until``, at least a millisecond."""
        if isinstance(step, bool) or not isinstance(step, int):
            raise TypeError("step must be an int")
        if step < 0:
            raise ValueError("step must not be negative")
        now = ensure_aware_utc(now)
        until = max(ensure_aware_utc(until), now + timedelta(milliseconds=1))
        written, _ = self._records.advance(
            self._namespace, user_id, step, now=now, expires_at=until, subject=user_id
        )
        return written


class MfaChallenges(_Adapter):
    """MFA login challenges: a record per token hash, owned by the user, whose ``number`` counts
    failures up to its ``limit`` (``max_failures``); ``data`` holds the methods."""

    _namespace = "mfa:challenge"

    def create_challenge(self, challenge: StoredChallenge) -> None:
        """See :meth:`~storno_security.mfa.storage.MfaChallengeStore.create_challenge`. A
        challenge that is dead at ``created_at`` is not written."""
        if not isinstance(challenge, StoredChallenge):
            raise TypeError("challenge must be a StoredChallenge")
        methods = challenge.methods
        if not isinstance(methods, tuple) or not methods:
            raise TypeError("methods must be a non-empty tuple")
        if any(not isinstance(m, str) or not m or "," in m for m in methods):
            raise ValueError("each method must be a non-empty str without commas")
        for name in ("max_failures", "failures"):
            value = getattr(challenge, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int")
        self._records.insert(
            self._namespace,
            challenge.token_hash,
            now=challenge.created_at,
            expires_at=challenge.expires_at,
            subject=storable("user_id", challenge.user_id),
            data=",".join(methods),
            number=challenge.failures,
            limit=challenge.max_failures,
        )

    def _challenge(self, token_hash: str, record: Record | None) -> StoredChallenge | None:
        if record is None:
            return None
        if record.subject is None or record.limit is None or record.expires_at is None:
            _corrupt("bad_challenge")
        if not record.data or record.number < 0:
            _corrupt("bad_challenge")
        return StoredChallenge(
            token_hash=token_hash,
            user_id=record.subject,
            methods=tuple(record.data.split(",")),
            created_at=record.created_at,
            expires_at=record.expires_at,
            max_failures=record.limit,
            failures=record.number,
        )

    def get_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """See :meth:`~storno_security.mfa.storage.MfaChallengeStore.get_challenge`."""
        return self._challenge(token_hash, self._records.get(self._namespace, token_hash, now=now))

    def record_failure(self, token_hash: str, *, now: datetime) -> int | None:
        """See :meth:`~storno_security.mfa.storage.MfaChallengeStore.record_failure`."""
        record = self._records.count(self._namespace, token_hash, now=now, create=False)
        return None if record is None else record.number

    def consume_challenge(self, token_hash: str, *, now: datetime) -> StoredChallenge | None:
        """See :meth:`~storno_security.mfa.storage.MfaChallengeStore.consume_challenge`."""
        record = self._records.take(self._namespace, token_hash, now=now)
        return self._challenge(token_hash, record if record and record.live(now) else None)


class StepUps(_Adapter):
    """Step-up tokens: a record per token hash, owned by the user, tagged with the action,
    ``data`` the method; using one is a ``take`` conditional on the user and the action."""

    _namespace = "mfa:stepup"

    def create_grant(self, grant: StoredStepUp) -> None:
        """See :meth:`~storno_security.mfa.storage.StepUpStore.create_grant`. A grant that is
        dead at ``created_at`` is not written."""
        if not isinstance(grant, StoredStepUp):
            raise TypeError("grant must be a StoredStepUp")
        self._records.insert(
            self._namespace,
            grant.token_hash,
            now=grant.created_at,
            expires_at=grant.expires_at,
            subject=storable("user_id", grant.user_id),
            tag=storable("action", grant.action, 64),
            data=storable("method", grant.method, 64),
        )

    def consume_grant(
        self, token_hash: str, *, user_id: str, action: str, now: datetime
    ) -> StoredStepUp | None:
        """See :meth:`~storno_security.mfa.storage.StepUpStore.consume_grant`."""
        if not isinstance(user_id, str) or not isinstance(action, str):
            raise TypeError("user_id and action must be strs")
        record = self._records.take(
            self._namespace, token_hash, now=now, subject=user_id, tag=action
        )
        if record is None or not record.live(now):
            return None
        if record.expires_at is None or not record.data:
            _corrupt("bad_step_up")
        return StoredStepUp(
            token_hash=token_hash,
            user_id=user_id,
            action=action,
            method=record.data,
            created_at=record.created_at,
            expires_at=record.expires_at,
        )


class MfaFailures(_Adapter):
    """Second-factor attempts per user: a ``count`` keyed and owned by the user, expiring at
    the end of its window."""

    _namespace = "mfa:failures"

    def record_attempt(
        self, user_id: str, *, now: datetime, window_ends_at: datetime
    ) -> FailureCount:
        """See :meth:`~storno_security.mfa.storage.MfaFailureStore.record_attempt`."""
        if not isinstance(user_id, str):
            raise TypeError("user_id must be a str")
        now, window_ends_at = _check_window(now, window_ends_at)
        record = self._records.count(
            self._namespace, user_id, now=now, expires_at=window_ends_at, subject=user_id
        )
        if record is None or record.expires_at is None or record.number < 1:
            _corrupt("bad_count")
        return FailureCount(failures=record.number, window_ends_at=record.expires_at)

    def clear_failures(self, user_id: str) -> None:
        """See :meth:`~storno_security.mfa.storage.MfaFailureStore.clear_failures`."""
        self._records.take(self._namespace, user_id, now=_TIMELESS, expired=True)


class PasskeyChallenges(_Adapter):
    """Ceremony challenges: a record per challenge hash, owned by the user when there is one,
    ``data`` the purpose; consuming takes it whatever its state (the caller checks the time)."""

    _namespace = "passkey-challenge"

    def put(self, challenge: PasskeyChallenge, *, now: datetime) -> None:
        """See :meth:`~storno_security.passkeys.storage.PasskeyChallengeStore.put`. A
        challenge that has expired already is not written."""
        if not isinstance(challenge, PasskeyChallenge):
            raise TypeError("challenge must be a PasskeyChallenge")
        self._records.insert(
            self._namespace,
            challenge.challenge_hash,
            now=now,
            expires_at=challenge.expires_at,
            subject=challenge.user_id,
            data=ChallengePurpose(challenge.purpose).value,
        )

    def consume(self, challenge_hash: str, *, now: datetime) -> PasskeyChallenge | None:
        """See :meth:`~storno_security.passkeys.storage.PasskeyChallengeStore.consume`."""
        record = self._records.take(self._namespace, challenge_hash, now=now, expired=True)
        if record is None:
            return None
        try:
            purpose = ChallengePurpose(record.data)
        except ValueError:
            raise CorruptRecordError(reason="bad_purpose") from None
        if record.expires_at is None:
            _corrupt("bad_datetime")
        return PasskeyChallenge(challenge_hash, purpose, record.subject, record.expires_at)


class ResetTokens(_Adapter):
    """Password-reset tokens: a record per token hash, owned by the user, at most
    ``max_active`` live ones per user (``insert`` with ``keep``); using one takes it and its
    siblings in one step. ``data`` is unused here (the email of a confirmation token)."""

    _namespace = "password-reset"

    def add(
        self,
        token_hash: str,
        *,
        user_id: str,
        created_at: datetime,
        expires_at: datetime,
        max_active: int,
        email: str = "",
    ) -> None:
        """See :meth:`~storno_security.accounts.storage.ResetTokenStore.add`."""
        created_at, expires_at = ensure_aware_utc(created_at), ensure_aware_utc(expires_at)
        if not created_at < expires_at:
            raise ValueError("expires_at must be after created_at")
        self._records.insert(
            self._namespace,
            token_hash,
            now=created_at,
            expires_at=expires_at,
            subject=storable("user_id", user_id),
            data=email,
            keep=_check_max_active(max_active),
        )

    def _use(self, token_hash: str, now: datetime) -> tuple[Record | None, bool]:
        """The record this call used (or None) and whether the token was found expired."""
        if not isinstance(token_hash, str):
            raise TypeError("token_hash must be a str")
        record = self._records.take(self._namespace, token_hash, now=now, siblings=True)
        if record is None or record.subject is None:
            return None, False
        if not record.live(now):
            return None, True
        return record, False

    def consume(self, token_hash: str, *, now: datetime) -> ResetTokenUse:
        """See :meth:`~storno_security.accounts.storage.ResetTokenStore.consume`."""
        record, expired = self._use(token_hash, now)
        return ResetTokenUse(user_id=None if record is None else record.subject, expired=expired)

    def revoke_all(self, user_id: str) -> int:
        """See :meth:`~storno_security.accounts.storage.ResetTokenStore.revoke_all`."""
        return self._records.forget(self._namespace, user_id)

    def purge_expired(self, *, now: datetime) -> int:
        """See :meth:`~storno_security.accounts.storage.ResetTokenStore.purge_expired`: tokens
        whose ``expires_at`` is not after ``now``."""
        return self._records.purge(self._namespace, now=ensure_aware_utc(now) + _US)


class EmailConfirmations(ResetTokens):
    """Email-confirmation tokens (ACC-5): reset tokens that carry the address in ``data``."""

    _namespace = "email-confirmation"

    def add(  # type: ignore[override]
        self,
        token_hash: str,
        *,
        user_id: str,
        email: str,
        created_at: datetime,
        expires_at: datetime,
        max_active: int,
    ) -> None:
        """See :meth:`~storno_security.accounts.storage.EmailConfirmationStore.add`."""
        storable("email", email, 320)
        super().add(
            token_hash,
            user_id=user_id,
            created_at=created_at,
            expires_at=expires_at,
            max_active=max_active,
            email=email,
        )

    def consume(  # type: ignore[override]
        self, token_hash: str, *, now: datetime
    ) -> ConfirmationUse:
        """See :meth:`~storno_security.accounts.storage.EmailConfirmationStore.consume`."""
        record, expired = self._use(token_hash, now)
        if record is None:
            return ConfirmationUse(expired=expired)
        if not record.data:
            _corrupt("bad_email")
        return ConfirmationUse(user_id=record.subject, email=record.data)


class LastSeen(_Adapter):
    """The license's last verified time per key: ``advance`` of the time in microseconds,
    never expiring, owned by no user."""

    _namespace = "license"

    def record(self, key: str, seen: datetime) -> datetime:
        """See :meth:`~storno_security.license.storage.LastSeenStore.record`."""
        _, latest = self._records.advance(self._namespace, key, micros(seen), now=seen)
        try:
            return from_micros(latest)
        except OverflowError:
            raise CorruptRecordError(reason="bad_datetime") from None

    def forget_user(self, user_id: str) -> int:
        """Nothing: the license times name no user."""
        return 0


def _corrupt(reason: str) -> NoReturn:
    raise CorruptRecordError(reason=reason)
