"""Accounts in the server's database: lookup, registration (ACC-1), password and TOTP fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from reference_server import db
from reference_server.errors import ApiError
from reference_server.services import Services
from storno_security.rbac import Role

__all__ = [
    "create_account",
    "find_by_google_subject",
    "find_user_by_email",
    "get_user",
    "link_google",
    "open_totp_secret",
    "seal_totp_secret",
    "totp_associated_data",
    "user_json",
]


def totp_associated_data(user_id: str) -> str:
    """Binds a sealed TOTP secret to its user (VLT-2): a secret moved to another row fails."""
    return f"app_users:{user_id}:totp_secret"


def seal_totp_secret(services: Services, user_id: str, secret: str) -> str:
    return services.keys.vault.seal(secret, associated_data=totp_associated_data(user_id))


def open_totp_secret(services: Services, user: sa.RowMapping) -> str | None:
    sealed = user["totp_secret_sealed"]
    if sealed is None:
        return None
    return services.keys.vault.open(
        sealed, associated_data=totp_associated_data(user["id"])
    ).decode("ascii")


def find_user_by_email(services: Services, email: str) -> sa.RowMapping | None:
    """The live user with this normalised email, or ``None``."""
    with services.db.read() as conn:
        return (
            conn.execute(
                sa.select(db.users).where(
                    db.users.c.email == email, db.users.c.deleted_at.is_(None)
                )
            )
            .mappings()
            .first()
        )


def find_by_google_subject(services: Services, subject: str) -> sa.RowMapping | None:
    """The live user linked to this Google account, or ``None``."""
    with services.db.read() as conn:
        return (
            conn.execute(
                sa.select(db.users).where(
                    db.users.c.google_subject == subject, db.users.c.deleted_at.is_(None)
                )
            )
            .mappings()
            .first()
        )


def link_google(services: Services, user_id: str, subject: str) -> sa.RowMapping | None:
    """Link a Google account to a user who has proven it is them (never by email alone).

    Returns:
        The user, now linked to ``subject``; ``None`` when the user already holds another
        Google account, or ``subject`` is linked to another user (the column is unique).
    """
    try:
        with services.db.transaction() as conn:
            conn.execute(
                db.users.update()
                .where(
                    db.users.c.id == user_id,
                    db.users.c.deleted_at.is_(None),
                    db.users.c.google_subject.is_(None),
                )
                .values(google_subject=subject)
            )
    except db.DuplicateRowError:
        return None  # the subject is another user's (unique column)
    user = get_user(services, user_id)
    if user is None or user["google_subject"] != subject:
        return None
    return user


def get_user(services: Services, user_id: str) -> sa.RowMapping | None:
    """The live user with this id, or ``None`` (deleted accounts are invisible, RBAC-4)."""
    with services.db.read() as conn:
        return (
            conn.execute(
                sa.select(db.users).where(db.users.c.id == user_id, db.users.c.deleted_at.is_(None))
            )
            .mappings()
            .first()
        )


def create_account(
    services: Services,
    *,
    email: str,
    name: str,
    password_hash: str | None,
    organization_name: str,
    google_subject: str | None = None,
) -> tuple[str, str]:
    """User + organization + Owner membership in one transaction (ACC-1, RBAC-1).

    Returns:
        ``(user_id, organization_id)``.

    Raises:
        ApiError: 409 when the email (or Google account) is already registered.
    """
    now = services.clock.now()
    user_id = db.new_id()
    organization_id = db.new_id()
    try:
        with services.db.transaction() as conn:
            conn.execute(
                db.users.insert().values(
                    id=user_id,
                    email=email,
                    name=name,
                    password_hash=password_hash,
                    google_subject=google_subject,
                    mfa_enabled=False,
                    created_at=now,
                )
            )
            conn.execute(
                db.organizations.insert().values(
                    id=organization_id, name=organization_name, created_at=now
                )
            )
            conn.execute(
                db.memberships.insert().values(
                    user_id=user_id,
                    organization_id=organization_id,
                    role=Role.OWNER.value,
                    permissions=None,
                    is_default=True,
                    created_at=now,
                )
            )
    except db.DuplicateRowError:
        raise ApiError(409, "email_taken", "An account with this email already exists.") from None
    return user_id, organization_id


def set_password_hash(services: Services, user_id: str, password_hash: str) -> None:
    with services.db.transaction() as conn:
        conn.execute(
            db.users.update()
            .where(db.users.c.id == user_id)
            .values(password_hash=password_hash, password_changed_at=services.clock.now())
        )


def upgrade_password_hash(services: Services, user_id: str, old: str, new: str) -> None:
    """Store a rehashed password (PW-3) unless it changed meanwhile (compare-and-set)."""
    with services.db.transaction() as conn:
        conn.execute(
            db.users.update()
            .where(db.users.c.id == user_id, db.users.c.password_hash == old)
            .values(password_hash=new)
        )


def user_json(user: sa.RowMapping, *, organization_id: str | None = None) -> dict[str, Any]:
    created: datetime = user["created_at"]
    out: dict[str, Any] = {
        "id": user["id"],
        "email": user["email"],
        "name": user["name"],
        "mfa_enabled": bool(user["mfa_enabled"]),
        "has_password": user["password_hash"] is not None,
        "created_at": created.isoformat().replace("+00:00", "Z"),
    }
    if organization_id is not None:
        out["organization_id"] = organization_id
    return out


def default_organization_id(services: Services, user_id: str) -> str | None:
    """The organization of the user's default (else oldest) live membership, or ``None``."""
    m = db.memberships.c
    with services.db.read() as conn:
        row = conn.execute(
            sa.select(m.organization_id)
            .where(m.user_id == user_id, m.deleted_at.is_(None))
            .order_by(m.is_default.desc(), m.created_at)
        ).first()
    return None if row is None else str(row[0])
