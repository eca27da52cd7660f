"""Companies of organizations (RBAC-1, RBAC-3, RBAC-4): soft-deleted, never shown again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from reference_server.data import tables
from storno_security.rbac import Company

if TYPE_CHECKING:
    from reference_server.data import ServerData

__all__ = ["Companies"]


class Companies:
    def __init__(self, data: ServerData) -> None:
        self._data = data

    def lookup(self, company_id: str) -> Company | None:
        """The company with this id, whatever its organization or state (RBAC-3 decides)."""
        c = tables.companies.c
        with self._data.read() as conn:
            row = conn.execute(
                sa.select(c.id, c.organization_id, c.deleted_at).where(c.id == company_id)
            ).first()
        if row is None:
            return None
        return Company(
            company_id=row.id, organization_id=row.organization_id, deleted_at=row.deleted_at
        )

    def count_live(self, organization_id: str) -> int:
        """How many live companies the organization has (the plan's limit counts these)."""
        c = tables.companies.c
        with self._data.read() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(tables.companies)
                .where(c.organization_id == organization_id, c.deleted_at.is_(None))
            ).scalar_one()
        return int(count)
