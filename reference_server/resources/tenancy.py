"""Tenancy over HTTP: companies, members and one company-scoped resource, invoices (RBAC-1..5).

Every decision is the library's: :func:`~reference_server.context.authorize_request` (roles,
API-key scopes, organization), :func:`~storno_security.rbac.resolve_company` (a company of
another organization, a deleted one and a malformed id are one 404, RBAC-3) and the membership
functions of :mod:`storno_security.rbac` (RBAC-5: no self-promotion, the Owner is neither
demoted nor removed, memberships of other organizations are "not found", API keys never change
memberships). Deletion is soft everywhere (RBAC-4): ``deleted_at`` is set, the row is kept for
the audit trail, and every read and write path treats it as missing.

Nobody becomes a member without consent: ``POST /api/v1/members`` invites (the same ``202``
whether or not the email is registered, so it reveals nothing), and the membership is created
only when the invited user accepts, re-checked by the library against the inviter's rights at
that moment. A pending invitation is never a membership: :func:`authorize_request` reads the
memberships only.

A removed member loses access on their next request: :func:`authorize_request` reads the
memberships on every request, so no token needs revoking.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn

import falcon
import sqlalchemy as sa

from reference_server import db
from reference_server.context import (
    Resource,
    audit_meta,
    authorize_request,
    company_lookup,
    membership_from_row,
    memberships_of,
    require_interactive_user,
)
from reference_server.errors import ApiError
from reference_server.http import Router, bad_request, body_int, body_text, iso
from reference_server.openapi import obj, operation
from reference_server.services import Services
from storno_security.accounts import InvalidEmailError, normalise_email
from storno_security.audit import (
    SecurityEventType,
    event_from_error,
    event_from_membership_change,
    event_from_ownership_transfer,
)
from storno_security.errors import (
    DuplicateMembershipError,
    MembershipNotFoundError,
    PermissionDeniedError,
)
from storno_security.rbac import (
    Authorization,
    Company,
    Membership,
    MembershipChange,
    Permission,
    Principal,
    Role,
    authorize_member_addition,
    authorize_member_removal,
    authorize_membership_update,
    authorize_ownership_transfer,
    canonical_uuid,
    is_visible,
    parse_permissions,
    resolve_company,
)

__all__ = ["OPENAPI_PATHS", "register"]

#: Page sizes of the list endpoints.
DEFAULT_PAGE = 50
MAX_PAGE = 100
#: The largest amount an invoice may carry, in minor units (far inside a signed 64-bit column).
MAX_AMOUNT_MINOR = 10**15 - 1

_COUNTRY = re.compile(r"[A-Z]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_VAT_ID = re.compile(r"[A-Z0-9][A-Z0-9 .+*/-]{1,31}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LIMIT = re.compile(r"\d{1,4}")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,200}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: How long an invitation can be accepted.
INVITATION_LIFETIME = timedelta(days=7)


def _not_found() -> NoReturn:
    raise ApiError(404, "not_found", "Not found.")


# --- input ---------------------------------------------------------------------------------


def _only(body: dict[str, Any], allowed: Iterable[str]) -> None:
    known = set(allowed)
    for name in body:
        if name not in known:
            bad_request(f"Unknown field '{name[:64]}'.", field=name[:64])


def _text(body: dict[str, Any], name: str, *, max_length: int, required: bool) -> str | None:
    """A one-line text field: no control characters, not blank."""
    value = body_text(body, name, max_length=max_length, required=required)
    if value is None:
        return None
    if _CONTROL.search(value):
        bad_request(f"'{name}' must not contain control characters.", field=name)
    if not value.strip():
        bad_request(f"'{name}' must not be blank.", field=name)
    return value


def _required_text(body: dict[str, Any], name: str, *, max_length: int) -> str:
    value = _text(body, name, max_length=max_length, required=True)
    if value is None:
        bad_request(f"'{name}' is required.", field=name)
    return value


def _pattern(
    body: dict[str, Any], name: str, pattern: re.Pattern[str], what: str, *, required: bool
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            bad_request(f"'{name}' is required.", field=name)
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        bad_request(f"'{name}' must be {what}.", field=name)
    return value


def _issue_date(body: dict[str, Any], *, required: bool) -> date | None:
    raw = _pattern(body, "issue_date", _DATE, "a date as YYYY-MM-DD", required=required)
    if raw is None:
        return None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        bad_request("'issue_date' is not a valid calendar date.", field="issue_date")
    if value.year < 1900:
        bad_request("'issue_date' must be in 1900 or later.", field="issue_date")
    return value


def _role(body: dict[str, Any], *, required: bool) -> Role | None:
    value = body.get("role")
    if value is None:
        if required:
            bad_request("'role' is required.", field="role")
        return None
    if not isinstance(value, str):
        bad_request("'role' must be a string.", field="role")
    try:
        return Role(value)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        bad_request(f"'role' must be one of: {names}.", field="role")


def _permissions(body: dict[str, Any]) -> frozenset[Permission] | None:
    """A custom permission set, or ``None`` (absent or null) for the role's defaults."""
    value = body.get("permissions")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        bad_request("'permissions' must be a list of permission names.", field="permissions")
    if len(value) > 2 * len(Permission):
        bad_request("'permissions' has too many entries.", field="permissions")
    try:
        return parse_permissions(value)
    except (TypeError, ValueError):
        bad_request("'permissions' names an unknown permission.", field="permissions")


def _user_id(raw: str) -> str:
    """A user id from the path: a canonical UUID, else the same 404 as a missing member."""
    value = canonical_uuid(raw)
    if value is None:
        _not_found()
    return value


def _page(req: falcon.Request) -> tuple[int, tuple[datetime, str] | None]:
    """``?limit=`` (1..100) and ``?cursor=`` (from a previous page's ``next_cursor``)."""
    raw_limit = req.get_param("limit")
    limit = DEFAULT_PAGE
    if raw_limit is not None:
        if not _LIMIT.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_PAGE:
            bad_request(f"'limit' must be an integer from 1 to {MAX_PAGE}.", field="limit")
        limit = int(raw_limit)
    raw_cursor = req.get_param("cursor")
    if raw_cursor is None:
        return limit, None
    return limit, _decode_cursor(raw_cursor)


def _encode_cursor(created_at: datetime, row_id: str) -> str:
    text = f"{iso(created_at)}|{row_id}".encode()
    return base64.urlsafe_b64encode(text).decode("ascii").rstrip("=")


def _decode_cursor(raw: str) -> tuple[datetime, str]:
    def refuse() -> NoReturn:
        bad_request("'cursor' is not a cursor this server returned.", field="cursor")

    if not _CURSOR.fullmatch(raw):
        refuse()
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        stamp, _, row_id = text.partition("|")
        created_at = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        refuse()
    if created_at.tzinfo is None or canonical_uuid(row_id) != row_id:
        refuse()
    try:
        # Near the ends of the calendar the UTC value does not exist (the database would fail).
        created_at = created_at.astimezone(UTC)
    except OverflowError:
        refuse()
    return created_at, row_id


def _after(table: sa.Table, cursor: tuple[datetime, str] | None) -> sa.ColumnElement[bool]:
    """Keyset condition: rows strictly after the cursor in (created_at, id) order."""
    if cursor is None:
        return sa.true()
    created_at, row_id = cursor
    return sa.or_(
        table.c.created_at > created_at,
        sa.and_(table.c.created_at == created_at, table.c.id > row_id),
    )


def _page_json(
    rows: list[sa.RowMapping], limit: int, render: Callable[[sa.RowMapping], dict[str, Any]]
) -> dict[str, Any]:
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = _encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return {"items": [render(row) for row in rows], "next_cursor": next_cursor}


# --- rendering -----------------------------------------------------------------------------


def _company_json(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "vat_id": row["vat_id"],
        "country": row["country"],
        "created_at": iso(row["created_at"]),
    }


def _invoice_json(row: sa.RowMapping) -> dict[str, Any]:
    issued: date = row["issue_date"]
    return {
        "id": row["id"],
        "company_id": row["company_id"],
        "number": row["number"],
        "customer": row["customer"],
        "amount_minor": int(row["amount_minor"]),
        "currency": row["currency"],
        "issue_date": issued.isoformat(),
        "created_by": row["created_by"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def _member_json(member: Membership, user: sa.RowMapping, created_at: datetime) -> dict[str, Any]:
    return {
        "user_id": member.user_id,
        "email": user["email"],
        "name": user["name"],
        "role": member.role.value,
        "permissions": None
        if member.permissions is None
        else sorted(p.value for p in member.permissions),
        "effective_permissions": sorted(p.value for p in member.effective_permissions),
        "created_at": iso(created_at),
    }


class _Base(Resource):
    def company(self, auth: Authorization, raw_id: str) -> Company:
        """A live company of the caller's organization, or the one 404 (RBAC-3, RBAC-4)."""
        return resolve_company(
            raw_id,
            organization_id=auth.organization_id,
            companies=company_lookup(self.services, auth.organization_id),
        )


# --- companies -----------------------------------------------------------------------------

_COMPANY_FIELDS = ("name", "vat_id", "country")


class Companies(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = authorize_request(req, self.services, Permission.COMPANY_VIEW)
        limit, cursor = _page(req)
        table = db.companies
        with self.services.db.read() as conn:
            rows = list(
                conn.execute(
                    sa.select(table)
                    .where(
                        table.c.organization_id == auth.organization_id,
                        table.c.deleted_at.is_(None),
                        _after(table, cursor),
                    )
                    .order_by(table.c.created_at, table.c.id)
                    .limit(limit + 1)
                ).mappings()
            )
        resp.media = _page_json(rows, limit, _company_json)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = authorize_request(req, self.services, Permission.COMPANY_CREATE)
        body = self.body(req)
        _only(body, _COMPANY_FIELDS)
        values = {
            "name": _text(body, "name", max_length=200, required=True),
            "vat_id": _pattern(
                body,
                "vat_id",
                _VAT_ID,
                "2 to 32 upper-case letters, digits or . + * / - and spaces",
                required=False,
            ),
            "country": _pattern(
                body, "country", _COUNTRY, "an ISO 3166-1 alpha-2 code (GB)", required=True
            ),
        }
        company_id = db.new_id()
        with self.services.db.transaction() as conn:
            conn.execute(
                db.companies.insert().values(
                    id=company_id,
                    organization_id=auth.organization_id,
                    created_at=self.services.clock.now(),
                    **values,
                )
            )
            row = (
                conn.execute(sa.select(db.companies).where(db.companies.c.id == company_id))
                .mappings()
                .one()
            )
        resp.status = falcon.HTTP_201
        resp.media = _company_json(row)


class CompanyItem(_Base):
    def _row(self, company: Company) -> sa.RowMapping:
        with self.services.db.read() as conn:
            row = (
                conn.execute(sa.select(db.companies).where(db.companies.c.id == company.company_id))
                .mappings()
                .first()
            )
        if row is None or row["deleted_at"] is not None:
            _not_found()
        return row

    def on_get(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        auth = authorize_request(req, self.services, Permission.COMPANY_VIEW)
        resp.media = _company_json(self._row(self.company(auth, company_id)))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        auth = authorize_request(req, self.services, Permission.COMPANY_MANAGE)
        company = self.company(auth, company_id)
        body = self.body(req)
        _only(body, _COMPANY_FIELDS)
        values: dict[str, Any] = {}
        if "name" in body:
            values["name"] = _text(body, "name", max_length=200, required=True)
        if "vat_id" in body:  # null clears it
            values["vat_id"] = _pattern(
                body,
                "vat_id",
                _VAT_ID,
                "2 to 32 upper-case letters, digits or . + * / - and spaces",
                required=False,
            )
        if "country" in body:
            values["country"] = _pattern(
                body, "country", _COUNTRY, "an ISO 3166-1 alpha-2 code (GB)", required=True
            )
        if not values:
            bad_request("Send at least one of: name, vat_id, country.")
        table = db.companies
        with self.services.db.transaction() as conn:
            changed = conn.execute(
                table.update()
                .where(table.c.id == company.company_id, table.c.deleted_at.is_(None))
                .values(**values)
            ).rowcount
        if changed != 1:  # deleted meanwhile
            _not_found()
        resp.media = _company_json(self._row(company))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, company_id: str) -> None:
        auth = authorize_request(req, self.services, Permission.COMPANY_DELETE)
        company = self.company(auth, company_id)
        table = db.companies
        with self.services.db.transaction() as conn:
            changed = conn.execute(
                table.update()
                .where(table.c.id == company.company_id, table.c.deleted_at.is_(None))
                .values(deleted_at=self.services.clock.now())
            ).rowcount
        if changed != 1:
            _not_found()
        resp.status = falcon.HTTP_204


# --- members -------------------------------------------------------------------------------


class _MemberBase(_Base):
    """Membership changes: the caller needs ``member.manage`` (checked by the library, with
    every RBAC-5 rule); refusals are recorded as ``access.denied``."""

    def manager(
        self, req: falcon.Request, permission: Permission = Permission.MEMBER_MANAGE
    ) -> tuple[Authorization, Membership]:
        """The caller's authorization and current membership in the organization."""
        auth = authorize_request(req, self.services, permission)
        actor = next(
            (
                m
                for m in memberships_of(self.services, auth.principal.user_id)
                if m.organization_id == auth.organization_id and is_visible(m)
            ),
            None,
        )
        if actor is None:  # removed between the two reads
            raise PermissionDeniedError(reason="no_membership")
        return auth, actor

    def membership(self, organization_id: str, user_id: str) -> Membership | None:
        """The membership of ``user_id`` here, removed ones included (the library refuses them)."""
        with self.services.db.read() as conn:
            row = (
                conn.execute(
                    sa.select(db.memberships).where(
                        db.memberships.c.user_id == user_id,
                        db.memberships.c.organization_id == organization_id,
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else membership_from_row(row)

    def denied(self, req: falcon.Request, auth: Authorization, error: Exception) -> None:
        if isinstance(error, PermissionDeniedError):
            self.services.audit.record_event(
                event_from_error(
                    SecurityEventType.ACCESS_DENIED,
                    error,
                    at=self.services.clock.now(),
                    actor_id=auth.principal.user_id,
                    organization_id=auth.organization_id,
                    **audit_meta(req),
                )
            )

    def render(self, organization_id: str, user_id: str) -> dict[str, Any]:
        rows = _member_rows(self.services, organization_id, user_id=user_id)
        if not rows:
            _not_found()
        return rows[0]


def _member_rows(
    services: Services, organization_id: str, *, user_id: str | None = None
) -> list[dict[str, Any]]:
    m, u = db.memberships, db.users
    query = (
        sa.select(m, u.c.email, u.c.name)
        .join(u, u.c.id == m.c.user_id)
        .where(
            m.c.organization_id == organization_id,
            m.c.deleted_at.is_(None),
            u.c.deleted_at.is_(None),
        )
        .order_by(m.c.created_at, m.c.user_id)
    )
    if user_id is not None:
        query = query.where(m.c.user_id == user_id)
    with services.db.transaction() as conn:
        rows = list(conn.execute(query).mappings())
    return [_member_json(membership_from_row(row), row, row["created_at"]) for row in rows]


def _previous_role(change: MembershipChange) -> str:
    """The role the stored row must still have for the change to apply (compare-and-set)."""
    return (change.before or change.after).role.value


def _store_permissions(member: Membership) -> list[str] | None:
    if member.permissions is None:
        return None
    return sorted(p.value for p in member.permissions)


class Members(_MemberBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = authorize_request(req, self.services, Permission.MEMBER_VIEW)
        resp.media = {"items": _member_rows(self.services, auth.organization_id)}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Invite a user: the same ``202`` whether or not the email is registered."""
        auth, actor = self.manager(req)
        body = self.body(req)
        _only(body, ("email", "role", "permissions"))
        raw_email = _required_text(body, "email", max_length=320)
        role = _role(body, required=True)
        if role is None:
            bad_request("'role' is required.", field="role")
        permissions = _permissions(body)
        try:
            email = normalise_email(raw_email)
        except InvalidEmailError:
            raise ApiError(
                422, "invalid_email", "The email address is not valid.", extra={"field": "email"}
            ) from None
        try:
            offered = Membership(
                user_id=db.new_id(),  # nobody yet: the grant is checked before the lookup
                organization_id=auth.organization_id,
                role=role,
                permissions=permissions,
            )
        except ValueError:
            bad_request(
                "This role cannot hold a custom set with these permissions.", field="permissions"
            )
        # The library decides (RBAC-5, KEY-5) before anything depends on the address, so a
        # refusal cannot tell whether it is registered either.
        try:
            authorize_member_addition(actor, offered, principal=auth.principal, existing=())
        except PermissionDeniedError as exc:
            self.denied(req, auth, exc)
            raise
        user = _find_user(self.services, email)
        user_id = None if user is None else str(user["id"])
        now = self.services.clock.now()
        invitations = db.invitations
        with self.services.db.transaction() as conn:
            # At most one mail per organization and user per invitation lifetime, whatever
            # became of the earlier invitations (withdrawn, declined): inviting, withdrawing and
            # inviting again cannot flood anyone's mailbox. The invitation is stored anyway.
            # (The query runs for an unknown address too: the same work either way.)
            recent = conn.execute(
                sa.select(invitations.c.id)
                .where(
                    invitations.c.organization_id == auth.organization_id,
                    invitations.c.user_id == (user_id or ""),
                    invitations.c.created_at > now - INVITATION_LIFETIME,
                )
                .limit(1)
            ).first()
            # Every invitation is stored, an unregistered address's too (without the address
            # or anything else about the person), so the organization's list of pending
            # invitations does not tell either.
            conn.execute(
                invitations.insert().values(
                    id=db.new_id(),
                    organization_id=auth.organization_id,
                    user_id=user_id,
                    role=role.value,
                    permissions=_store_permissions(offered),
                    invited_by=auth.principal.user_id,
                    created_at=now,
                    expires_at=now + INVITATION_LIFETIME,
                )
            )
        if user_id is not None and recent is None:
            organization_id = auth.organization_id
            # The mail goes after the answer: its time does not show whether the address exists.
            self.services.run_later(
                lambda: _send_invitation(self.services, user_id, organization_id)
            )
        resp.status = falcon.HTTP_202
        resp.media = {"status": "invited"}


def _find_user(services: Services, email: str) -> sa.RowMapping | None:
    with services.db.read() as conn:
        return (
            conn.execute(
                sa.select(db.users.c.id).where(
                    db.users.c.email == email, db.users.c.deleted_at.is_(None)
                )
            )
            .mappings()
            .first()
        )


# --- invitations ---------------------------------------------------------------------------


def _pending(table: sa.Table, now: datetime) -> sa.ColumnElement[bool]:
    """Neither accepted, declined nor withdrawn, and not expired."""
    return sa.and_(
        table.c.accepted_at.is_(None),
        table.c.declined_at.is_(None),
        table.c.withdrawn_at.is_(None),
        table.c.expires_at > now,
    )


def _live_member(conn: sa.Connection, user_id: str, organization_id: str) -> bool:
    m = db.memberships
    return (
        conn.execute(
            sa.select(m.c.user_id).where(
                m.c.user_id == user_id,
                m.c.organization_id == organization_id,
                m.c.deleted_at.is_(None),
            )
        ).first()
        is not None
    )


def _send_invitation(services: Services, user_id: str, organization_id: str) -> None:
    """The invitation mail (after the answer): nothing for a member or a deleted account."""
    with services.db.read() as conn:
        user = conn.execute(
            sa.select(db.users.c.email).where(
                db.users.c.id == user_id, db.users.c.deleted_at.is_(None)
            )
        ).first()
        organization = conn.execute(
            sa.select(db.organizations.c.name).where(
                db.organizations.c.id == organization_id,
                db.organizations.c.deleted_at.is_(None),
            )
        ).first()
        member = _live_member(conn, user_id, organization_id)
    if user is None or user.email is None or organization is None or member:
        return
    # The name is the inviter's text: one line, shortened, quoted.
    name = _CONTROL.sub(" ", str(organization.name)).strip()[:80]
    link = f"{services.settings.public_url.rstrip('/')}/invitations"
    services.email.send(
        to=user.email,
        subject=f'You were invited to "{name}"',
        body=(
            f'You were invited to join the organization "{name}".\n'
            f"Nothing changes unless you accept. Accept or decline it within "
            f"{INVITATION_LIFETIME.days} days, after logging in:\n{link}\n"
            "If you do not know this organization, decline the invitation or ignore this mail.\n"
        ),
    )


def _invitation_id(raw: str) -> str:
    value = canonical_uuid(raw)
    if value is None:
        _not_found()
    return value


def _my_invitation(services: Services, user_id: str, raw_id: str) -> sa.RowMapping:
    """The caller's own invitation, or the one 404 (unknown, someone else's, withdrawn, or of a
    deleted organization: an invitation id tells a stranger nothing)."""
    invitation_id = _invitation_id(raw_id)
    i, o = db.invitations, db.organizations
    with services.db.read() as conn:
        row = (
            conn.execute(
                sa.select(i, o.c.deleted_at.label("organization_deleted_at"))
                .join(o, o.c.id == i.c.organization_id)
                .where(i.c.id == invitation_id)
            )
            .mappings()
            .first()
        )
    if (
        row is None
        or row["user_id"] != user_id
        or row["withdrawn_at"] is not None
        or row["organization_deleted_at"] is not None
    ):
        _not_found()
    return row


def _check_open(row: sa.RowMapping, now: datetime) -> None:
    """409 with a code of its own for an invitation already answered or expired."""
    if row["accepted_at"] is not None:
        raise ApiError(409, "invitation_accepted", "This invitation has already been accepted.")
    if row["declined_at"] is not None:
        raise ApiError(409, "invitation_declined", "This invitation has been declined.")
    if row["expires_at"] <= now:
        raise ApiError(409, "invitation_expired", "This invitation has expired; ask for a new one.")


def _invited_membership(row: sa.RowMapping, user_id: str) -> Membership:
    permissions = row["permissions"]
    return Membership(
        user_id=user_id,
        organization_id=row["organization_id"],
        role=Role(row["role"]),
        permissions=None if permissions is None else parse_permissions(permissions),
    )


def _my_invitation_json(row: sa.RowMapping) -> dict[str, Any]:
    return {
        "id": row["id"],
        "organization_id": row["organization_id"],
        "organization_name": row["organization_name"],
        "role": row["role"],
        "permissions": None if row["permissions"] is None else sorted(row["permissions"]),
        "invited_by_name": row["invited_by_name"],
        "created_at": iso(row["created_at"]),
        "expires_at": iso(row["expires_at"]),
    }


def _org_invitation_json(row: sa.RowMapping) -> dict[str, Any]:
    # Nothing about the invited person: the list must not tell whether an address is
    # registered (an unregistered one has a row too).
    return {
        "id": row["id"],
        "role": row["role"],
        "permissions": None if row["permissions"] is None else sorted(row["permissions"]),
        "invited_by": row["invited_by"],
        "created_at": iso(row["created_at"]),
        "expires_at": iso(row["expires_at"]),
    }


class _InvitationConflictError(Exception):
    """The invitation was answered meanwhile, or the membership appeared: roll back."""


class MyInvitations(_Base):
    """The caller's pending invitations (a signed-in user; never an API key)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = require_interactive_user(req)
        limit, cursor = _page(req)
        now = self.services.clock.now()
        i, o, m = db.invitations, db.organizations, db.memberships
        inviter = db.users.alias("inviter")
        query = (
            sa.select(
                i,
                o.c.name.label("organization_name"),
                inviter.c.name.label("invited_by_name"),
            )
            .join(o, o.c.id == i.c.organization_id)
            .outerjoin(
                inviter, sa.and_(inviter.c.id == i.c.invited_by, inviter.c.deleted_at.is_(None))
            )
            .where(
                i.c.user_id == caller.user_id,
                _pending(i, now),
                o.c.deleted_at.is_(None),
                ~sa.exists().where(
                    m.c.user_id == caller.user_id,
                    m.c.organization_id == i.c.organization_id,
                    m.c.deleted_at.is_(None),
                ),
                _after(i, cursor),
            )
            .order_by(i.c.created_at, i.c.id)
            .limit(limit + 1)
        )
        with self.services.db.read() as conn:
            rows = list(conn.execute(query).mappings())
        resp.media = _page_json(rows, limit, _my_invitation_json)


class InvitationAccept(_Base):
    def on_post(self, req: falcon.Request, resp: falcon.Response, invitation_id: str) -> None:
        """Accept: the membership is created (or a removed one revived) in one transaction."""
        caller = require_interactive_user(req)
        row = _my_invitation(self.services, caller.user_id, invitation_id)
        now = self.services.clock.now()
        _check_open(row, now)
        organization_id: str = row["organization_id"]
        new = _invited_membership(row, caller.user_id)
        # The invitation carries its inviter's authority: it must still hold now (a removed or
        # demoted inviter's invitations are void). The library decides, as for any addition.
        inviter = None
        if row["invited_by"] is not None:
            inviter = next(
                (
                    m
                    for m in memberships_of(self.services, row["invited_by"])
                    if m.organization_id == organization_id and is_visible(m)
                ),
                None,
            )
        existing = memberships_of(self.services, caller.user_id)
        if inviter is None:
            raise ApiError(409, "invitation_void", _VOID)
        try:
            change = authorize_member_addition(
                inviter,
                new,
                principal=Principal.user(inviter.user_id, organization_id=organization_id),
                existing=existing,
            )
        except DuplicateMembershipError:
            raise ApiError(409, "already_a_member", _ALREADY) from None
        except PermissionDeniedError:
            raise ApiError(409, "invitation_void", _VOID) from None
        removed = any(m.organization_id == organization_id for m in existing)
        table, invitations = db.memberships, db.invitations
        values = {
            "role": change.after.role.value,
            "permissions": _store_permissions(change.after),
            "is_default": False,
            "created_at": now,
            "deleted_at": None,
        }
        try:
            with self.services.db.transaction() as conn:
                answered = conn.execute(
                    invitations.update()
                    .where(invitations.c.id == row["id"], _pending(invitations, now))
                    .values(accepted_at=now)
                ).rowcount
                if answered != 1:
                    raise _InvitationConflictError
                if removed:
                    # A removed member comes back: the row (one per user and organization) is
                    # revived; the audit trail keeps the history.
                    changed = conn.execute(
                        table.update()
                        .where(
                            table.c.user_id == caller.user_id,
                            table.c.organization_id == organization_id,
                            table.c.deleted_at.is_not(None),
                        )
                        .values(**values)
                    ).rowcount
                    if changed != 1:
                        raise _InvitationConflictError
                else:
                    conn.execute(
                        table.insert().values(
                            user_id=caller.user_id, organization_id=organization_id, **values
                        )
                    )
        except _InvitationConflictError:
            raise ApiError(
                409, "conflict", "The invitation changed meanwhile; try again."
            ) from None
        except db.DuplicateRowError:  # added concurrently
            raise ApiError(409, "already_a_member", _ALREADY) from None
        self.services.audit.record_event(
            event_from_membership_change(change, at=now, **audit_meta(req))
        )
        rows = _member_rows(self.services, organization_id, user_id=caller.user_id)
        if not rows:  # removed again meanwhile
            _not_found()
        resp.media = {"organization_id": organization_id, "member": rows[0]}


_VOID = "The person who invited you can no longer grant this access; ask for a new invitation."
_ALREADY = "You are already a member of this organization."


class InvitationDecline(_Base):
    def on_post(self, req: falcon.Request, resp: falcon.Response, invitation_id: str) -> None:
        caller = require_interactive_user(req)
        row = _my_invitation(self.services, caller.user_id, invitation_id)
        now = self.services.clock.now()
        _check_open(row, now)
        invitations = db.invitations
        with self.services.db.transaction() as conn:
            answered = conn.execute(
                invitations.update()
                .where(invitations.c.id == row["id"], _pending(invitations, now))
                .values(declined_at=now)
            ).rowcount
        if answered != 1:
            raise ApiError(409, "conflict", "The invitation changed meanwhile; try again.")
        resp.status = falcon.HTTP_204


class OrganizationInvitations(_MemberBase):
    """The organization's pending invitations (member.view), without the invitees."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = authorize_request(req, self.services, Permission.MEMBER_VIEW)
        limit, cursor = _page(req)
        i = db.invitations
        with self.services.db.read() as conn:
            rows = list(
                conn.execute(
                    sa.select(i)
                    .where(
                        i.c.organization_id == auth.organization_id,
                        _pending(i, self.services.clock.now()),
                        _after(i, cursor),
                    )
                    .order_by(i.c.created_at, i.c.id)
                    .limit(limit + 1)
                ).mappings()
            )
        resp.media = _page_json(rows, limit, _org_invitation_json)


class OrganizationInvitationItem(_MemberBase):
    def on_delete(self, req: falcon.Request, resp: falcon.Response, invitation_id: str) -> None:
        """Withdraw a pending invitation (member.manage; whoever could have made it)."""
        auth, actor = self.manager(req)
        wanted = _invitation_id(invitation_id)
        now = self.services.clock.now()
        i = db.invitations
        with self.services.db.read() as conn:
            row = (
                conn.execute(
                    sa.select(i).where(
                        i.c.id == wanted,
                        i.c.organization_id == auth.organization_id,
                        _pending(i, now),
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            _not_found()
        offered = _invited_membership(row, row["user_id"] or db.new_id())
        try:
            # The same rules as making it (RBAC-5, KEY-5): nobody withdraws a grant larger
            # than their own, and an API key never acts on memberships.
            authorize_member_addition(actor, offered, principal=auth.principal, existing=())
        except PermissionDeniedError as exc:
            self.denied(req, auth, exc)
            raise
        with self.services.db.transaction() as conn:
            changed = conn.execute(
                i.update().where(i.c.id == row["id"], _pending(i, now)).values(withdrawn_at=now)
            ).rowcount
        if changed != 1:
            _not_found()
        resp.status = falcon.HTTP_204


class MemberItem(_MemberBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        auth = authorize_request(req, self.services, Permission.MEMBER_VIEW)
        resp.media = self.render(auth.organization_id, _user_id(user_id))

    def on_patch(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        auth, actor = self.manager(req)
        body = self.body(req)
        _only(body, ("role", "permissions"))
        if "role" not in body and "permissions" not in body:
            bad_request("Send 'role', 'permissions' or both.")
        role = _role(body, required="role" in body)
        permissions = _permissions(body)
        target = self.membership(auth.organization_id, _user_id(user_id))
        if role is None:
            # Only the permission set changes; the role stays.
            if target is None:
                raise MembershipNotFoundError(reason="unknown")
            role = target.role
        try:
            change = authorize_membership_update(
                actor, target, principal=auth.principal, role=role, permissions=permissions
            )
        except PermissionDeniedError as exc:
            self.denied(req, auth, exc)
            raise
        except ValueError:
            bad_request(
                "This role cannot hold a custom set with these permissions.", field="permissions"
            )
        table = db.memberships
        with self.services.db.transaction() as conn:
            changed = conn.execute(
                table.update()
                .where(
                    table.c.user_id == change.after.user_id,
                    table.c.organization_id == change.after.organization_id,
                    table.c.role == _previous_role(change),
                    table.c.deleted_at.is_(None),
                )
                .values(role=change.after.role.value, permissions=_store_permissions(change.after))
            ).rowcount
        if changed != 1:
            raise ApiError(409, "conflict", "The membership changed meanwhile; try again.")
        self.services.audit.record_event(
            event_from_membership_change(change, at=self.services.clock.now(), **audit_meta(req))
        )
        resp.media = self.render(auth.organization_id, change.after.user_id)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, user_id: str) -> None:
        auth, actor = self.manager(req)
        target = self.membership(auth.organization_id, _user_id(user_id))
        now = self.services.clock.now()
        try:
            change = authorize_member_removal(actor, target, principal=auth.principal, at=now)
        except PermissionDeniedError as exc:
            self.denied(req, auth, exc)
            raise
        table = db.memberships
        with self.services.db.transaction() as conn:
            changed = conn.execute(
                table.update()
                .where(
                    table.c.user_id == change.after.user_id,
                    table.c.organization_id == change.after.organization_id,
                    table.c.role == _previous_role(change),
                    table.c.deleted_at.is_(None),
                )
                .values(deleted_at=change.after.deleted_at, is_default=False)
            ).rowcount
        if changed != 1:
            raise ApiError(409, "conflict", "The membership changed meanwhile; try again.")
        self.services.audit.record_event(
            event_from_membership_change(change, at=now, **audit_meta(req))
        )
        resp.status = falcon.HTTP_204


class _TransferConflictError(Exception):
    """One of the two rows changed meanwhile: the transaction rolls back."""


class OwnershipTransferResource(_MemberBase):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth, actor = self.manager(req, Permission.ORG_TRANSFER_OWNERSHIP)
        body = self.body(req)
        _only(body, ("user_id",))
        raw = _required_text(body, "user_id", max_length=64)
        target = self.membership(auth.organization_id, _user_id(raw))
        try:
            transfer = authorize_ownership_transfer(actor, target, principal=auth.principal)
        except PermissionDeniedError as exc:
            self.denied(req, auth, exc)
            raise
        table = db.memberships
        try:
            with self.services.db.transaction() as conn:
                # The target is never None here (the library refused that); None would
                # match no row and roll back.
                target_role = None if target is None else target.role.value
                for before_role, after in (
                    (actor.role.value, transfer.former_owner),
                    (target_role, transfer.new_owner),
                ):
                    changed = conn.execute(
                        table.update()
                        .where(
                            table.c.user_id == after.user_id,
                            table.c.organization_id == after.organization_id,
                            table.c.role == before_role,
                            table.c.deleted_at.is_(None),
                        )
                        .values(role=after.role.value, permissions=None)
                    ).rowcount
                    if changed != 1:
                        raise _TransferConflictError
        except _TransferConflictError:
            raise ApiError(409, "conflict", "A membership changed meanwhile; try again.") from None
        self.services.audit.record_event(
            event_from_ownership_transfer(transfer, at=self.services.clock.now(), **audit_meta(req))
        )
        resp.media = {"items": _member_rows(self.services, auth.organization_id)}


# --- invoices (company-scoped) -------------------------------------------------------------

_INVOICE_FIELDS = ("number", "customer", "amount_minor", "currency", "issue_date")


def _invoice_values(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    _only(body, _INVOICE_FIELDS)
    values: dict[str, Any] = {}
    required = not partial
    if required or "number" in body:
        values["number"] = _text(body, "number", max_length=64, required=True)
    if required or "customer" in body:
        values["customer"] = _text(body, "customer", max_length=200, required=True)
    if required or "amount_minor" in body:
        values["amount_minor"] = body_int(
            body, "amount_minor", minimum=-MAX_AMOUNT_MINOR, maximum=MAX_AMOUNT_MINOR
        )
    if required or "currency" in body:
        values["currency"] = _pattern(
            body, "currency", _CURRENCY, "an ISO 4217 code (EUR)", required=True
        )
    if required or "issue_date" in body:
        values["issue_date"] = _issue_date(body, required=True)
    return values


class Invoices(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = authorize_request(req, self.services, Permission.INVOICE_VIEW, company=True)
        limit, cursor = _page(req)
        table = db.invoices
        with self.services.db.read() as conn:
            rows = list(
                conn.execute(
                    sa.select(table)
                    .where(
                        table.c.company_id == auth.company_id,
                        table.c.deleted_at.is_(None),
                        _after(table, cursor),
                    )
                    .order_by(table.c.created_at, table.c.id)
                    .limit(limit + 1)
                ).mappings()
            )
        resp.media = _page_json(rows, limit, _invoice_json)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = authorize_request(req, self.services, Permission.INVOICE_CREATE, company=True)
        values = _invoice_values(self.body(req), partial=False)
        invoice_id = db.new_id()
        now = self.services.clock.now()
        with self.services.db.transaction() as conn:
            conn.execute(
                db.invoices.insert().values(
                    id=invoice_id,
                    company_id=auth.company_id,
                    created_by=auth.principal.user_id,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
        resp.status = falcon.HTTP_201
        resp.media = _invoice_json(_invoice_row(self.services, auth, invoice_id))


def _invoice_row(services: Services, auth: Authorization, raw_id: str) -> sa.RowMapping:
    """A live invoice of the request's company, or 404 (another company's, deleted, unknown
    and malformed ids alike: RBAC-3, RBAC-4)."""
    invoice_id = canonical_uuid(raw_id)
    if invoice_id is None:
        _not_found()
    with services.db.read() as conn:
        row = (
            conn.execute(sa.select(db.invoices).where(db.invoices.c.id == invoice_id))
            .mappings()
            .first()
        )
    if row is None or row["company_id"] != auth.company_id or row["deleted_at"] is not None:
        _not_found()
    return row


class InvoiceItem(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, invoice_id: str) -> None:
        auth = authorize_request(req, self.services, Permission.INVOICE_VIEW, company=True)
        resp.media = _invoice_json(_invoice_row(self.services, auth, invoice_id))

    def _change(
        self, auth: Authorization, invoice_id: str, values: dict[str, Any]
    ) -> sa.RowMapping:
        row = _invoice_row(self.services, auth, invoice_id)
        table = db.invoices
        with self.services.db.transaction() as conn:
            changed = conn.execute(
                table.update()
                .where(
                    table.c.id == row["id"],
                    table.c.company_id == auth.company_id,
                    table.c.deleted_at.is_(None),
                )
                .values(**values)
            ).rowcount
        if changed != 1:  # deleted meanwhile
            _not_found()
        return row

    def on_patch(self, req: falcon.Request, resp: falcon.Response, invoice_id: str) -> None:
        auth = authorize_request(req, self.services, Permission.INVOICE_UPDATE, company=True)
        values = _invoice_values(self.body(req), partial=True)
        if not values:
            bad_request("Send at least one of: " + ", ".join(_INVOICE_FIELDS) + ".")
        row = self._change(auth, invoice_id, {**values, "updated_at": self.services.clock.now()})
        resp.media = _invoice_json(_invoice_row(self.services, auth, row["id"]))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, invoice_id: str) -> None:
        auth = authorize_request(req, self.services, Permission.INVOICE_DELETE, company=True)
        self._change(auth, invoice_id, {"deleted_at": self.services.clock.now()})
        resp.status = falcon.HTTP_204


# --- OpenAPI -------------------------------------------------------------------------------

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_ROLE = {"type": "string", "enum": [r.value for r in Role]}
_PERMISSION_LIST = {
    "type": ["array", "null"],
    "items": {"type": "string", "enum": [p.value for p in Permission]},
}


def _path_id(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "A UUID; any other value answers 404 like an unknown id.",
    }


_PAGE_PARAMS = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "The `next_cursor` of the previous page.",
    },
]


def _page_of(item: dict[str, Any]) -> dict[str, Any]:
    return obj(
        {"items": {"type": "array", "items": item}, "next_cursor": _NULLABLE_STRING},
        required=("items", "next_cursor"),
    )


_COMPANY = obj(
    {
        "id": _STRING,
        "name": _STRING,
        "vat_id": _NULLABLE_STRING,
        "country": _STRING,
        "created_at": _TIME,
    },
    required=("id", "name", "vat_id", "country", "created_at"),
)
_COMPANY_NAME = {"type": "string", "minLength": 1, "maxLength": 200}
_COMPANY_VAT = {"type": ["string", "null"], "pattern": "^[A-Z0-9][A-Z0-9 .+*/-]{1,31}$"}
_COMPANY_COUNTRY = {"type": "string", "pattern": "^[A-Z]{2}$"}

_MEMBER = obj(
    {
        "user_id": _STRING,
        "email": _NULLABLE_STRING,
        "name": _STRING,
        "role": _ROLE,
        "permissions": _PERMISSION_LIST,
        "effective_permissions": {"type": "array", "items": _STRING},
        "created_at": _TIME,
    },
    required=(
        "user_id",
        "email",
        "name",
        "role",
        "permissions",
        "effective_permissions",
        "created_at",
    ),
)
_MEMBERS = obj({"items": {"type": "array", "items": _MEMBER}}, required=("items",))

_INVITED = obj({"status": {"type": "string", "enum": ["invited"]}}, required=("status",))
_ORG_INVITATION = obj(
    {
        "id": _STRING,
        "role": _ROLE,
        "permissions": _PERMISSION_LIST,
        "invited_by": _NULLABLE_STRING,
        "created_at": _TIME,
        "expires_at": _TIME,
    },
    required=("id", "role", "permissions", "invited_by", "created_at", "expires_at"),
)
_MY_INVITATION = obj(
    {
        "id": _STRING,
        "organization_id": _STRING,
        "organization_name": _STRING,
        "role": _ROLE,
        "permissions": _PERMISSION_LIST,
        "invited_by_name": _NULLABLE_STRING,
        "created_at": _TIME,
        "expires_at": _TIME,
    },
    required=(
        "id",
        "organization_id",
        "organization_name",
        "role",
        "permissions",
        "invited_by_name",
        "created_at",
        "expires_at",
    ),
)

_INVOICE = obj(
    {
        "id": _STRING,
        "company_id": _STRING,
        "number": _STRING,
        "customer": _STRING,
        "amount_minor": {"type": "integer"},
        "currency": _STRING,
        "issue_date": {"type": "string", "format": "date"},
        "created_by": _NULLABLE_STRING,
        "created_at": _TIME,
        "updated_at": _TIME,
    },
    required=(
        "id",
        "company_id",
        "number",
        "customer",
        "amount_minor",
        "currency",
        "issue_date",
        "created_at",
        "updated_at",
    ),
)
_INVOICE_PROPERTIES = {
    "number": {"type": "string", "minLength": 1, "maxLength": 64},
    "customer": {"type": "string", "minLength": 1, "maxLength": 200},
    "amount_minor": {
        "type": "integer",
        "minimum": -MAX_AMOUNT_MINOR,
        "maximum": MAX_AMOUNT_MINOR,
    },
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "issue_date": {"type": "string", "format": "date"},
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/companies": {
        "get": operation(
            "List the organization's companies (company.view)",
            tag="tenancy",
            organization=True,
            parameters=_PAGE_PARAMS,
            responses={200: _page_of(_COMPANY)},
        ),
        "post": operation(
            "Add a company to the organization (company.create)",
            tag="tenancy",
            organization=True,
            request=obj(
                {"name": _COMPANY_NAME, "vat_id": _COMPANY_VAT, "country": _COMPANY_COUNTRY},
                required=("name", "country"),
                additional=False,
            ),
            responses={201: _COMPANY},
        ),
    },
    "/api/v1/companies/{company_id}": {
        "get": operation(
            "Read a company (company.view)",
            tag="tenancy",
            organization=True,
            parameters=[_path_id("company_id")],
            responses={200: _COMPANY},
        ),
        "patch": operation(
            "Change a company (company.manage); `vat_id: null` clears it",
            tag="tenancy",
            organization=True,
            parameters=[_path_id("company_id")],
            request=obj(
                {"name": _COMPANY_NAME, "vat_id": _COMPANY_VAT, "country": _COMPANY_COUNTRY},
                additional=False,
            ),
            responses={200: _COMPANY},
        ),
        "delete": operation(
            "Delete a company (company.delete): soft deletion, 404 everywhere afterwards",
            tag="tenancy",
            organization=True,
            parameters=[_path_id("company_id")],
            responses={204: None},
        ),
    },
    "/api/v1/members": {
        "get": operation(
            "List the organization's members (member.view)",
            tag="tenancy",
            organization=True,
            responses={200: _MEMBERS},
        ),
        "post": operation(
            "Invite a user by email (member.manage, RBAC-5; never by an API key)",
            tag="tenancy",
            organization=True,
            description=(
                "Answers the same 202 whether or not the email is registered. A registered "
                "user gets a pending invitation (7 days) and a mail; they become a member only "
                "by accepting it (`POST /api/v1/invitations/{id}/accept`). The role cannot be "
                "`owner` (ownership moves only by transfer), and the invitation cannot grant "
                "more than the caller holds."
            ),
            request=obj(
                {
                    "email": {"type": "string", "minLength": 3, "maxLength": 320},
                    "role": _ROLE,
                    "permissions": _PERMISSION_LIST,
                },
                required=("email", "role"),
                additional=False,
            ),
            responses={202: _INVITED},
        ),
    },
    "/api/v1/members/invitations": {
        "get": operation(
            "List the organization's pending invitations (member.view), without the invitees",
            tag="tenancy",
            organization=True,
            parameters=_PAGE_PARAMS,
            responses={200: _page_of(_ORG_INVITATION)},
        ),
    },
    "/api/v1/members/invitations/{invitation_id}": {
        "delete": operation(
            "Withdraw a pending invitation (member.manage; never by an API key)",
            tag="tenancy",
            organization=True,
            parameters=[_path_id("invitation_id")],
            responses={204: None},
        ),
    },
    "/api/v1/invitations": {
        "get": operation(
            "List the caller's pending invitations (a signed-in user, not an API key)",
            tag="tenancy",
            auth="user",
            parameters=_PAGE_PARAMS,
            responses={200: _page_of(_MY_INVITATION)},
        ),
    },
    "/api/v1/invitations/{invitation_id}/accept": {
        "post": operation(
            "Accept an invitation: the caller becomes a member (a signed-in user only)",
            tag="tenancy",
            auth="user",
            parameters=[_path_id("invitation_id")],
            description=(
                "409 `invitation_accepted`, `invitation_declined`, `invitation_expired`, "
                "`already_a_member`, or `invitation_void` when the inviter can no longer grant "
                "the invitation's role; someone else's or a withdrawn invitation is a 404."
            ),
            responses={
                200: obj(
                    {"organization_id": _STRING, "member": _MEMBER},
                    required=("organization_id", "member"),
                )
            },
        ),
    },
    "/api/v1/invitations/{invitation_id}/decline": {
        "post": operation(
            "Decline an invitation (a signed-in user only)",
            tag="tenancy",
            auth="user",
            parameters=[_path_id("invitation_id")],
            responses={204: None},
        ),
    },
    "/api/v1/members/{user_id}": {
        "get": operation(
            "Read a member (member.view)",
            tag="tenancy",
            organization=True,
            parameters=[_path_id("user_id")],
            responses={200: _MEMBER},
        ),
        "patch": operation(
            "Change a member's role or permissions (member.manage, RBAC-5)",
            tag="tenancy",
            organization=True,
            parameters=[_path_id("user_id")],
            description=(
                "Sending `role` without `permissions` resets the member to the role's default "
                "permissions; sending only `permissions` keeps the role. Nobody raises their "
                "own permissions, and the Owner cannot be changed."
            ),
            request=obj({"role": _ROLE, "permissions": _PERMISSION_LIST}, additional=False),
            responses={200: _MEMBER},
        ),
        "delete": operation(
            "Remove a member (member.manage, RBAC-5): soft deletion; the Owner cannot be removed",
            tag="tenancy",
            organization=True,
            parameters=[_path_id("user_id")],
            responses={204: None},
        ),
    },
    "/api/v1/members/transfer-ownership": {
        "post": operation(
            "Make another member the Owner; the caller becomes an Admin (Owner only)",
            tag="tenancy",
            auth="user",
            organization=True,
            request=obj(
                {"user_id": {"type": "string", "format": "uuid"}},
                required=("user_id",),
                additional=False,
            ),
            responses={200: _MEMBERS},
        )
    },
    "/api/v1/invoices": {
        "get": operation(
            "List the company's invoices (invoice.view), oldest first",
            tag="invoices",
            company=True,
            parameters=_PAGE_PARAMS,
            responses={200: _page_of(_INVOICE)},
        ),
        "post": operation(
            "Create an invoice (invoice.create)",
            tag="invoices",
            company=True,
            request=obj(_INVOICE_PROPERTIES, required=_INVOICE_FIELDS, additional=False),
            responses={201: _INVOICE},
        ),
    },
    "/api/v1/invoices/{invoice_id}": {
        "get": operation(
            "Read an invoice (invoice.view)",
            tag="invoices",
            company=True,
            parameters=[_path_id("invoice_id")],
            responses={200: _INVOICE},
        ),
        "patch": operation(
            "Change an invoice (invoice.update)",
            tag="invoices",
            company=True,
            parameters=[_path_id("invoice_id")],
            request=obj(_INVOICE_PROPERTIES, additional=False),
            responses={200: _INVOICE},
        ),
        "delete": operation(
            "Delete an invoice (invoice.delete): soft deletion, 404 afterwards",
            tag="invoices",
            company=True,
            parameters=[_path_id("invoice_id")],
            responses={204: None},
        ),
    },
}


def register(app: Router, services: Services) -> None:
    """Add the companies, members, invitations and invoices routes."""
    app.add_route("/api/v1/companies", Companies(services))
    app.add_route("/api/v1/companies/{company_id}", CompanyItem(services))
    app.add_route("/api/v1/members", Members(services))
    app.add_route("/api/v1/members/transfer-ownership", OwnershipTransferResource(services))
    app.add_route("/api/v1/members/invitations", OrganizationInvitations(services))
    app.add_route(
        "/api/v1/members/invitations/{invitation_id}", OrganizationInvitationItem(services)
    )
    app.add_route("/api/v1/invitations", MyInvitations(services))
    app.add_route("/api/v1/invitations/{invitation_id}/accept", InvitationAccept(services))
    app.add_route("/api/v1/invitations/{invitation_id}/decline", InvitationDecline(services))
    app.add_route("/api/v1/members/{user_id}", MemberItem(services))
    app.add_route("/api/v1/invoices", Invoices(services))
    app.add_route("/api/v1/invoices/{invoice_id}", InvoiceItem(services))
