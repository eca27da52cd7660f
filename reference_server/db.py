"""The server's own data model (SQLAlchemy Core), beside the library's ``storno_`` tables.

Tables start with ``app_``. Ids are random UUIDs in canonical text form. Times are stored as
naive UTC and come back aware. Every multi-row change runs in one transaction, and driver
errors become :class:`storno_security.errors.StoreUnavailableError` or
:class:`~storno_security.errors.StoreError`, so the error map answers 503/500 without a trace.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from storno_security.errors import StoreError, StoreUnavailableError
from storno_security.stores.sql import create_engine, create_schema, read_transaction

__all__ = [
    "Database",
    "DuplicateRowError",
    "UtcDateTime",
    "app_metadata",
    "companies",
    "invoices",
    "memberships",
    "new_id",
    "organizations",
    "storage_credentials",
    "users",
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

users = sa.Table(
    "app_users",
    app_metadata,
    sa.Column("id", _ID, primary_key=True),
    # The normalised address (ACC-1); NULL once the account is anonymised (ACC-4).
    sa.Column("email", sa.String(320), unique=True, nullable=True),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    # NULL for accounts that only log in with Google or a passkey.
    sa.Column("password_hash", sa.String(128), nullable=True),
    sa.Column("google_subject", sa.String(255), unique=True, nullable=True),
    # The TOTP secret, sealed by the vault with the user id as associated data.
    sa.Column("totp_secret_sealed", sa.Text, nullable=True),
    sa.Column("totp_pending_sealed", sa.Text, nullable=True),
    sa.Column("mfa_enabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("password_changed_at", UtcDateTime, nullable=True),
    # Set when the user deletes the account: anonymised at once, removed after the grace period.
    sa.Column("deleted_at", UtcDateTime, nullable=True),
)

organizations = sa.Table(
    "app_organizations",
    app_metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("license_token", sa.Text, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
)

memberships = sa.Table(
    "app_memberships",
    app_metadata,
    sa.Column("user_id", _ID, sa.ForeignKey("app_users.id"), primary_key=True),
    sa.Column("organization_id", _ID, sa.ForeignKey("app_organizations.id"), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    # A custom permission set (JSON list of permission names), or NULL for the role's set.
    sa.Column("permissions", sa.JSON, nullable=True),
    sa.Column("is_default", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("deleted_at", UtcDateTime, nullable=True),
)

companies = sa.Table(
    "app_companies",
    app_metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("organization_id", _ID, sa.ForeignKey("app_organizations.id"), nullable=False),
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


def _private_sqlite_file(url: str) -> None:
    """Create a SQLite database file 0600 before SQLite does (it would follow the umask).

    The file holds password hashes and sealed secrets; SQLite gives its ``-wal`` and ``-shm``
    files the database file's permissions.
    """
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return
    path = Path(parsed.database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class DuplicateRowError(StoreError):
    """A write broke a unique or key constraint (e.g. an email registered concurrently).

    Callers that expect it (registration, a racing membership) answer 409; anywhere else it is
    a store error like any other (500).
    """

    reason = "duplicate"


class Database:
    """The engine plus transaction helpers that translate driver errors."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        _private_sqlite_file(url)
        self.engine = create_engine(url, **engine_kwargs)

    def create_schema(self) -> None:
        """Create the library's tables and the server's (idempotent).

        Raises:
            StoreUnavailableError: the database cannot be reached.
            StoreError: the schema cannot be created.
        """
        create_schema(self.engine)
        with self._translate():
            app_metadata.create_all(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self._translate(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only snapshot that takes no write lock (SQLite: a deferred ``BEGIN``)."""
        with read_transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sa.exc.IntegrityError as exc:
            raise DuplicateRowError("a unique or key constraint refused the write") from exc
        except (
            sa.exc.OperationalError,
            sa.exc.InterfaceError,
            sa.exc.DisconnectionError,
            sa.exc.TimeoutError,
        ) as exc:
            raise StoreUnavailableError("database unavailable") from exc
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError("database error") from exc

    def dispose(self) -> None:
        self.engine.dispose()


# Invitations to join an organization (tenancy): a membership exists only once the invited user
# accepts. ``user_id`` is NULL when the address was not registered (the row then holds no
# personal data and can never be accepted). No foreign keys: purging a user or an organization
# is never blocked by an invitation.
invitations = sa.Table(
    "app_invitations",
    app_metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("organization_id", _ID, nullable=False),
    sa.Column("user_id", _ID, nullable=True),
    sa.Column("role", sa.String(20), nullable=False),
    # A custom permission set (JSON list of permission names), or NULL for the role's set.
    sa.Column("permissions", sa.JSON, nullable=True),
    sa.Column("invited_by", _ID, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("accepted_at", UtcDateTime, nullable=True),
    sa.Column("declined_at", UtcDateTime, nullable=True),
    sa.Column("withdrawn_at", UtcDateTime, nullable=True),
    sa.Index("ix_app_invitations_org", "organization_id"),
    sa.Index("ix_app_invitations_user", "user_id"),
)
