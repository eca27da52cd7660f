"""Re-sealing every vault-sealed value under the active key (``storno-security vault``): the
TOTP secrets of accounts (the library's ``storno_users``) and the storage credentials (the
server's own table). One compare-and-set ``UPDATE`` per row, so a value changed meanwhile is
never overwritten."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
import sqlalchemy as sa

from reference_server.data import tables
from storno_security.errors import InvalidCiphertextError
from storno_security.stores.sql import users as library_users
from storno_security.vault import VaultKeyRing

if TYPE_CHECKING:
    from reference_server.data import ServerData

__all__ = ["ResealReport", "SealedColumn", "reseal", "still_sealed_under_old_keys"]


@attrs.frozen
class SealedColumn:
    """A column holding vault-sealed values, and how to rebuild each value's associated data.

    ``associated_data`` is ``None`` for values that cannot be re-sealed (their associated data
    is not known here): rotation clears them instead.
    """

    table: sa.Table
    column: str
    associated_data: Callable[[sa.RowMapping], str] | None
    extra_columns: tuple[str, ...] = ()

    @property
    def key(self) -> sa.ColumnElement[Any]:
        """The row's id column (labelled ``id``)."""
        name = "user_id" if "user_id" in self.table.c and "id" not in self.table.c else "id"
        return self.table.c[name]


def _sealed_columns() -> tuple[SealedColumn, ...]:
    return (
        # The kit binds a TOTP secret to its account (Kit.totp_associated_data).
        SealedColumn(
            library_users,
            "totp_secret_sealed",
            lambda row: f"storno_users:{row['id']}:totp_secret",
        ),
        # Enrolments not yet confirmed: cleared on rotation; the user starts the setup again.
        SealedColumn(library_users, "totp_pending_sealed", None),
        SealedColumn(
            tables.storage_credentials,
            "sealed",
            lambda row: f"app_storage_credentials:{row['id']}:{row['company_id']}",
            ("company_id",),
        ),
    )


def _holds_sealed(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """Rows that hold a sealed value: a deleted storage credential keeps ``sealed = ""`` (its
    secret wiped), which is not a value to re-seal nor one "that no key opens"."""
    return sa.and_(column.is_not(None), column != "")


@attrs.define
class ResealReport:
    resealed: int = 0
    current: int = 0
    cleared: int = 0
    changed_meanwhile: int = 0
    unreadable: int = 0


def reseal(
    database: ServerData,
    ring: VaultKeyRing,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, ResealReport]:
    """Re-seal every value not under the active key, one compare-and-set UPDATE per row;
    ``progress(column, done, total)`` hears of each row."""
    reports: dict[str, ResealReport] = {}
    for spec in _sealed_columns():
        report = reports.setdefault(f"{spec.table.name}.{spec.column}", ResealReport())
        column = spec.table.c[spec.column]
        wanted = [
            spec.key.label("id"),
            column,
            *(spec.table.c[name] for name in spec.extra_columns),
        ]
        with database.transaction() as conn:
            rows = conn.execute(sa.select(*wanted).where(_holds_sealed(column))).mappings().all()
        for done, row in enumerate(rows, start=1):
            if progress is not None:
                progress(f"{spec.table.name}.{spec.column}", done, len(rows))
            old = row[spec.column]
            try:
                if not ring.needs_rotation(old):
                    report.current += 1
                    continue
                new = (
                    None
                    if spec.associated_data is None
                    else ring.rotate(old, associated_data=spec.associated_data(row))
                )
            except InvalidCiphertextError:
                report.unreadable += 1
                continue
            with database.transaction() as conn:
                updated = conn.execute(
                    spec.table.update()
                    .where(spec.key == row["id"], column == old)
                    .values({spec.column: new})
                ).rowcount
            if updated != 1:
                report.changed_meanwhile += 1
            elif new is None:
                report.cleared += 1
            else:
                report.resealed += 1
    return reports


def still_sealed_under_old_keys(database: ServerData, ring: VaultKeyRing) -> int:
    """How many stored values an old key still seals (unreadable ones are not counted)."""
    waiting = 0
    for spec in _sealed_columns():
        column = spec.table.c[spec.column]
        with database.read() as conn:
            for value in conn.execute(sa.select(column).where(_holds_sealed(column))).scalars():
                try:
                    waiting += ring.needs_rotation(value)
                except InvalidCiphertextError:
                    continue
    return waiting
