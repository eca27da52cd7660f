"""Read-only queries for the GDPR export (ACC-4): the server's records a user created, and the
live companies of an organization, with exactly the columns the export shows (never a sealed
secret). Whether the user may still see a record's content is the kit's decision
(:meth:`storno_security.kit.Kit.authorize`), not this module's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from reference_server.data import tables

if TYPE_CHECKING:
    from reference_server.data import ServerData

__all__ = ["credentials_created_by", "invoices_created_by", "live_companies"]


def _rows(data: ServerData, query: sa.Select[Any]) -> list[dict[str, Any]]:
    with data.read() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def invoices_created_by(data: ServerData, user_id: str) -> list[dict[str, Any]]:
    """Every invoice the user created, soft-deleted ones included, oldest first."""
    i = tables.invoices.c
    return _rows(
        data,
        sa.select(
            i.id,
            i.company_id,
            i.number,
            i.customer,
            i.amount_minor,
            i.currency,
            i.issue_date,
            i.created_at,
            i.updated_at,
            i.deleted_at,
        )
        .where(i.created_by == user_id)
        .order_by(i.created_at, i.id),
    )


def credentials_created_by(data: ServerData, user_id: str) -> list[dict[str, Any]]:
    """Every storage credential the user created (never the sealed secret), oldest first."""
    s = tables.storage_credentials.c
    return _rows(
        data,
        sa.select(s.id, s.company_id, s.provider, s.name, s.created_at, s.updated_at, s.deleted_at)
        .where(s.created_by == user_id)
        .order_by(s.created_at, s.id),
    )


def live_companies(data: ServerData, organization_id: str) -> list[dict[str, Any]]:
    """The organization's companies that are not soft-deleted, oldest first."""
    c = tables.companies.c
    return _rows(
        data,
        sa.select(c.id, c.name, c.vat_id, c.country, c.created_at)
        .where(c.organization_id == organization_id, c.deleted_at.is_(None))
        .order_by(c.created_at, c.id),
    )
