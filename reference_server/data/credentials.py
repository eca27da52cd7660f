"""Storage credentials of companies (VLT): the vault-sealed secret and its description, soft
deleted (RBAC-4) with the sealed value wiped. The sealing itself is the kit's
(:meth:`storno_security.kit.Kit.seal_secret`): this module stores and reads what it made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from reference_server.data import tables
from reference_server.data.rows import ScopedRows

__all__ = ["Credentials", "associated_data"]


def associated_data(credential_id: str, company_id: str) -> str:
    """VLT-2: a sealed secret opens only in its own row of its own company."""
    return f"app_storage_credentials:{credential_id}:{company_id}"


class Credentials(ScopedRows):
    """A company's live storage credentials (``get``, ``change`` as :class:`ScopedRows`)."""

    table = tables.storage_credentials
    scope = "company_id"

    def all(self, company_id: str) -> list[dict[str, Any]]:
        """Every live credential of the company, oldest first.

        Raises:
            StoreError: the database failed.
        """
        c = self.table.c
        query = sa.select(self.table).where(*self._live(company_id)).order_by(c.created_at, c.id)
        with self._data.read() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def add(
        self, company_id: str, credential_id: str, values: dict[str, Any], *, now: datetime
    ) -> dict[str, Any]:
        """Store a new credential under ``credential_id``, chosen before sealing (the seal
        names it); the stored row.

        Raises:
            StoreError: the database failed; nothing was written.
        """
        row = {**values, "id": credential_id, "company_id": company_id}
        with self._data.transaction() as conn:
            conn.execute(self.table.insert().values(**row, created_at=now, updated_at=now))
        return {**row, "created_at": now, "updated_at": now, "deleted_at": None}

    def remove(self, scope_id: str, row_id: str, *, now: datetime) -> bool:
        """Soft-delete a live credential and wipe its sealed secret; whether one was.

        Raises:
            StoreError: the database failed; nothing was written.
        """
        with self._data.transaction() as conn:
            query = self.table.update().where(*self._live(scope_id, row_id))
            changed = query.values(deleted_at=now, updated_at=now, sealed="")
            return bool(conn.execute(changed).rowcount)
