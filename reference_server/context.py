"""Per-request context: who is calling, from where, and the authorization helpers resources use.

Resources never decide security themselves: :func:`authorize_request` hands the decision to
:func:`storno_security.rbac.authorize` with the membership and company read from the database.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import falcon
import sqlalchemy as sa

from reference_server import db
from reference_server.errors import ApiError
from reference_server.http import read_json
from reference_server.services import Services
from reference_server.settings import Settings
from storno_security.api_keys import ApiKeyPrincipal
from storno_security.rbac import (
    Authorization,
    Company,
    Membership,
    Permission,
    Principal,
    Role,
    authorize,
    parse_permissions,
    resolve_company,
    resolve_organization,
)
from storno_security.tokens import AccessTokenClaims

__all__ = [
    "Caller",
    "Resource",
    "audit_meta",
    "authorize_request",
    "client_ip",
    "membership_from_row",
    "require_user",
]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@attrs.frozen
class Caller:
    """The authenticated caller of a request."""

    user_id: str
    kind: str  # "user" (access token) or "api_key"
    claims: AccessTokenClaims | None = None
    api_key: ApiKeyPrincipal | None = None


class Resource:
    """What every resource has: the services, a JSON body reader, and named rate limits.

    ``rate_limits`` maps a method to a named policy (RL-1); methods not in it use the token
    bucket (RL-2).
    """

    rate_limits: ClassVar[dict[str, str]] = {}

    def __init__(self, services: Services) -> None:
        self.services = services

    def body(self, req: falcon.Request) -> dict[str, Any]:
        return read_json(req, max_bytes=self.services.settings.max_body_bytes)


def audit_meta(req: falcon.Request) -> dict[str, Any]:
    """The client address and user agent of a request, for an audit event."""
    return {"ip": getattr(req.context, "client_ip", None), "user_agent": req.user_agent}


def request_id_of(req: falcon.Request) -> str | None:
    value = req.get_header("X-Request-Id")
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return None


def client_ip(req: falcon.Request, settings: Settings) -> str:
    """The client address: the peer, or the last untrusted hop of ``X-Forwarded-For``.

    ``X-Forwarded-For`` is read only when the peer is a trusted proxy
    (``STORNO_TRUSTED_PROXIES``), and then from the right: the first address that is not a
    trusted proxy is the client. A client cannot choose its rate-limit bucket by sending the
    header itself.
    """
    peer = req.remote_addr or "0.0.0.0"  # noqa: S104 - only a rate-limit identifier
    if not settings.trusted_proxies or not _trusted(peer, settings):
        return peer
    forwarded = req.get_header("X-Forwarded-For") or ""
    hops = [part.strip() for part in forwarded.split(",") if part.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer
        if not _trusted(hop, settings):
            return hop
    return hops[0] if hops else peer


def _trusted(address: str, settings: Settings) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.trusted_proxies)


def require_user(req: falcon.Request) -> Caller:
    """The caller; 401 when the request carries no valid credential."""
    caller: Caller | None = getattr(req.context, "caller", None)
    if caller is None:
        raise ApiError(
            401,
            "authentication_required",
            "Authentication required.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


def require_interactive_user(req: falcon.Request) -> Caller:
    """The caller, who must hold an access token: API keys may not act here (KEY-5)."""
    caller = require_user(req)
    if caller.kind != "user":
        raise ApiError(403, "forbidden", "API keys cannot be used for this action.")
    return caller


def membership_from_row(row: sa.RowMapping | Mapping[str, Any]) -> Membership:
    permissions = row["permissions"]
    return Membership(
        user_id=row["user_id"],
        organization_id=row["organization_id"],
        role=Role(row["role"]),
        permissions=None if permissions is None else parse_permissions(permissions),
        is_default=bool(row["is_default"]),
        deleted_at=row["deleted_at"],
    )


def memberships_of(services: Services, user_id: str) -> list[Membership]:
    with services.db.read() as conn:
        rows = conn.execute(
            sa.select(db.memberships).where(db.memberships.c.user_id == user_id)
        ).mappings()
        return [membership_from_row(row) for row in rows]


def company_lookup(services: Services, organization_id: str) -> Any:
    def lookup(company_id: str) -> Company | None:
        with services.db.read() as conn:
            row = (
                conn.execute(
                    sa.select(
                        db.companies.c.id,
                        db.companies.c.organization_id,
                        db.companies.c.deleted_at,
                    ).where(db.companies.c.id == company_id)
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        return Company(
            company_id=row["id"],
            organization_id=row["organization_id"],
            deleted_at=row["deleted_at"],
        )

    return lookup


def authorize_request(
    req: falcon.Request,
    services: Services,
    permission: Permission | str,
    *,
    company: bool = False,
) -> Authorization:
    """Decide whether the caller may use ``permission`` here (RBAC-3, KEY-4).

    The organization comes from ``X-Organization`` or the default membership (for an API key:
    the key's organization); with ``company=True`` the ``X-Company`` header is required and must
    name a live company of that organization.

    Raises:
        ApiError: 401 without credentials.
        storno_security.errors.RbacError: not a member, no such company, not permitted
            (mapped to 404/400/403 by the error map).
    """
    caller = require_user(req)
    memberships = memberships_of(services, caller.user_id)
    if caller.api_key is not None:
        principal = Principal.from_api_key(caller.api_key)
        organization_id = caller.api_key.organization_id
        membership = next(
            (m for m in memberships if m.organization_id == organization_id),
            None,
        )
    else:
        membership = resolve_organization(
            req.get_header("X-Organization"), user_id=caller.user_id, memberships=memberships
        )
        organization_id = membership.organization_id
        principal = Principal.user(caller.user_id, organization_id=organization_id)
    found = None
    if company:
        found = resolve_company(
            req.get_header("X-Company"),
            organization_id=organization_id,
            companies=company_lookup(services, organization_id),
        )
    return authorize(
        principal,
        permission,
        organization_id=organization_id,
        membership=membership,
        company=found,
    )
