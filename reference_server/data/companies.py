"""Companies of organizations (RBAC-1, RBAC-3, RBAC-4): soft-deleted, never shown again.

Every read and write but :meth:`Companies.lookup` is scoped to one organization and to live
rows (:class:`~reference_server.data.rows.ScopedRows`).
"""

from __future__ import annotations

import sqlalchemy as sa

from reference_server.data import tables
from reference_server.data.rows import ScopedRows
from storno_security.rbac import Company

__all__ = ["Companies"]

_C = tables.companies.c


class Companies(ScopedRows):
    table = tables.companies
    scope = "organization_id"

    def lookup(self, company_id: str) -> Company | None:
        """The company with this id, whatever its organization or state (RBAC-3 decides)."""
        with self._data.read() as conn:
            row = conn.execute(
                sa.select(_C.id, _C.organization_id, _C.deleted_at).where(_C.id == company_id)
            ).first()
        if row is None:
            return None
        return Company(
            company_id=row.id, organization_id=row.organization_id, deleted_at=row.deleted_at
        )

    def count_live(self, organization_id: str) -> int:
        """How many live companies the organization has (the plan's limit counts these)."""
        with self._data.read() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(tables.companies)
                .where(*self._live(organization_id))
            ).scalar_one()
        return int(count)
