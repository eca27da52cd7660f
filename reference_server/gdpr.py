"""GDPR (ACC-4): export all of a user's data, delete the account, purge after the grace period.

* :func:`export_user_data` gathers everything the server and the library hold about a user, as
  JSON-ready values: never a secret, a hash or a sealed value.
* :func:`delete_account` anonymises the account at once (email, name, password hash, TOTP
  secrets and Google link cleared, ``deleted_at`` set), revokes every credential (sessions, API
  keys, passkeys, backup codes, reset tokens) and pseudonymises the audit trail.
* :func:`purge_deleted_accounts` hard-deletes accounts whose grace period has ended (run by the
  ``storno-security`` CLI from a scheduled job).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from reference_server import db
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
from storno_security.rbac import Role
from storno_security.stores.sql import audit_events, refresh_families

__all__ = [
    "OwnershipTransferRequiredError",
    "delete_account",
    "export_user_data",
    "owned_organizations_with_members",
    "purge_deleted_accounts",
]


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


def export_user_data(services: Services, user_id: str) -> dict[str, Any]:
    """Everything held about a live user, as JSON-ready values (ACC-4).

    Never includes a password hash, a sealed TOTP secret, a key hash, a token or a stored
    credential's secret: only their existence and metadata.

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
        membership_rows = conn.execute(
            sa.select(
                m.organization_id,
                m.role,
                m.permissions,
                m.is_default,
                m.created_at,
                o.name.label("organization_name"),
            )
            .join(db.organizations, o.id == m.organization_id)
            .where(m.user_id == user_id, m.deleted_at.is_(None))
            .order_by(m.created_at)
        ).mappings()
        memberships = [
            {
                "organization_id": row["organization_id"],
                "organization_name": row["organization_name"],
                "role": row["role"],
                "custom_permissions": row["permissions"],
                "is_default": bool(row["is_default"]),
                "created_at": iso(row["created_at"]),
            }
            for row in membership_rows
        ]
        owned_ids = [
            entry["organization_id"] for entry in memberships if entry["role"] == Role.OWNER.value
        ]
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
        i = db.invoices.c
        invoices = [
            {
                "id": row["id"],
                "company_id": row["company_id"],
                "number": row["number"],
                "customer": row["customer"],
                "amount_minor": row["amount_minor"],
                "currency": row["currency"],
                "issue_date": row["issue_date"].isoformat(),
                "created_at": iso(row["created_at"]),
            }
            for row in conn.execute(
                sa.select(db.invoices)
                .where(i.created_by == user_id, i.deleted_at.is_(None))
                .order_by(i.created_at)
            ).mappings()
        ]
        s = db.storage_credentials.c
        credentials = [
            {
                "id": row["id"],
                "company_id": row["company_id"],
                "provider": row["provider"],
                "name": row["name"],
                "created_at": iso(row["created_at"]),
            }
            for row in conn.execute(
                sa.select(s.id, s.company_id, s.provider, s.name, s.created_at)
                .where(s.created_by == user_id, s.deleted_at.is_(None))
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


def owned_organizations_with_members(services: Services, user_id: str) -> list[str]:
    """The organizations the user owns that have other live members (sorted ids)."""
    m = db.memberships.c
    others = db.memberships.alias("others")
    with services.db.read() as conn:
        rows = conn.execute(
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
        return list(rows)


def _default_organization(conn: sa.Connection, user_id: str) -> str | None:
    m = db.memberships.c
    row = conn.execute(
        sa.select(m.organization_id)
        .where(m.user_id == user_id, m.deleted_at.is_(None))
        .order_by(m.is_default.desc(), m.created_at)
    ).first()
    return None if row is None else str(row[0])


def _revoke_credentials(services: Services, user_id: str) -> None:
    """Every credential of the user dies (idempotent: purge calls it again)."""
    services.sessions.revoke_all(user_id, reason="account_deleted")
    services.api_keys.revoke_user_keys(user_id)
    for credential in services.passkeys.list_passkeys(user_id):
        services.passkeys.delete_passkey(user_id, credential.credential_id)
    services.backup_codes.delete(user_id)
    services.reset_tokens.revoke_all(user_id)


def delete_account(
    services: Services,
    user_id: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> datetime:
    """Anonymise the account now, revoke every credential, pseudonymise the audit trail.

    The caller has already re-authenticated the user (password, or a step-up token when MFA
    is on). The user row stays, without personal data, until :func:`purge_deleted_accounts`
    removes it after ``settings.deletion_grace``.

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
    with services.db.transaction() as conn:
        organization_id = _default_organization(conn, user_id)
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
            .where(db.memberships.c.user_id == user_id, db.memberships.c.deleted_at.is_(None))
            .values(deleted_at=now)
        )
    _revoke_credentials(services, user_id)
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
                    ~sa.exists().where(
                        others.c.organization_id == m.organization_id,
                        others.c.user_id != user_id,
                    ),
                )
            ).scalars()
        )
        removed = _delete_organizations(conn, sole)
        removed += conn.execute(
            db.memberships.delete().where(db.memberships.c.user_id == user_id)
        ).rowcount
        # Rows kept by other organizations lose the link to the person.
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
    credentials) of which it was the only member. One ``ACCOUNT_DELETED`` event per account,
    under the account's pseudonym.

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
        removed = _purge_one(services, user_id, cutoff)
        if removed is None:
            continue
        services.audit.pseudonymise_user(user_id)
        services.audit.record(
            SecurityEventType.ACCOUNT_DELETED,
            subject_id=pseudonym(user_id, key=services.keys.pseudonym),
            details={"record_count": removed},
        )
        purged += 1
    return purged
