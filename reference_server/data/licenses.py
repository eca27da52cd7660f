"""The license each organization installed: the vendor's token, verified again on every read
(a key or instance change turns it invalid without touching this table)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from reference_server.data import tables

if TYPE_CHECKING:
    from reference_server.data import ServerData

__all__ = ["Licenses"]

_l = tables.organization_licenses.c


class Licenses:
    def __init__(self, data: ServerData) -> None:
        self._data = data

    def token(self, organization_id: str) -> str | None:
        """The installed license token of the organization, if any."""
        with self._data.read() as conn:
            found = conn.execute(
                sa.select(_l.license_token).where(_l.organization_id == organization_id)
            ).scalar_one_or_none()
        return None if found is None else str(found)

    def install(self, organization_id: str, token: str, *, now: datetime) -> None:
        """Install ``token`` for the organization, replacing the one before (verify first)."""
        from reference_server.data import DuplicateRowError

        values = {"license_token": token, "installed_at": now}
        for _ in range(2):  # a concurrent first install wins the insert; then update theirs
            try:
                with self._data.transaction() as conn:
                    changed = conn.execute(
                        tables.organization_licenses.update()
                        .where(_l.organization_id == organization_id)
                        .values(**values)
                    ).rowcount
                    if changed == 0:
                        conn.execute(
                            tables.organization_licenses.insert().values(
                                organization_id=organization_id, **values
                            )
                        )
                return
            except DuplicateRowError:
                continue
        raise DuplicateRowError("the license row kept changing")
