"""The server's own tables (SQLAlchemy Core), beside the library's ``storno_`` tables: the
e-invoicing data the reference server shows (companies, invoices, storage credentials) and the
license of each organization. Users, organizations, memberships and invitations are the
library's (:class:`storno_security.kit.DirectoryStore`).

Tables start with ``app_``. Ids are random UUIDs in canonical text form. Times are stored as
naive UTC and come back aware.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

__all__ = [
    "UtcDateTime",
    "app_metadata",
    "companies",
    "invoices",
    "new_id",
    "organization_licenses",
    "storage_credentials",
]


def new_id() -> str:
    """A fresh random id (UUID4, canonical text)."""
    return str(uuid.uuid4())


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC in Python, naive UTC in the database (microseconds kept on MariaDB)."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import DATETIME

            return dialect.type_descriptor(DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


app_metadata = sa.MetaData()

_ID = sa.String(36)


companies = sa.Table(
    "app_companies",
    app_metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("organization_id", _ID, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("vat_id", sa.String(32), nullable=True),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
    sa.Index("ix_app_companies_org", "organization_id"),
)

invoices = sa.Table(
    "app_invoices",
    app_metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("company_id", _ID, sa.ForeignKey("app_companies.id"), nullable=False),
    sa.Column("number", sa.String(64), nullable=False),
    sa.Column("customer", sa.String(200), nullable=False),
    # Minor units (cents) with an ISO 4217 code: no floats for money.
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("issue_date", sa.Date, nullable=False),
    sa.Column("created_by", _ID, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
    sa.Index("ix_app_invoices_company", "company_id"),
)

storage_credentials = sa.Table(
    "app_storage_credentials",
    app_metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("company_id", _ID, sa.ForeignKey("app_companies.id"), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    # The secret, sealed by the vault; associated data binds it to this row and company.
    sa.Column("sealed", sa.Text, nullable=False),
    sa.Column("created_by", _ID, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
    sa.Index("ix_app_storage_credentials_company", "company_id"),
)


# The license an organization installed (validated on read; the token is the vendor's JWT).
organization_licenses = sa.Table(
    "app_organization_licenses",
    app_metadata,
    sa.Column("organization_id", _ID, primary_key=True),
    sa.Column("license_token", sa.Text, nullable=False),
    sa.Column("installed_at", UtcDateTime, nullable=False),
)
