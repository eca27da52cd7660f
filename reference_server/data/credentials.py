"""Storage credentials of companies (VLT): the vault-sealed secret and its description, soft
deleted (RBAC-4) with the sealed value wiped. The sealing itself is the kit's
(:meth:`storno_security.kit.Kit.seal_secret`): this module stores and reads what it made."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import attrs
import sqlalchemy as sa

from reference_server.data import tables

if TYPE_CHECKING:
    from reference_server.data import ServerData

__all__ = ["Credential", "Credentials", "associated_data"]


def associated_data(credential_id: str, company_id: str) -> str:
    """VLT-2: a sealed secret opens only in its own row of its own company."""
    return f"app_storage_credentials:{credential_id}:{company_id}"


@attrs.frozen(kw_only=True)
class Credential:
    """A live storage credential (the sealed secret is never shown, only opened)."""

    id: str
    company_id: str
    provider: str
    name: str
    sealed: str = attrs.field(repr=False)
    created_at: datetime
    updated_at: datetime


_s = tables.storage_credentials.c
_COLUMNS = (_s.id, _s.company_id, _s.provider, _s.name, _s.sealed, _s.created_at, _s.updated_at)


def _live(company_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(_s.company_id == company_id, _s.deleted_at.is_(None))


class Credentials:
    def __init__(self, data: ServerData) -> None:
        self._data = data

    def list(self, company_id: str) -> list[Credential]:
        """The company's live credentials, oldest first."""
        query = sa.select(*_COLUMNS).where(_live(company_id)).order_by(_s.created_at, _s.id)
        with self._data.read() as conn:
            return [Credential(**row) for row in conn.execute(query).mappings()]

    def get(self, company_id: str, credential_id: str) -> Credential | None:
        """The live credential with this id in this company (else ``None``, as if unknown)."""
        query = sa.select(*_COLUMNS).where(_live(company_id), _s.id == credential_id)
        with self._data.read() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else Credential(**row)

    def add(
        self,
        *,
        credential_id: str,
        company_id: str,
        provider: str,
        name: str,
        sealed: str,
        created_by: str,
        now: datetime,
    ) -> Credential:
        """Store a new credential (the id was chosen before sealing: the seal names it)."""
        with self._data.transaction() as conn:
            conn.execute(
                tables.storage_credentials.insert().values(
                    id=credential_id,
                    company_id=company_id,
                    provider=provider,
                    name=name,
                    sealed=sealed,
                    created_by=created_by,
                    created_at=now,
                    updated_at=now,
                )
            )
        return Credential(
            id=credential_id,
            company_id=company_id,
            provider=provider,
            name=name,
            sealed=sealed,
            created_at=now,
            updated_at=now,
        )

    def replace(
        self,
        company_id: str,
        credential_id: str,
        *,
        sealed: str,
        name: str | None,
        now: datetime,
    ) -> Credential | None:
        """Replace the sealed secret (and the name when given) of a live credential; ``None``
        when it is gone (deleted meanwhile)."""
        values: dict[str, object] = {"sealed": sealed, "updated_at": now}
        if name is not None:
            values["name"] = name
        with self._data.transaction() as conn:
            changed = conn.execute(
                tables.storage_credentials.update()
                .where(_live(company_id), _s.id == credential_id)
                .values(**values)
            ).rowcount
        return self.get(company_id, credential_id) if changed == 1 else None

    def delete(self, company_id: str, credential_id: str, *, now: datetime) -> bool:
        """Soft-delete a live credential and wipe its sealed secret; whether one was."""
        with self._data.transaction() as conn:
            changed = conn.execute(
                tables.storage_credentials.update()
                .where(_live(company_id), _s.id == credential_id)
                .values(deleted_at=now, updated_at=now, sealed="")
            ).rowcount
        return bool(changed == 1)
