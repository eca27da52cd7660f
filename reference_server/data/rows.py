"""Soft-deleted rows that belong to one scope (an organization's companies, a company's
invoices): every read and write names the scope and sees only live rows, so a row of another
scope, a deleted one and an unknown id are alike: not found (RBAC-3, RBAC-4).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from reference_server.data import tables
from reference_server.data.paging import Page, PageRequest

if TYPE_CHECKING:
    from reference_server.data import ServerData

__all__ = ["ScopedRows"]


class ScopedRows:
    """The live rows of ``table`` whose ``scope`` column names the scope. A table with an
    ``updated_at`` column has it set on every write."""

    table: ClassVar[sa.Table]
    scope: ClassVar[str]

    def __init__(self, data: ServerData) -> None:
        self._data = data

    def _live(self, scope_id: str, row_id: str | None = None) -> list[sa.ColumnElement[bool]]:
        c = self.table.c
        where = [c[self.scope] == scope_id, c.deleted_at.is_(None)]
        return where if row_id is None else [*where, c.id == row_id]

    def _stamped(self, values: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        return {**values, "updated_at": now} if "updated_at" in self.table.c else dict(values)

    def list_page(self, scope_id: str, page: PageRequest) -> Page[dict[str, Any]]:
        """A page of the scope's live rows, oldest first.

        Raises:
            StoreError: the database failed.
        """
        with self._data.read() as conn:
            rows = conn.execute(page.select(self.table, *self._live(scope_id))).mappings()
            return page.rows([dict(row) for row in rows])

    def create(self, scope_id: str, values: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
        """Add a row to the scope; the stored row.

        Raises:
            StoreError: the database failed; nothing was written.
        """
        row_id = tables.new_id()
        columns = {**self._stamped(values, now), "id": row_id, self.scope: scope_id}
        with self._data.transaction() as conn:
            conn.execute(self.table.insert().values(**columns, created_at=now))
            query = sa.select(self.table).where(self.table.c.id == row_id)
            return dict(conn.execute(query).mappings().one())

    def get(self, scope_id: str, row_id: str) -> dict[str, Any] | None:
        """The live row of the scope, or ``None``.

        Raises:
            StoreError: the database failed.
        """
        with self._data.read() as conn:
            query = sa.select(self.table).where(*self._live(scope_id, row_id))
            row = conn.execute(query).mappings().first()
        return None if row is None else dict(row)

    def change(
        self, scope_id: str, row_id: str, changes: Mapping[str, Any], *, now: datetime
    ) -> dict[str, Any] | None:
        """Change a live row of the scope; the row after, or ``None`` (not found).

        Raises:
            StoreError: the database failed; nothing was written.
        """
        where = self._live(scope_id, row_id)
        with self._data.transaction() as conn:
            changed = self.table.update().where(*where).values(**self._stamped(changes, now))
            if conn.execute(changed).rowcount != 1:
                return None
            return dict(conn.execute(sa.select(self.table).where(*where)).mappings().one())

    def remove(self, scope_id: str, row_id: str, *, now: datetime) -> bool:
        """Soft-delete a live row of the scope; whether one was.

        Raises:
            StoreError: the database failed; nothing was written.
        """
        with self._data.transaction() as conn:
            query = self.table.update().where(*self._live(scope_id, row_id))
            return bool(conn.execute(query.values(deleted_at=now)).rowcount)
