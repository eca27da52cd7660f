"""The internal contract every short-lived store is built on: atomic operations on expiring
records, implemented once per backend (:mod:`.memory._records`, :mod:`.sql._records`,
:mod:`.redis._records`) and proven by one contract suite (``tests/contract/test_records.py``).

A record lives at ``(namespace, key)`` and holds:

* ``subject``: whose it is (a user id), or ``None``; :meth:`Records.forget` deletes a
  subject's records without knowing their keys;
* ``tag``: a short text a :meth:`Records.take` may be conditional on (a step-up action);
* ``data``: an opaque text the adapter encodes (JSON), never compared;
* ``number``: a counter, a step, a time in microseconds;
* ``limit``: when given, the record dies once ``number`` reaches it;
* ``created_at`` and ``expires_at`` (``None``: never), both the caller's times.

A record is *live* at ``now`` while ``now < expires_at`` and ``number < limit``. Backends never
read a clock: they compare with the caller's ``now`` (Redis also keeps each record for
``expires_at - now``, so its own clock can only drop records that are dead already).

Namespaces are fixed names of the adapters (``[a-z:-]``, never one name followed by ``:`` at
the start of another), so a backend may derive keys of its own from them (``{namespace}~``).
Every operation is atomic, one transaction on SQL and one round trip on Redis.
"""

from __future__ import annotations

import abc
import re
from datetime import UTC, datetime, timedelta

import attrs

from storno_security.clock import ensure_aware_utc
from storno_security.errors import StoreError

__all__ = ["MAX_KEY", "Record", "Records"]

MAX_KEY = 255  # characters of a key or a subject
MAX_TAG = 64
MAX_NUMBER = 2**53  # exact in every backend, Lua's doubles included
_NAMESPACE = re.compile(r"[a-z][a-z:-]{0,30}[a-z]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@attrs.frozen
class Record:
    """A record as stored (see the module docstring)."""

    subject: str | None
    tag: str | None
    data: str
    number: int
    limit: int | None
    created_at: datetime
    expires_at: datetime | None

    def live(self, now: datetime) -> bool:
        """Whether the record is live at ``now``."""
        return (self.expires_at is None or now < self.expires_at) and (
            self.limit is None or self.number < self.limit
        )


def micros(value: datetime) -> int:
    """A time as integer microseconds since the epoch."""
    return (ensure_aware_utc(value) - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """The inverse of :func:`micros`.

    Raises:
        OverflowError: out of ``datetime``'s range.
    """
    return _EPOCH + value * _MICROSECOND


def storable(name: str, value: object, max_length: int = MAX_KEY) -> str:
    """A key, subject or tag to write: refused (never truncated) if no backend can hold it.

    Raises:
        TypeError: not a str.
        ValueError: empty, too long, with a NUL or a lone surrogate.
    """
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if len(value) > max_length:
        raise ValueError(f"{name} is longer than {max_length} characters")
    if "\x00" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not encodable text") from None
    return value


def lookup(name: str, value: object) -> str | None:
    """A key or subject to look up: ``None`` (matches nothing) if it cannot have been stored.

    Raises:
        TypeError: not a str.
    """
    try:
        return storable(name, value)
    except ValueError:
        return None


def _number(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int")
    if not -MAX_NUMBER <= value <= MAX_NUMBER:
        raise ValueError(f"{name} must be within ±2**53")
    return value


class Records(abc.ABC):
    """Atomic operations on expiring records. The public methods check their arguments once for
    every backend, then call the backend's ``_``-method with clean values.

    Every method raises ``StoreError`` when the backend failed (nothing changed),
    ``StoreUnavailableError`` when it cannot be reached, ``CorruptRecordError`` for a record
    no backend writes; ``TypeError``/``ValueError`` for bad arguments, before any round trip.
    """

    def insert(
        self,
        namespace: str,
        key: str,
        *,
        now: datetime,
        expires_at: datetime,
        subject: str | None = None,
        tag: str | None = None,
        data: str = "",
        number: int = 0,
        limit: int | None = None,
        keep: int | None = None,
    ) -> None:
        """Write a new record created at ``now``, unless ``expires_at <= now`` (it would be dead;
        nothing is written). With ``keep`` (and a subject), also delete, in the same step, the
        subject's records in the namespace that are not live and all but the ``keep`` newest
        live ones (by ``created_at``, then insertion order), the new one included.

        Raises:
            StoreError: a record that has not expired at ``now`` has this key
                (``reason="duplicate"``); nothing was written.
        """
        now, expires_at = ensure_aware_utc(now), ensure_aware_utc(expires_at)
        if not isinstance(data, str):
            raise TypeError("data must be a str")
        if keep is not None and (_number("keep", keep) < 1 or subject is None):
            raise ValueError("keep must be positive, and needs a subject")
        ns, key = _ns(namespace), storable("key", key)
        record = Record(
            _optional(subject, "subject"),
            _optional(tag, "tag", MAX_TAG),
            data,
            _number("number", number),
            None if limit is None else _number("limit", limit),
            now,
            expires_at,
        )
        if expires_at > now:
            self._insert(ns, key, record, keep)

    def get(self, namespace: str, key: str, *, now: datetime) -> Record | None:
        """The live record at ``key``, or ``None``. Changes nothing."""
        now, found = ensure_aware_utc(now), lookup("key", key)
        return None if found is None else self._get(_ns(namespace), found, now)

    def take(
        self,
        namespace: str,
        key: str,
        *,
        now: datetime,
        subject: str | None = None,
        tag: str | None = None,
        expired: bool = False,
        siblings: bool = False,
    ) -> Record | None:
        """Delete the record at ``key`` if it is live (or, with ``expired``, whatever its state)
        and has this ``subject`` and ``tag`` (each checked when given); return it.

        A record that is found but not live is returned and left as it was (the caller tells
        by :meth:`Record.live`); a record of another subject or tag gives ``None`` and is left
        as it was. Of concurrent calls, at most one deletes (and gets) a live record. With
        ``siblings``, the winner also deletes every other record of the record's subject in the
        namespace, in the same step.
        """
        now, found = ensure_aware_utc(now), lookup("key", key)
        for wanted, name in ((subject, "subject"), (tag, "tag")):
            if wanted is not None and lookup(name, wanted) is None:
                return None  # cannot have been stored: matches nothing
        if found is None:
            return None
        return self._take(_ns(namespace), found, now, subject, tag, bool(expired), bool(siblings))

    def count(
        self,
        namespace: str,
        key: str,
        *,
        now: datetime,
        expires_at: datetime | None = None,
        subject: str | None = None,
        create: bool = True,
    ) -> Record | None:
        """Add one to the record's number and return the record.

        Without ``create``: only a live record is counted; else ``None`` (nothing changed).
        With ``create``: a record that has not expired is counted (its limit is ignored: use
        ``create`` only for records without one); otherwise a new record starts at 1, created
        at ``now``, ending at ``expires_at`` (``None``: never), which must be after ``now``.
        """
        now = ensure_aware_utc(now)
        if expires_at is not None:
            expires_at = ensure_aware_utc(expires_at)
            if create and not now < expires_at:
                raise ValueError("expires_at must be after now")
        ns = _ns(namespace)
        if not create:
            found = lookup("key", key)
            return None if found is None else self._count(ns, found, now, None, None, False)
        return self._count(
            ns, storable("key", key), now, expires_at, _optional(subject, "subject"), True
        )

    def advance(
        self,
        namespace: str,
        key: str,
        number: int,
        *,
        now: datetime,
        expires_at: datetime | None = None,
        subject: str | None = None,
    ) -> tuple[bool, int]:
        """Forward-only: write ``number`` (with ``expires_at`` and ``subject``, created at
        ``now``) if no record has this key, or it has expired, or its number is smaller.
        Nothing is written when ``expires_at <= now``.

        Returns:
            Whether this call wrote, and the record's number after it.
        """
        now = ensure_aware_utc(now)
        number = _number("number", number)
        args = (_ns(namespace), storable("key", key), number, now)
        if expires_at is not None:
            expires_at = ensure_aware_utc(expires_at)
            if not now < expires_at:
                return False, number
        return self._advance(*args, expires_at, _optional(subject, "subject"))

    def forget(self, namespace: str, subject: str) -> int:
        """Delete every record of ``subject`` in the namespace, live or not; return how many."""
        found = lookup("subject", subject)
        return 0 if found is None else self._forget(_ns(namespace), found)

    def purge(self, namespace: str, *, now: datetime) -> int:
        """Delete the records of the namespace whose ``expires_at`` is before ``now``; return
        how many (Redis: 0, it forgets them by itself)."""
        return self._purge(_ns(namespace), ensure_aware_utc(now))

    # --- what a backend implements (arguments checked) ---------------------------------------

    @abc.abstractmethod
    def _insert(self, ns: str, key: str, record: Record, keep: int | None) -> None: ...

    @abc.abstractmethod
    def _get(self, ns: str, key: str, now: datetime) -> Record | None: ...

    @abc.abstractmethod
    def _take(
        self,
        ns: str,
        key: str,
        now: datetime,
        subject: str | None,
        tag: str | None,
        expired: bool,
        siblings: bool,
    ) -> Record | None: ...

    @abc.abstractmethod
    def _count(
        self,
        ns: str,
        key: str,
        now: datetime,
        expires_at: datetime | None,
        subject: str | None,
        create: bool,
    ) -> Record | None: ...

    @abc.abstractmethod
    def _advance(
        self,
        ns: str,
        key: str,
        number: int,
        now: datetime,
        expires_at: datetime | None,
        subject: str | None,
    ) -> tuple[bool, int]: ...

    @abc.abstractmethod
    def _forget(self, ns: str, subject: str) -> int: ...

    @abc.abstractmethod
    def _purge(self, ns: str, now: datetime) -> int: ...


def duplicate() -> StoreError:
    """The error of an insert onto a record that has not expired."""
    return StoreError("a record with this key exists already", reason="duplicate")


def _ns(namespace: object) -> str:
    if not isinstance(namespace, str) or _NAMESPACE.fullmatch(namespace) is None:
        raise ValueError("not a namespace")
    return namespace


def _optional(value: object, name: str, max_length: int = MAX_KEY) -> str | None:
    return None if value is None else storable(name, value, max_length)
