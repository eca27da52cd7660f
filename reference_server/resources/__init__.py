"""HTTP resources, one module per area. Each module declares its routes (``routes``): the
handler, the request-body schema it validates and publishes, the rate limit, the credential."""

from __future__ import annotations

from types import ModuleType

from reference_server.resources import (
    audit,
    auth,
    companies,
    gdpr,
    invitations,
    invoices,
    license,
    members,
    meta,
    vault,
    xml,
)

__all__ = ["MODULES"]

#: Every resource module, in the order their routes are added.
MODULES: tuple[ModuleType, ...] = (
    meta,
    auth,
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
