"""The server's own data, behind one module: its tables (:mod:`.tables`), the engine it shares
with the library's SQL stores, transactions that translate driver errors, and one object per
area (companies, invoices, storage credentials, licenses) that resources call. No SQL lives in
a resource module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reference_server.data import tables
from reference_server.data.companies import Companies
from reference_server.data.credentials import Credentials
from reference_server.data.invoices import Invoices
from reference_server.data.licenses import Licenses
from storno_security.errors import StoreError, StoreUnavailableError
from storno_security.rbac import Company
from storno_security.stores.sql import create_engine, create_schema, read_transaction

__all__ = ["DuplicateRowError", "ServerData", "tables"]


class DuplicateRowError(StoreError):
    """A write broke a unique or key constraint (a row created concurrently)."""

    reason = "duplicate"


def _private_sqlite_file(url: str) -> None:
    """Create a SQLite database file 0600 before SQLite does (it would follow the umask): it
    holds password hashes and sealed secrets; the ``-wal``/``-shm`` files inherit its mode."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return
    path = Path(parsed.database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class ServerData:
    """The engine (shared with the library's stores), transactions, and the data areas."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        _private_sqlite_file(url)
        self.engine = create_engine(url, **engine_kwargs)
        self.companies = Companies(self)
        self.invoices = Invoices(self)
        self.credentials = Credentials(self)
        self.licenses = Licenses(self)

    def create_schema(self) -> None:
        """Create the library's tables and the server's (idempotent).

        Raises:
            StoreUnavailableError: the database cannot be reached.
            StoreError: the schema cannot be created.
        """
        create_schema(self.engine)
        with self._translate():
            tables.app_metadata.create_all(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self._translate(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only snapshot that takes no write lock (SQLite: a deferred ``BEGIN``)."""
        with self._translate(), read_transaction(self.engine) as conn:
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

    def company_lookup(self, company_id: str) -> Company | None:
        """The company for ``X-Company`` resolution (RBAC-3), whatever its organization."""
        return self.companies.lookup(company_id)

    def delete_organizations(self, organization_ids: list[str] | tuple[str, ...]) -> int:
        """Delete the server's rows of organizations the library purged (no member left).

        Raises:
            StoreError: the database failed; run the purge again.
        """
        if not organization_ids:
            return 0
        c, i, s, lic = (
            tables.companies,
            tables.invoices,
            tables.storage_credentials,
            tables.organization_licenses,
        )
        with self.transaction() as conn:
            ids = sa.select(c.c.id).where(c.c.organization_id.in_(organization_ids))
            count = conn.execute(i.delete().where(i.c.company_id.in_(ids))).rowcount
            count += conn.execute(s.delete().where(s.c.company_id.in_(ids))).rowcount
            count += conn.execute(
                c.delete().where(c.c.organization_id.in_(organization_ids))
            ).rowcount
            count += conn.execute(
                lic.delete().where(lic.c.organization_id.in_(organization_ids))
            ).rowcount
        return int(count)

    def forget_user(self, user_id: str) -> int:
        """Clear the user's id from the server's rows (``created_by``) at the purge.

        Raises:
            StoreError: the database failed.
        """
        count = 0
        with self.transaction() as conn:
            for table in (tables.invoices, tables.storage_credentials):
                count += conn.execute(
                    table.update().where(table.c.created_by == user_id).values(created_by=None)
                ).rowcount
        return int(count)

    def ping(self) -> bool:
        """Whether the database answers now."""
        try:
            with self.read() as conn:
                conn.execute(sa.text("SELECT 1"))
        except StoreError:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()
