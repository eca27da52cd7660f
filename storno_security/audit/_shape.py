"""Reading another capability's objects by shape, with clear errors (capabilities do not import
each other). Only named, typed attributes are read; an object's ``repr`` is never used, and no
error message quotes a value (it may be a secret)."""

from __future__ import annotations

import enum
import hashlib
import re
from datetime import datetime
from typing import Final

import attrs

from storno_security.audit.events import Outcome, Scalar, SecurityEvent, SecurityEventType
from storno_security.errors import StornoSecurityError

_REASON_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LABEL_RE: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.:/-]{0,99}")


def _missing(what: str, name: str) -> TypeError:
    return TypeError(f"{what} has no {name!r} attribute: not the expected object")


def _attr(obj: object, name: str, what: str) -> object:
    try:
        return getattr(obj, name)
    except AttributeError:
        raise _missing(what, name) from None


def _wrong(what: str, name: str, kind: str) -> TypeError:
    return TypeError(f"{what}.{name} must be {kind}")


def text(obj: object, name: str, what: str) -> str:
    """A required ``str`` attribute."""
    value = _attr(obj, name, what)
    if not isinstance(value, str):
        raise _wrong(what, name, "a str")
    return str(value)


def optional_text(obj: object, name: str, what: str) -> str | None:
    """An optional ``str`` attribute."""
    value = _attr(obj, name, what)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _wrong(what, name, "a str or None")
    return str(value)


def integer(obj: object, name: str, what: str) -> int:
    """A required ``int`` attribute (not a bool)."""
    value = _attr(obj, name, what)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(what, name, "an int")
    return int(value)


def optional_integer(obj: object, name: str, what: str) -> int | None:
    """An optional ``int`` attribute (not a bool)."""
    value = _attr(obj, name, what)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong(what, name, "an int or None")
    return int(value)


def flag(obj: object, name: str, what: str) -> bool:
    """A required ``bool`` attribute."""
    value = _attr(obj, name, what)
    if not isinstance(value, bool):
        raise _wrong(what, name, "a bool")
    return value


def moment(obj: object, name: str, what: str) -> datetime:
    """A required ``datetime`` attribute (its awareness is checked by the event)."""
    value = _attr(obj, name, what)
    if not isinstance(value, datetime):
        raise _wrong(what, name, "a datetime")
    return value


def raw_bytes(obj: object, name: str, what: str) -> bytes:
    """A required ``bytes`` attribute."""
    value = _attr(obj, name, what)
    if not isinstance(value, bytes):
        raise _wrong(what, name, "bytes")
    return bytes(value)


def member(obj: object, name: str, what: str) -> object:
    """A required attribute of any type (a nested object, read by shape in turn)."""
    value = _attr(obj, name, what)
    if value is None:
        raise _wrong(what, name, "set")
    return value


def label(obj: object, name: str, what: str, *, optional: bool = False) -> str | None:
    """A short label attribute (see :func:`check_label`); ``None`` only when ``optional``."""
    value = _attr(obj, name, what)
    if value is None and optional:
        return None
    return check_label(value, f"{what}.{name}")


def check_label(value: object, name: str) -> str:
    """A short label: a ``str`` (a ``StrEnum`` too) or an enum whose value is one
    (``ApiKeyScope.READ``), of ``[A-Za-z0-9_.:/-]`` (not starting with ``.``, ``:`` or ``/``),
    at most 100 characters. Anything else is refused, so free text never slips into an event
    as a label.

    Raises:
        TypeError: not a str nor an enum of one, or a str that is not such a label.
    """
    if isinstance(value, enum.Enum) and not isinstance(value, str):
        value = value.value
    if not isinstance(value, str) or not _LABEL_RE.fullmatch(value):
        raise TypeError(f"{name} must be a short label (or an enum of one)")
    return str(value)


def fingerprint(data: bytes) -> str:
    """SHA-256 (hex) of an opaque id such as a WebAuthn credential id: how stores key it."""
    return hashlib.sha256(data).hexdigest()


def reason_of(error: object) -> str:
    """The non-secret ``reason`` of a library error; ``other`` when it is not a plain reason
    word. The message and the ``repr`` are never read.

    Raises:
        TypeError: ``error`` is not a :class:`~storno_security.errors.StornoSecurityError`.
    """
    if not isinstance(error, StornoSecurityError):
        raise TypeError("error must be a StornoSecurityError")
    reason = getattr(error, "reason", None)
    if isinstance(reason, str) and _REASON_RE.fullmatch(reason):
        return reason
    return "other"


@attrs.frozen
class RequestContext:
    """What the request knows and the mapped object does not: passed through to the event
    unchecked (the event validates every field)."""

    organization_id: str | None = None
    company_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


def make_event(
    event_type: SecurityEventType,
    *,
    at: datetime,
    outcome: Outcome = Outcome.SUCCESS,
    actor_id: str | None = None,
    subject_id: str | None = None,
    context: RequestContext,
    details: dict[str, Scalar],
) -> SecurityEvent:
    """A :class:`SecurityEvent`; the subject is dropped when it is the actor, and details that
    are ``None`` are left out."""
    return SecurityEvent(
        type=event_type,
        at=at,
        outcome=outcome,
        actor_id=actor_id,
        subject_id=None if subject_id == actor_id else subject_id,
        organization_id=context.organization_id,
        company_id=context.company_id,
        ip=context.ip,
        user_agent=context.user_agent,
        details={k: v for k, v in details.items() if v is not None},
    )
