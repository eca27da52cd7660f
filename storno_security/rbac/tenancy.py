"""Tenancy: which organization and which company a request acts in (RBAC-3).

The server passes the raw header values and the records to decide on; these functions hold the
rules, so every endpoint answers the same way:

* ``X-Company`` names a company by its UUID. A malformed id, an unknown id, a soft-deleted
  company and a company of another organization all raise the same
  :class:`~storno_security.errors.CompanyNotFoundError` (404): ids cannot be probed. A missing
  header where one is required raises :class:`~storno_security.errors.CompanyRequiredError`
  (400).
* ``X-Organization`` names one of the caller's organizations; without it, the caller's default
  membership is used.
* A user has at most one live membership per organization (RBAC-5): two of them are refused
  rather than picking one, which could hand a request a different role than intended. Give the
  application's membership table a unique constraint on ``(user_id, organization_id)`` among
  live rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Literal, overload

from storno_security.errors import (
    CompanyNotFoundError,
    CompanyRequiredError,
    DuplicateMembershipError,
    OrganizationNotFoundError,
    OrganizationRequiredError,
)
from storno_security.rbac.model import Company, Membership, is_visible

__all__ = ["CompanyLookup", "canonical_uuid", "resolve_company", "resolve_organization"]

#: How the server hands companies to :func:`resolve_company`: a mapping from canonical id to
#: company, or a function that loads one by canonical id (``None`` when unknown).
CompanyLookup = Mapping[str, Company] | Callable[[str], Company | None]

_UUID_RE: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE | re.ASCII
)
_MAX_ORG_ID = 255
_OWS = " \t"  # optional whitespace around an HTTP header value


def canonical_uuid(value: str) -> str | None:
    """``value`` as a canonical lower-case hyphenated UUID, or ``None`` if it is not one.

    Only the 36-character hyphenated form is accepted (no braces, no ``urn:uuid:``, no bare
    hex), so one company has exactly one spelling.
    """
    if not isinstance(value, str) or len(value) != 36 or not _UUID_RE.fullmatch(value):
        return None
    return value.lower()


def _header(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("a header value must be a str or None")
    value = value.strip(_OWS)
    return value or None


@overload
def resolve_company(
    header: str | None,
    *,
    organization_id: str,
    companies: CompanyLookup,
    required: Literal[True] = ...,
) -> Company: ...


@overload
def resolve_company(
    header: str | None,
    *,
    organization_id: str,
    companies: CompanyLookup,
    required: bool,
) -> Company | None: ...


def resolve_company(
    header: str | None,
    *,
    organization_id: str,
    companies: CompanyLookup,
    required: bool = True,
) -> Company | None:
    """Resolve an ``X-Company`` value to a live company of the caller's organization (RBAC-3).

    Args:
        header: the raw header value, or ``None`` when the request has none.
        organization_id: the organization the request acts in (already resolved).
        companies: a mapping or a function that finds a company by its canonical id. It may
            return companies of any organization and soft-deleted ones: they are refused here.
        required: when ``False``, a missing header returns ``None`` instead of raising.

    Returns:
        The company; ``None`` only when ``required`` is false and there is no header.

    Raises:
        TypeError: ``header`` is neither a str nor ``None``, or the lookup returned something
            other than a :class:`Company` or ``None``.
        CompanyRequiredError: the header is missing or empty and ``required`` is true (400).
        CompanyNotFoundError: malformed id, unknown id, soft-deleted company, or a company of
            another organization: one error for all (404). ``reason`` tells them apart for logs.
    """
    value = _header(header)
    if value is None:
        if required:
            raise CompanyRequiredError(reason="missing")
        return None
    company_id = canonical_uuid(value)
    if company_id is None:
        raise CompanyNotFoundError(reason="malformed")
    found = companies.get(company_id) if isinstance(companies, Mapping) else companies(company_id)
    if found is None:
        raise CompanyNotFoundError(reason="unknown")
    if not isinstance(found, Company):
        raise TypeError("the company lookup must return a Company or None")
    if found.company_id.lower() != company_id:
        raise CompanyNotFoundError(reason="unknown")
    if found.organization_id != organization_id:
        raise CompanyNotFoundError(reason="other_organization")
    if not is_visible(found):
        raise CompanyNotFoundError(reason="deleted")
    return found


def resolve_organization(
    header: str | None, *, user_id: str, memberships: Iterable[Membership]
) -> Membership:
    """The caller's membership for the organization a request acts in (RBAC-3).

    Args:
        header: the raw ``X-Organization`` value, or ``None``.
        user_id: the caller (for an API key, its user; the server should not call this for a
            key, whose organization is fixed).
        memberships: the caller's memberships (others' are ignored, as are removed ones).

    Returns:
        The membership in the named organization, or, without a header, the default one (the
        one marked ``is_default``, or the only one).

    Raises:
        TypeError: ``header`` is neither a str nor ``None``.
        OrganizationNotFoundError: the header names an organization where the caller has no
            live membership (unknown, malformed, removed, someone else's: one error for all).
        OrganizationRequiredError: no header and no single default membership.
        DuplicateMembershipError: the caller has two live memberships in one organization
            (``reason="duplicate_membership"``): the stored data breaks RBAC-5, and no
            membership is chosen.
    """
    value = _header(header)
    mine = [m for m in memberships if m.user_id == user_id and is_visible(m)]
    if len({m.organization_id for m in mine}) != len(mine):
        raise DuplicateMembershipError(reason="duplicate_membership")
    if value is not None:
        if len(value) > _MAX_ORG_ID:
            raise OrganizationNotFoundError(reason="malformed")
        for membership in mine:
            if membership.organization_id == value:
                return membership
        raise OrganizationNotFoundError(reason="not_a_member")
    defaults = [m for m in mine if m.is_default]
    if len(defaults) == 1:
        return defaults[0]
    if not defaults and len(mine) == 1:
        return mine[0]
    raise OrganizationRequiredError(reason="no_default" if not defaults else "ambiguous_default")
