"""The audit policy: how long events are kept (ACC-3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

__all__ = ["AuditPolicy"]


def _retention(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, timedelta):
        raise TypeError("retention must be a timedelta")
    if not timedelta(days=1) <= value <= timedelta(days=3660):
        raise ValueError("retention must be between 1 day and 10 years")


@attrs.frozen(kw_only=True)
class AuditPolicy:
    """How security events are kept.

    Attributes:
        retention: events older than this are deleted by
            :meth:`~storno_security.audit.AuditLog.purge_expired`. Default 183 days (six
            months, ACC-3).
    """

    retention: timedelta = attrs.field(default=timedelta(days=183), validator=_retention)
