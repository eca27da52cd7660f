"""GDPR (ACC-4): export all of a user's data, delete the account, purge after the grace period.

* :func:`export_user_data` gathers everything the server and the library hold about a user, as
  JSON-ready values: never a secret, a hash or a sealed value.
* :func:`delete_account` anonymises the account at once (email, name, password hash, TOTP
  secrets and Google link cleared, ``deleted_at`` set; an organization of which the user is the
  only live member is renamed :data:`DELETED_ORGANIZATION_NAME`), revokes every credential
  (sessions, API keys, passkeys, backup codes, reset tokens), then deletes the library's rows
  keyed by the user (refresh families and tokens, API keys with the names the user chose, MFA
  and passkey state, reset tokens) but the session epoch, and pseudonymises the audit trail.
* :func:`purge_deleted_accounts` hard-deletes accounts whose grace period has ended (run by the
  ``storno-security`` CLI from a scheduled job): after it, no row anywhere holds the user's id
  but the audit events, which hold the pseudonym.

Why the library rows go at deletion, not at purge: audit events keep ids in their details
(``details.key_ids`` of an API key event, ``details.session_ids`` of a revocation). While
``storno_api_keys`` or ``storno_refresh_families`` still map those ids to the user's id, one
join re-identifies a pseudonymised event; and a refresh token replayed later (an old device, a
thief) would make the session manager record ``session.token_reuse_detected`` under the real
id, after the pseudonymisation. Deleted, the token is merely unknown. The session epoch stays
until the purge: it is what refuses the access tokens issued before the deletion.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from reference_server import db
from reference_server.context import membership_from_row
from reference_server.errors import ApiError
from reference_server.http import iso
from reference_server.services import Services
from storno_security.audit import (
    MAX_QUERY_LIMIT,
    AuditCursor,
    SecurityEventType,
    event_to_dict,
    pseudonym,
)
from storno_security.errors import CompanyNotFoundError, PermissionDeniedError
from storno_security.rbac import Company, Membership, Permission, Principal, Role, authorize
from storno_security.stores.sql import (
    api_keys,
    audit_events,
    mfa_backup_code_sets,
    mfa_backup_codes,
    mfa_challenges,
    mfa_failures,
    mfa_step_up_tokens,
    mfa_totp_steps,
    passkey_challenges,
    passkey_credentials,
    passkey_user_handles,
    password_reset_tokens,
    password_reset_users,
    refresh_families,
    refresh_tokens,
    session_epochs,
)

__all__ = [
    "DELETED_ORGANIZATION_NAME",
    "OwnershipTransferRequiredError",
    "delete_account",
    "export_user_data",
    "owned_organizations_with_members",
    "purge_deleted_accounts",
]


#: The name an organization takes when its only live member deletes the account: registration
#: names it after the person.
DELETED_ORGANIZATION_NAME = "Deleted organization"


class OwnershipTransferRequiredError(ApiError):
    """The user owns an organization that has other members: transfer ownership first."""

    def __init__(self, organization_ids: list[str]) -> None:
        super().__init__(
            409,
            "ownership_transfer_required",
            "Transfer the ownership of your organization to another member before deleting "
            "your account.",
            extra={"organization_ids": organization_ids},
        )


# --- export ----------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _audit_events_of(services: Services, user_id: str) -> list[dict[str, Any]]:
    """Events the user acted in (through the store's query API) and events about the user
    acted by someone else (read from the audit table: the store has no subject filter)."""
    out: list[dict[str, Any]] = []
    cursor: AuditCursor | None = None
    while True:
        page = services.audit.store.query(
            organization_id=None, actor_id=user_id, cursor=cursor, limit=MAX_QUERY_LIMIT
        )
        out.extend(event_to_dict(event) for event in page)
        if len(page) < MAX_QUERY_LIMIT:
            break
        cursor = AuditCursor.after(page[-1])
    a = audit_events.c
    with services.db.read() as conn:
        rows = conn.execute(
            sa.select(audit_events)
            .where(
                a.subject_id == user_id,
                sa.or_(a.actor_id.is_(None), a.actor_id != user_id),
            )
            .order_by(a.at.desc(), a.event_id.desc())
        ).mappings()
        for row in rows:
            out.append(
                {
                    "event_id": row["event_id"],
                    "type": row["event_type"],
                    "at": iso(row["at"]),
                    "outcome": row["outcome"],
                    "actor_id": row["actor_id"],
                    "subject_id": row["subject_id"],
                    "organization_id": row["organization_id"],
                    "company_id": row["company_id"],
                    "ip": None,  # another person's address: not the user's data
                    "user_agent": None,
                }
            )
    out.sort(key=lambda event: (event["at"], event["event_id"]), reverse=True)
    return out


def _live_session_count(services: Services, user_id: str, now: datetime) -> int:
    f = refresh_families.c
    with services.db.read() as conn:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(refresh_families)
            .where(f.user_id == user_id, f.revoked_at.is_(None), f.expires_at > now)
        ).scalar_one()
    return int(count)


class _CompanyAccess:
    """Whether the user may still see a company's records, decided by the library's RBAC
    (:func:`storno_security.rbac.authorize`) on the user's live membership, as the API would:
    not after leaving the organization, not without the permission, not for a soft-deleted
    company (RBAC-3, RBAC-4)."""

    def __init__(self, conn: sa.Connection, user_id: str, live: dict[str, Membership]) -> None:
        self._conn = conn
        self._user_id = user_id
        self._live = live
        self._decided: dict[tuple[str, Permission], bool] = {}

    def __call__(self, company_id: str, permission: Permission) -> bool:
        key = (company_id, permission)
        if key not in self._decided:
            self._decided[key] = self._decide(company_id, permission)
        return self._decided[key]

    def _decide(self, company_id: str, permission: Permission) -> bool:
        c = db.companies.c
        row = (
            self._conn.execute(
                sa.select(c.id, c.organization_id, c.deleted_at).where(c.id == company_id)
            )
            .mappings()
            .first()
        )
        if row is None:
            return False
        organization_id = row["organization_id"]
        try:
            authorize(
                Principal.user(self._user_id, organization_id=organization_id),
                permission,
                organization_id=organization_id,
                membership=self._live.get(organization_id),
                company=Company(
                    company_id=row["id"],
                    organization_id=organization_id,
                    deleted_at=row["deleted_at"],
                ),
            )
        except (PermissionDeniedError, CompanyNotFoundError):
            return False
        return True


def _record(row: sa.RowMapping, *, visible: bool, content: dict[str, Any]) -> dict[str, Any]:
    """A record the user created: its content only while the user may still see it; else only
    that the user created it, and when (``content_withheld``)."""
    out: dict[str, Any] = {
        "id": row["id"],
        "created_at": iso(row["created_at"]),
        "deleted_at": iso(row["deleted_at"]),
        "content_withheld": not visible,
    }
    if visible:
        out.update(content)
    return out


def export_user_data(services: Services, user_id: str) -> dict[str, Any]:
    """Everything held about a live user, as JSON-ready values (ACC-4).

    Never includes a password hash, a sealed TOTP secret, a key hash, a token or a stored
    credential's secret: only their existence and metadata. Soft-deleted rows still held about
    the user are included, with ``deleted_at``: memberships the user was removed from, invoices
    and storage credentials the user created and someone deleted. A record the user created
    in an organization the user no longer belongs to, in a soft-deleted company, or without the
    permission to see it any more is exported without its content (``content_withheld``): it
    is the organization's data now, and the export must not be a way around RBAC.

    Raises:
        ApiError: 404 when the user does not exist (or is deleted).
        StoreError: a store failed.
    """
    now = services.clock.now()
    with services.db.read() as conn:
        user = (
            conn.execute(
                sa.select(db.users).where(db.users.c.id == user_id, db.users.c.deleted_at.is_(None))
            )
            .mappings()
            .first()
        )
        if user is None:
            raise ApiError(404, "not_found", "Not found.")
        m, o, c = db.memberships.c, db.organizations.c, db.companies.c
        membership_rows = list(
            conn.execute(
                sa.select(db.memberships, o.name.label("organization_name"))
                .join(db.organizations, o.id == m.organization_id)
                .where(m.user_id == user_id)
                .order_by(m.created_at)
            ).mappings()
        )
        live = {
            row["organization_id"]: membership_from_row(row)
            for row in membership_rows
            if row["deleted_at"] is None
        }
        memberships = [
            {
                "organization_id": row["organization_id"],
                # The organization's current name only while the user belongs to it.
                "organization_name": (
                    row["organization_name"] if row["deleted_at"] is None else None
                ),
                "role": row["role"],
                "custom_permissions": row["permissions"],
                "is_default": bool(row["is_default"]),
                "created_at": iso(row["created_at"]),
                "deleted_at": iso(row["deleted_at"]),
            }
            for row in membership_rows
        ]
        owned_ids = [org_id for org_id, member in live.items() if member.role is Role.OWNER]
        organizations: list[dict[str, Any]] = []
        for org_id in owned_ids:
            org = conn.execute(sa.select(db.organizations).where(o.id == org_id)).mappings().one()
            companies = conn.execute(
                sa.select(db.companies)
                .where(c.organization_id == org_id, c.deleted_at.is_(None))
                .order_by(c.created_at)
            ).mappings()
            organizations.append(
                {
                    "id": org["id"],
                    "name": org["name"],
                    "created_at": iso(org["created_at"]),
                    "license_installed": org["license_token"] is not None,
                    "companies": [
                        {
                            "id": row["id"],
                            "name": row["name"],
                            "vat_id": row["vat_id"],
                            "country": row["country"],
                            "created_at": iso(row["created_at"]),
                        }
                        for row in companies
                    ],
                }
            )
        may = _CompanyAccess(conn, user_id, live)
        i = db.invoices.c
        invoices = [
            _record(
                row,
                visible=may(row["company_id"], Permission.INVOICE_VIEW),
                content={
                    "company_id": row["company_id"],
                    "number": row["number"],
                    "customer": row["customer"],
                    "amount_minor": row["amount_minor"],
                    "currency": row["currency"],
                    "issue_date": row["issue_date"].isoformat(),
                    "updated_at": iso(row["updated_at"]),
                },
            )
            for row in conn.execute(
                sa.select(db.invoices).where(i.created_by == user_id).order_by(i.created_at)
            ).mappings()
        ]
        s = db.storage_credentials.c
        credentials = [
            _record(
                row,
                visible=may(row["company_id"], Permission.VAULT_MANAGE),
                content={
                    "company_id": row["company_id"],
                    "provider": row["provider"],
                    "name": row["name"],
                    "updated_at": iso(row["updated_at"]),
                },
            )
            for row in conn.execute(
                sa.select(
                    s.id,
                    s.company_id,
                    s.provider,
                    s.name,
                    s.created_at,
                    s.updated_at,
                    s.deleted_at,
                )
                .where(s.created_by == user_id)
                .order_by(s.created_at)
            ).mappings()
        ]
    api_keys = [
        {
            "key_id": info.key_id,
            "organization_id": info.organization_id,
            "name": info.name,
            "scope": str(info.scope.value),
            "permissions": list(info.permissions) if info.permissions is not None else None,
            "created_at": iso(info.created_at),
            "expires_at": iso(info.expires_at),
            "revoked_at": iso(info.revoked_at),
            "last_used_at": iso(info.last_used_at),
        }
        for info in services.api_keys.list_keys(user_id=user_id)
    ]
    passkeys = [
        {
            "credential_id": _b64url(cred.credential_id),
            "name": cred.name,
            "aaguid": cred.aaguid,
            "transports": list(cred.transports),
            "backup_eligible": cred.backup_eligible,
            "backed_up": cred.backed_up,
            "created_at": iso(cred.created_at),
            "last_used_at": iso(cred.last_used_at),
        }
        for cred in services.passkeys.list_passkeys(user_id)
    ]
    return {
        "exported_at": iso(now),
        "profile": {
            "id": user["id"],
            "email": user["email"],
            "name": user["name"],
            "created_at": iso(user["created_at"]),
            "password_changed_at": iso(user["password_changed_at"]),
            "has_password": user["password_hash"] is not None,
            "mfa_enabled": bool(user["mfa_enabled"]),
            "google_subject": user["google_subject"],
        },
        "memberships": memberships,
        "organizations_owned": organizations,
        "invoices_created": invoices,
        "storage_credentials_created": credentials,
        "api_keys": api_keys,
        "passkeys": passkeys,
        "backup_codes_left": services.backup_codes.remaining(user_id),
        "active_sessions": _live_session_count(services, user_id, now),
        "audit_events": _audit_events_of(services, user_id),
    }


# --- deletion --------------------------------------------------------------------------------


def _owned_with_members(conn: sa.Connection, user_id: str) -> list[str]:
    m = db.memberships.c
    others = db.memberships.alias("others")
    return list(
        conn.execute(
            sa.select(m.organization_id)
            .where(
                m.user_id == user_id,
                m.role == Role.OWNER.value,
                m.deleted_at.is_(None),
                sa.exists().where(
                    others.c.organization_id == m.organization_id,
                    others.c.user_id != user_id,
                    others.c.deleted_at.is_(None),
                ),
            )
            .order_by(m.organization_id)
        ).scalars()
    )


def owned_organizations_with_members(services: Services, user_id: str) -> list[str]:
    """The organizations the user owns that have other live members (sorted ids)."""
    with services.db.read() as conn:
        return _owned_with_members(conn, user_id)


def _sole_live_member_of(conn: sa.Connection, user_id: str) -> list[str]:
    """The organizations where the user is a live member and nobody else is."""
    m = db.memberships.c
    others = db.memberships.alias("others")
    return list(
        conn.execute(
            sa.select(m.organization_id).where(
                m.user_id == user_id,
                m.deleted_at.is_(None),
                ~sa.exists().where(
                    others.c.organization_id == m.organization_id,
                    others.c.user_id != user_id,
                    others.c.deleted_at.is_(None),
                ),
            )
        ).scalars()
    )


def _default_organization(conn: sa.Connection, user_id: str) -> str | None:
    m = db.memberships.c
    row = conn.execute(
        sa.select(m.organization_id)
        .where(m.user_id == user_id, m.deleted_at.is_(None))
        .order_by(m.is_default.desc(), m.created_at)
    ).first()
    return None if row is None else str(row[0])


def _revoke_credentials(services: Services, user_id: str) -> None:
    """Every credential of the user dies (idempotent: purge calls it again).

    Through the library first, so that its side effects happen: the session epoch moves and
    every live session is marked revoked (in Redis too), so access tokens die at once; the
    revocations are audited."""
    services.sessions.revoke_all(user_id, reason="account_deleted")
    services.api_keys.revoke_user_keys(user_id)
    for credential in services.passkeys.list_passkeys(user_id):
        services.passkeys.delete_passkey(user_id, credential.credential_id)
    services.backup_codes.delete(user_id)
    services.reset_tokens.revoke_all(user_id)


#: The library's tables with rows keyed by a user id (see docs/stores.md), but the session
#: epochs and the refresh tokens (keyed by family), handled apart.
_USER_TABLES: tuple[sa.Table, ...] = (
    api_keys,
    mfa_backup_codes,
    mfa_backup_code_sets,
    mfa_challenges,
    mfa_failures,
    mfa_step_up_tokens,
    mfa_totp_steps,
    passkey_challenges,
    passkey_credentials,
    passkey_user_handles,
    password_reset_tokens,
    password_reset_users,
)


def _delete_library_rows(services: Services, user_id: str, *, with_epoch: bool) -> int:
    """Delete the library's rows keyed by the user: refresh families and their tokens, API
    keys, MFA and passkey state, reset tokens; the session epoch too when ``with_epoch``.

    Run after :func:`_revoke_credentials`: the revocation markers (keyed by session id) and
    the bumped epoch keep refusing the access tokens issued before, until they expire. The
    epoch is kept until the purge (the grace period, at least a day, outlives every access
    token, an hour): a user without an epoch row is at epoch 0, where old tokens would verify
    again.
    """
    f = refresh_families.c
    removed = 0
    with services.db.transaction() as conn:
        families = sa.select(f.family_id).where(f.user_id == user_id)
        removed += conn.execute(
            refresh_tokens.delete().where(refresh_tokens.c.family_id.in_(families))
        ).rowcount
        removed += conn.execute(refresh_families.delete().where(f.user_id == user_id)).rowcount
        for table in _USER_TABLES:
            removed += conn.execute(table.delete().where(table.c.user_id == user_id)).rowcount
        if with_epoch:
            removed += conn.execute(
                session_epochs.delete().where(session_epochs.c.user_id == user_id)
            ).rowcount
    return removed


def delete_account(
    services: Services,
    user_id: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> datetime:
    """Anonymise the account now, revoke every credential, pseudonymise the audit trail.

    The caller has already re-authenticated the user (see :mod:`reference_server.reauth`).
    The user row stays, without personal data, until :func:`purge_deleted_accounts` removes
    it after ``settings.deletion_grace``.

    "Owner of an organization with other live members" is checked again inside the
    transaction that ends the memberships, after ending them: a member added between the
    first check and this one rolls the deletion back (409), so no organization is left
    without an Owner.

    Returns:
        The time after which the account is purged.

    Raises:
        OwnershipTransferRequiredError: the user owns an organization with other members.
        ApiError: 404 when the account does not exist or is already deleted.
        StoreError: a store failed (every step can be retried).
    """
    blocking = owned_organizations_with_members(services, user_id)
    if blocking:
        raise OwnershipTransferRequiredError(blocking)
    now = services.clock.now()
    m = db.memberships.c
    with services.db.transaction() as conn:
        organization_id = _default_organization(conn, user_id)
        owned = set(
            conn.execute(
                sa.select(m.organization_id).where(
                    m.user_id == user_id, m.role == Role.OWNER.value, m.deleted_at.is_(None)
                )
            ).scalars()
        )
        alone = _sole_live_member_of(conn, user_id)
        changed = conn.execute(
            db.users.update()
            .where(db.users.c.id == user_id, db.users.c.deleted_at.is_(None))
            .values(
                email=None,
                name="",
                password_hash=None,
                google_subject=None,
                totp_secret_sealed=None,
                totp_pending_sealed=None,
                mfa_enabled=False,
                deleted_at=now,
            )
        ).rowcount
        if changed != 1:
            raise ApiError(404, "not_found", "Not found.")
        conn.execute(
            db.memberships.update()
            .where(m.user_id == user_id, m.deleted_at.is_(None))
            .values(deleted_at=now)
        )
        # The same check as above, now in the transaction that ended the memberships: any
        # other live member of an organization the user owned means it would lose its Owner.
        others = db.memberships.alias("others")
        orphaned = sorted(
            conn.execute(
                sa.select(others.c.organization_id)
                .where(
                    others.c.organization_id.in_(owned),
                    others.c.user_id != user_id,
                    others.c.deleted_at.is_(None),
                )
                .distinct()
            ).scalars()
        )
        if orphaned:
            raise OwnershipTransferRequiredError(orphaned)
        # Invitations to the user die with the account: nobody can accept them any more.
        conn.execute(
            db.invitations.update()
            .where(
                db.invitations.c.user_id == user_id,
                db.invitations.c.accepted_at.is_(None),
                db.invitations.c.declined_at.is_(None),
            )
            .values(declined_at=now)
        )
        if alone:
            # Registration names an organization after its founder; nobody else sees it now.
            conn.execute(
                db.organizations.update()
                .where(db.organizations.c.id.in_(alone))
                .values(name=DELETED_ORGANIZATION_NAME)
            )
    _revoke_credentials(services, user_id)
    _delete_library_rows(services, user_id, with_epoch=False)
    services.audit.record(
        SecurityEventType.ACCOUNT_DELETION_REQUESTED,
        actor_id=user_id,
        subject_id=user_id,
        organization_id=organization_id,
        ip=ip,
        user_agent=user_agent,
        details={"grace_days": services.settings.deletion_grace_days},
    )
    # Last: every event about the user, this one included, now carries the pseudonym.
    services.audit.pseudonymise_user(user_id)
    return now + services.settings.deletion_grace


# --- purge -----------------------------------------------------------------------------------


def _delete_organizations(conn: sa.Connection, organization_ids: Iterable[str]) -> int:
    removed = 0
    for org_id in organization_ids:
        company_ids = sa.select(db.companies.c.id).where(db.companies.c.organization_id == org_id)
        removed += conn.execute(
            db.invoices.delete().where(db.invoices.c.company_id.in_(company_ids))
        ).rowcount
        removed += conn.execute(
            db.storage_credentials.delete().where(
                db.storage_credentials.c.company_id.in_(company_ids)
            )
        ).rowcount
        removed += conn.execute(
            db.companies.delete().where(db.companies.c.organization_id == org_id)
        ).rowcount
        removed += conn.execute(
            db.memberships.delete().where(db.memberships.c.organization_id == org_id)
        ).rowcount
        removed += conn.execute(
            db.invitations.delete().where(db.invitations.c.organization_id == org_id)
        ).rowcount
        removed += conn.execute(
            db.organizations.delete().where(db.organizations.c.id == org_id)
        ).rowcount
    return removed


def _purge_one(services: Services, user_id: str, cutoff: datetime) -> int | None:
    """Hard-delete one account; ``None`` if it is no longer due (restored or purged)."""
    m = db.memberships.c
    others = db.memberships.alias("others")
    with services.db.transaction() as conn:
        due = conn.execute(
            sa.select(db.users.c.id).where(
                db.users.c.id == user_id,
                db.users.c.deleted_at.is_not(None),
                db.users.c.deleted_at <= cutoff,
            )
        ).first()
        if due is None:
            return None
        sole = list(
            conn.execute(
                sa.select(m.organization_id).where(
                    m.user_id == user_id,
                    # Rows of removed members (soft-deleted) keep nothing alive: nobody can
                    # see or delete the organization's data through them.
                    ~sa.exists().where(
                        others.c.organization_id == m.organization_id,
                        others.c.user_id != user_id,
                        others.c.deleted_at.is_(None),
                    ),
                )
            ).scalars()
        )
        removed = _delete_organizations(conn, sole)
        removed += conn.execute(
            db.memberships.delete().where(db.memberships.c.user_id == user_id)
        ).rowcount
        removed += conn.execute(
            db.invitations.delete().where(db.invitations.c.user_id == user_id)
        ).rowcount
        # Rows kept by other organizations lose the link to the person.
        conn.execute(
            db.invitations.update()
            .where(db.invitations.c.invited_by == user_id)
            .values(invited_by=None)
        )
        conn.execute(
            db.invoices.update().where(db.invoices.c.created_by == user_id).values(created_by=None)
        )
        conn.execute(
            db.storage_credentials.update()
            .where(db.storage_credentials.c.created_by == user_id)
            .values(created_by=None)
        )
        removed += conn.execute(db.users.delete().where(db.users.c.id == user_id)).rowcount
    return removed


def purge_deleted_accounts(services: Services) -> int:
    """Hard-delete every account deleted longer ago than ``settings.deletion_grace`` (ACC-4).

    For each: its credentials are revoked again (idempotent), its memberships and the user row
    are deleted, and so is every organization (with its companies, invoices and storage
    credentials) of which it was the only live member; every library row still keyed by the
    user's id (session epoch, refresh families, API keys, MFA, passkey and reset-token rows)
    is deleted, and the audit trail pseudonymised once more. One ``ACCOUNT_DELETED`` event per
    account, under the account's pseudonym.

    Returns:
        How many accounts were purged.

    Raises:
        StoreError: a store failed; accounts purged before the failure stay purged, and a new
            run continues with the rest.
    """
    cutoff = services.clock.now() - services.settings.deletion_grace
    with services.db.read() as conn:
        due = list(
            conn.execute(
                sa.select(db.users.c.id)
                .where(db.users.c.deleted_at.is_not(None), db.users.c.deleted_at <= cutoff)
                .order_by(db.users.c.deleted_at)
            ).scalars()
        )
    purged = 0
    for user_id in due:
        _revoke_credentials(services, user_id)
        # Before the user row goes: a run that fails after this step finds the account due
        # again and finishes it. The epoch may go now: every access token issued before the
        # deletion has expired (they live an hour, the grace period is at least a day).
        library_rows = _delete_library_rows(services, user_id, with_epoch=True)
        removed = _purge_one(services, user_id, cutoff)
        if removed is None:
            continue
        removed += library_rows
        services.audit.pseudonymise_user(user_id)
        services.audit.record(
            SecurityEventType.ACCOUNT_DELETED,
            subject_id=pseudonym(user_id, key=services.keys.pseudonym),
            details={"record_count": removed},
        )
        purged += 1
    return purged
