"""The server's own resources (health, tenancy, invoices, vault, license, XML, audit, GDPR),
after the kit's HTTP routes (sign-in, account, MFA, passkeys, API keys) from
:mod:`storno_security.integrations.falcon.routes`."""

from __future__ import annotations

from reference_server.resources import (
    audit,
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
from storno_security.integrations.falcon import observe
from storno_security.integrations.falcon.routes import ROUTES as KIT_ROUTES
from storno_security.integrations.falcon.routing import Routes

__all__ = ["MODULES"]

#: Every route module, in the order their routes are added.
MODULES: tuple[Routes, ...] = (
    meta.routes,
    observe.routes,
    *KIT_ROUTES,
    companies.routes,
    members.routes,
    invitations.routes,
    invoices.routes,
    vault.routes,
    license.routes,
    xml.routes,
    audit.routes,
    gdpr.routes,
)
