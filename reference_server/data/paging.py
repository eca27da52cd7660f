"""Keyset paging for the server's lists: rows in ``(created_at, id)`` order, a page of at most
``limit`` of them, and an opaque cursor naming the last row of a page.

A cursor is base64url of ``<RFC 3339 time>|<canonical UUID>``; anything else (including a time
with no UTC value at the edges of the calendar) is refused as :class:`PageError` naming the
parameter, never passed to the database.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import attrs
import sqlalchemy as sa

from storno_security.rbac import canonical_uuid

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "PageError", "PageRequest", "encode_cursor"]

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 100

_LIMIT = re.compile(r"\d{1,4}")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,200}")


class PageError(ValueError):
    """A ``limit`` or ``cursor`` this server would not produce."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def encode_cursor(created_at: datetime, row_id: str) -> str:
    stamp = created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return base64.urlsafe_b64encode(f"{stamp}|{row_id}".encode()).decode("ascii").rstrip("=")


def _decode_cursor(raw: str) -> tuple[datetime, str]:
    refused = PageError("cursor", "'cursor' is not a cursor this server returned.")
    if not _CURSOR.fullmatch(raw):
        raise refused
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        stamp, _, row_id = text.partition("|")
        created_at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if created_at.tzinfo is None or canonical_uuid(row_id) != row_id:
            raise refused
        # Near the ends of the calendar the UTC value does not exist.
        return created_at.astimezone(UTC), row_id
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
        raise refused from None


@attrs.frozen
class Page(Generic[T]):
    """One page: the items and the cursor of the next page (``None`` on the last one)."""

    items: list[T]
    next_cursor: str | None


@attrs.frozen
class PageRequest:
    """``limit`` (1 to 100) and the position after which the page starts."""

    limit: int = DEFAULT_LIMIT
    after: tuple[datetime, str] | None = None

    @classmethod
    def parse(cls, limit: str | None, cursor: str | None) -> PageRequest:
        """From the query string's ``limit`` and ``cursor``.

        Raises:
            PageError: either is malformed (``field`` names which).
        """
        size = DEFAULT_LIMIT
        if limit is not None:
            if not _LIMIT.fullmatch(limit) or not 1 <= int(limit) <= MAX_LIMIT:
                raise PageError("limit", f"'limit' must be an integer from 1 to {MAX_LIMIT}.")
            size = int(limit)
        return cls(size, None if cursor is None else _decode_cursor(cursor))

    def where(self, table: sa.Table) -> sa.ColumnElement[bool]:
        """The rows strictly after the cursor, in ``(created_at, id)`` order."""
        if self.after is None:
            return sa.true()
        created_at, row_id = self.after
        return sa.or_(
            table.c.created_at > created_at,
            sa.and_(table.c.created_at == created_at, table.c.id > row_id),
        )

    def select(self, table: sa.Table, *conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
        """The query of one page (one row more than ``limit``, to know if another follows)."""
        return (
            sa.select(table)
            .where(*conditions, self.where(table))
            .order_by(table.c.created_at, table.c.id)
            .limit(self.limit + 1)
        )

    def rows(self, rows: Sequence[dict[str, Any]]) -> Page[dict[str, Any]]:
        """The page of rows fetched by :meth:`select`."""
        return self.cut(list(rows), lambda row: (row["created_at"], row["id"]))

    def of(self, items: Iterable[T], key: Callable[[T], tuple[datetime, str]]) -> Page[T]:
        """The page of an in-memory list (the library's invitations)."""
        ordered = sorted(items, key=key)
        if self.after is not None:
            ordered = [item for item in ordered if key(item) > self.after]
        return self.cut(ordered[: self.limit + 1], key)

    def cut(self, items: list[T], key: Callable[[T], tuple[datetime, str]]) -> Page[T]:
        if len(items) <= self.limit:
            return Page(items, None)
        kept = items[: self.limit]
        return Page(kept, encode_cursor(*key(kept[-1])))
