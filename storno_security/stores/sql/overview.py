"""A user's own records in one ``SELECT``
(:class:`~storno_security.kit.storage.AccountOverviewStore`): the user, each membership with
its organization, whether a usable passkey exists and how many backup codes are left. What
``GET /me`` shows costs one statement instead of five; with the session's state in the same
statement (:class:`~storno_security.kit.storage.SessionOverviewStore`), an authenticated
``GET /me`` costs one.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from storno_security.accounts.model import UserAccount
from storno_security.errors import CorruptRecordError
from storno_security.kit.storage import AccountOverview
from storno_security.rbac.invitations import Organization
from storno_security.rbac.model import Membership
from storno_security.stores.sql._base import (
    _build,
    _check_key,
    _names_of,
    _Reader,
)
from storno_security.stores.sql.directory import memberships, organizations, users
from storno_security.stores.sql.mfa import mfa_backup_code_sets, mfa_backup_codes
from storno_security.stores.sql.passkeys import passkey_credentials
from storno_security.stores.sql.tokens import (
    SESSION_STATE_COLUMNS,
    SqlSessionStateStore,
    session_state_of,
    session_state_params,
)
from storno_security.tokens.storage import SessionState

__all__ = ["SqlAccountOverviewStore"]

_USER = tuple(c for c in users.c if c.computed is None)
_MEMBER = tuple(memberships.c)
_ORGANIZATION = tuple(c for c in organizations.c if c.key != "organization_id")


def _statement(*extra: sa.ColumnElement[Any]) -> sa.Select[Any]:
    user_id: sa.BindParameter[str] = sa.bindparam("user_id")
    codes, sets, passkeys = mfa_backup_codes.c, mfa_backup_code_sets.c, passkey_credentials.c
    current_set = sa.select(sets.set_id).where(sets.user_id == user_id).scalar_subquery()
    codes_left = (
        sa.select(sa.func.count())
        .where(codes.user_id == user_id, codes.used_at.is_(None), codes.set_id == current_set)
        .scalar_subquery()
    )
    has_passkeys = sa.exists().where(passkeys.user_id == user_id, passkeys.flagged_at.is_(None))
    joined = users.outerjoin(memberships, memberships.c.user_id == users.c.user_id).outerjoin(
        organizations, organizations.c.organization_id == memberships.c.organization_id
    )
    return (
        sa.select(
            *(c.label(f"u_{c.key}") for c in _USER),
            *(c.label(f"m_{c.key}") for c in _MEMBER),
            *(c.label(f"o_{c.key}") for c in _ORGANIZATION),
            has_passkeys.label("has_passkeys"),
            codes_left.label("codes_left"),
            *extra,
        )
        .select_from(joined)
        .where(users.c.user_id == user_id)
    )  # no ORDER BY: a user has a few memberships, sorted here, not by a sorter per read


def _fields(row: Any, prefix: str, columns: tuple[sa.Column[Any], ...]) -> dict[str, Any]:
    return {c.key: getattr(row, prefix + c.key) for c in columns}


def _session_overview_of(rows: list[Any]) -> tuple[SessionState, AccountOverview]:
    # every row carries the same session state: one statement reads one snapshot
    return session_state_of(rows[0]), _overview_of(rows)


def _overview_of(rows: list[Any]) -> AccountOverview:
    if len(rows) > 1:  # memberships oldest first (a row without one is alone: nothing to sort)
        rows = sorted(rows, key=lambda row: (row.m_joined_at, row.m_organization_id))
    first = rows[0]
    user = _build(UserAccount, "bad_user", _fields(first, "u_", _USER))
    found: list[Membership] = []
    by_id: dict[str, Organization] = {}
    for row in rows:
        if row.m_organization_id is None:  # the outer join found no membership
            continue
        fields = _fields(row, "m_", _MEMBER)
        fields.pop("joined_at")
        fields["permissions"] = _names_of(fields["permissions"])
        found.append(_build(Membership, "bad_membership", fields))
        if row.o_name is not None:
            organization = _fields(row, "o_", _ORGANIZATION)
            organization["organization_id"] = row.m_organization_id
            by_id[row.m_organization_id] = _build(Organization, "bad_organization", organization)
    return AccountOverview(
        user=user,
        memberships=tuple(found),
        organizations=MappingProxyType(by_id),  # kept and shared by the reader: read-only
        has_passkeys=bool(first.has_passkeys),
        backup_codes_left=int(first.codes_left or 0),
    )


class SqlAccountOverviewStore:
    """See :class:`~storno_security.kit.storage.AccountOverviewStore`: one ``SELECT`` that
    reads the tables of :class:`SqlDirectoryStore`, :class:`SqlPasskeyCredentialStore` and
    :class:`SqlBackupCodeStore` (so it must share their engine), with no transaction around
    it: one statement reads one snapshot.

    Args:
        engine: an engine from :func:`create_engine` whose schema exists (:func:`create_schema`).
    """

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._reader = _Reader(engine, _statement(), _overview_of)
        self._with_session = _Reader(
            engine, _statement(*SESSION_STATE_COLUMNS), _session_overview_of
        )
        self._session_only = _Reader(engine, sa.select(*SESSION_STATE_COLUMNS), session_state_of)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._engine.dialect.name})"

    def account_overview(self, user_id: str) -> AccountOverview | None:
        """See :meth:`~storno_security.kit.storage.AccountOverviewStore.account_overview`."""
        user_id = _check_key("user_id", user_id)
        return self._reader.collect({"user_id": user_id})

    def reads_session_state_of(self, store: object) -> bool:
        """See :meth:`~storno_security.kit.storage.SessionOverviewStore.reads_session_state_of`:
        a :class:`SqlSessionStateStore` over this very engine (another engine, even of the same
        URL, is not assumed to be the same database)."""
        return isinstance(store, SqlSessionStateStore) and store.engine is self._engine

    def session_overview(
        self, *, user_id: str, session_id: str
    ) -> tuple[SessionState, AccountOverview | None]:
        """See :meth:`~storno_security.kit.storage.SessionOverviewStore.session_overview`: one
        ``SELECT`` (a second, of the session state alone, only when the user is gone)."""
        params = session_state_params(user_id, session_id)
        found = self._with_session.collect(params)
        if found is not None:
            return found
        state = self._session_only.one_or_none(params)
        if state is None:  # pragma: no cover - reason: its SELECT has no FROM: always one row
            raise CorruptRecordError(reason="no_row")
        return state, None
