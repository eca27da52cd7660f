"""HTTP resources, one module per area. Each module declares its routes (``routes``): the
handler, the request-body schema it validates and publishes, the rate limit, the credential."""

from __future__ import annotations

from types import ModuleType

from reference_server.resources import (
    api_keys,
    audit,
    auth,
    companies,
    gdpr,
    invitations,
    invoices,
    license,
    me,
    members,
    meta,
    mfa,
    passkeys,
    vault,
    xml,
)

__all__ = ["MODULES"]

#: Every resource module, in the order their routes are added.
MODULES: tuple[ModuleType, ...] = (
    meta,
    auth,
    me,
    mfa,
    passkeys,
    api_keys,
    companies,
    members,
    invitations,
    invoices,
    vault,
    license,
    xml,
    audit,
    gdpr,
)
