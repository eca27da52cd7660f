"""The organization's license (LIC-1..LIC-3): its status, and installing one.

``org.view`` reads the status, ``license.manage`` installs. The stored token is verified again
on every read (offline, by the vendor's public key): a license that no longer verifies, or
none, reports the free plan, never an error page. Every check is recorded as
``license.checked``. The plan is reported here; :meth:`Server.require_plan` enforces it.
"""

from __future__ import annotations

from typing import Any

from reference_server.wiring import FREE_PLAN, Server
from storno_security.audit import SecurityEventType, event_from_error, event_from_license_status
from storno_security.errors import InvalidLicenseError
from storno_security.integrations.falcon.errors import ApiError
from storno_security.integrations.falcon.openapi import obj
from storno_security.integrations.falcon.routing import Body, Ctx, Routes, iso
from storno_security.integrations.falcon.schemas import string
from storno_security.license import Entitlements, LicenseState, LicenseStatus
from storno_security.ratelimit import LICENSE_VALIDATION
from storno_security.rbac import Authorization, Permission

__all__ = ["FREE_PLAN", "routes"]

routes = Routes()

_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_ENTITLEMENTS = obj(
    {
        "plan": {"type": "string"},
        "features": {"type": "array", "items": {"type": "string"}},
        "max_companies": {"type": ["integer", "null"]},
        "max_users": {"type": ["integer", "null"]},
    },
    required=("plan", "features", "max_companies", "max_users"),
)
_STATUS = obj(
    {
        "state": {"enum": ["unlicensed", "invalid", "valid", "grace", "expired"]},
        "plan": {"type": "string"},
        "entitlements": _ENTITLEMENTS,
        "license": {"oneOf": [{"type": "null"}, {"type": "object"}]},
        "expires_at": _TIME_OR_NULL,
        "grace_ends_at": _TIME_OR_NULL,
        "clock_rollback": {"type": "boolean"},
    },
    required=("state", "plan", "entitlements", "license", "clock_rollback"),
)


def _entitlements(entitlements: Entitlements) -> dict[str, Any]:
    return {
        "plan": entitlements.plan,
        "features": sorted(entitlements.features),
        "max_companies": entitlements.max_companies,
        "max_users": entitlements.max_users,
    }


def _unlicensed(state: str = "unlicensed") -> dict[str, Any]:
    return {
        "state": state,
        "plan": FREE_PLAN.plan,
        "entitlements": _entitlements(FREE_PLAN),
        "license": None,
        "expires_at": None,
        "grace_ends_at": None,
        "clock_rollback": False,
    }


def _status(status: LicenseStatus) -> dict[str, Any]:
    entitlements = status.entitlements or FREE_PLAN
    lic = status.license
    return {
        "state": status.state.value,
        "plan": entitlements.plan,
        "entitlements": _entitlements(entitlements),
        "license": {
            "license_id": lic.license_id,
            "org_name": lic.org_name,
            "plan": lic.plan,
            "instance_id": lic.instance_id,
            "issued_at": iso(lic.issued_at),
            "not_before": iso(lic.not_before),
            "expires_at": iso(lic.expires_at),
        },
        "expires_at": iso(lic.expires_at),
        "grace_ends_at": iso(status.grace_ends_at),
        "clock_rollback": status.clock_rollback,
    }


def _check(ctx: Ctx[Server], auth: Authorization, token: str, method: str | None) -> LicenseStatus:
    """Verify ``token`` for the caller's organization; record the check either way.

    Raises:
        InvalidLicenseError: not a genuine license of this organization and installation.
    """
    verifier = ctx.state.license_verifier
    assert verifier is not None  # the callers answer before, without a vendor key
    org_id, actor = auth.organization_id, auth.principal.user_id
    try:
        status = verifier.verify(token, expected_organization_id=org_id)
    except InvalidLicenseError as exc:
        ctx.kit.emit_event(
            event_from_error(
                SecurityEventType.LICENSE_CHECKED,
                exc,
                at=ctx.state.clock.now(),
                method=method,
                actor_id=actor,
                organization_id=org_id,
            )
        )
        raise
    ctx.kit.emit_event(event_from_license_status(status, actor_id=actor, organization_id=org_id))
    return status


@routes.get(
    "/api/v1/license",
    summary="The organization's license status",
    tag="license",
    organization=True,
    responses={200: _STATUS},
)
def license_status(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.ORG_VIEW)
    token = ctx.state.data.licenses.token(auth.organization_id)
    if token is None or ctx.state.license_verifier is None:
        ctx.json(_unlicensed())
        return
    try:
        status = _check(ctx, auth, token, None)
    except InvalidLicenseError:  # the key or the instance changed since: the free plan
        ctx.json(_unlicensed("invalid"))
        return
    ctx.json(_status(status))


@routes.post(
    "/api/v1/license",
    summary="Install (activate) a license for the organization",
    description=(
        "A forged, malformed or another organization's license is `422 invalid_license`; an "
        "expired one `422 license_expired`; without a vendor key `404 not_enabled`."
    ),
    tag="license",
    organization=True,
    limit=LICENSE_VALIDATION,
    body=obj({"license": string(16_384)}, required=("license",)),
    responses={200: _STATUS},
)
def install_license(ctx: Ctx[Server], body: Body) -> None:
    auth = ctx.authorize(Permission.LICENSE_MANAGE)
    if ctx.state.license_verifier is None:
        raise ApiError(404, "not_enabled", "License verification is not configured.")
    status = _check(ctx, auth, body["license"], "activate")
    if status.state is LicenseState.EXPIRED:
        raise ApiError(422, "license_expired", "The license has expired.")
    ctx.state.data.licenses.install(
        auth.organization_id, body["license"], now=ctx.state.clock.now()
    )
    ctx.json(_status(status))
