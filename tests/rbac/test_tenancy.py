"""Tenancy: X-Company and X-Organization resolution (RBAC-3) and soft deletion (RBAC-4)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storno_security.errors import (
    CompanyNotFoundError,
    CompanyRequiredError,
    OrganizationNotFoundError,
    OrganizationRequiredError,
)
from storno_security.rbac import (
    Company,
    Membership,
    Role,
    canonical_uuid,
    is_visible,
    only_visible,
    resolve_company,
    resolve_organization,
)

ORG, OTHER = "org-a", "org-b"
DELETED = datetime(2026, 2, 1, tzinfo=UTC)
MINE = Company(company_id="11111111-1111-4111-8111-111111111111", organization_id=ORG)
THEIRS = Company(company_id="22222222-2222-4222-8222-222222222222", organization_id=OTHER)
GONE = Company(
    company_id="33333333-3333-4333-8333-333333333333", organization_id=ORG, deleted_at=DELETED
)
COMPANIES = {c.company_id: c for c in (MINE, THEIRS, GONE)}


@pytest.mark.spec("RBAC-3")
def test_own_company_resolves_in_any_spelling_of_its_uuid() -> None:
    for header in (MINE.company_id, MINE.company_id.upper(), f" {MINE.company_id}\t"):
        assert resolve_company(header, organization_id=ORG, companies=COMPANIES) == MINE
    assert resolve_company(MINE.company_id, organization_id=ORG, companies=COMPANIES.get) == MINE


@pytest.mark.spec("RBAC-3")
@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (THEIRS.company_id, "other_organization"),
        (GONE.company_id, "deleted"),
        (str(uuid.UUID(int=7)), "unknown"),
        ("not-a-uuid", "malformed"),
        ("{" + MINE.company_id + "}", "malformed"),
        (MINE.company_id.replace("-", ""), "malformed"),
        ("urn:uuid:" + MINE.company_id, "malformed"),
        ("1 OR 1=1", "malformed"),
        ("x" * 10_000, "malformed"),
    ],
)
def test_every_unusable_company_is_the_same_not_found(header: str, reason: str) -> None:
    with pytest.raises(CompanyNotFoundError) as info:
        resolve_company(header, organization_id=ORG, companies=COMPANIES)
    assert type(info.value) is CompanyNotFoundError
    assert str(info.value) == "company not found"
    assert info.value.reason == reason


@pytest.mark.spec("RBAC-3")
@pytest.mark.parametrize("header", [None, "", "  "])
def test_missing_company_header_is_a_distinct_required_error(header: str | None) -> None:
    with pytest.raises(CompanyRequiredError):
        resolve_company(header, organization_id=ORG, companies=COMPANIES)
    assert resolve_company(header, organization_id=ORG, companies=COMPANIES, required=False) is None
    assert not issubclass(CompanyRequiredError, CompanyNotFoundError)


def test_a_lookup_that_returns_the_wrong_record_is_not_trusted() -> None:
    with pytest.raises(CompanyNotFoundError):
        resolve_company(MINE.company_id, organization_id=ORG, companies=lambda _id: GONE)
    with pytest.raises(TypeError):
        resolve_company(MINE.company_id, organization_id=ORG, companies=lambda _id: "x")  # type: ignore[arg-type,return-value]


def test_canonical_uuid() -> None:
    assert canonical_uuid("ABCDEF01-2345-6789-ABCD-EF0123456789") == (
        "abcdef01-2345-6789-abcd-ef0123456789"
    )
    assert canonical_uuid("abcdef0123456789abcdef0123456789") is None
    assert canonical_uuid("abcdef01-2345-6789-abcd-ef012345678\n") is None


company_st = st.builds(
    Company,
    company_id=st.uuids().map(str),
    organization_id=st.sampled_from([ORG, OTHER, "org-c"]),
    deleted_at=st.sampled_from([None, DELETED]),
)


@pytest.mark.spec("RBAC-3")
@given(
    companies=st.lists(company_st, max_size=8),
    header=st.one_of(st.uuids().map(str), st.text(max_size=40), st.none()),
    pick=st.integers(min_value=0, max_value=10),
)
def test_a_company_of_another_organization_is_never_resolved(
    companies: list[Company], header: str | None, pick: int
) -> None:
    table = {c.company_id: c for c in companies}
    if companies and pick < len(companies):
        header = companies[pick].company_id.upper() if pick % 2 else companies[pick].company_id
    try:
        found = resolve_company(header, organization_id=ORG, companies=table)
    except (CompanyNotFoundError, CompanyRequiredError):
        target = table.get((header or "").strip(" \t").lower())
        assert target is None or target.organization_id != ORG or target.deleted_at is not None
    else:
        assert found.organization_id == ORG
        assert found.deleted_at is None
        assert found.company_id == (header or "").strip(" \t").lower()


def member(org: str, role: Role = Role.ADMIN, **kw: object) -> Membership:
    return Membership(user_id="u1", organization_id=org, role=role, **kw)  # type: ignore[arg-type]


@pytest.mark.spec("RBAC-3")
def test_organization_from_header_or_default_membership() -> None:
    own = member(ORG, Role.OWNER, is_default=True)
    invited = member(OTHER, Role.ACCOUNTANT)
    ms = [own, invited]
    assert resolve_organization(None, user_id="u1", memberships=ms) == own
    assert resolve_organization(OTHER, user_id="u1", memberships=ms) == invited
    assert resolve_organization(None, user_id="u1", memberships=[invited]) == invited


@pytest.mark.spec("RBAC-3")
def test_organization_not_mine_is_not_found() -> None:
    ms = [
        member(ORG, is_default=True),
        member("org-removed", deleted_at=DELETED),
        Membership(user_id="u2", organization_id="org-u2", role=Role.OWNER),
    ]
    for header in ("org-removed", "org-u2", "org-unknown", "x" * 300):
        with pytest.raises(OrganizationNotFoundError):
            resolve_organization(header, user_id="u1", memberships=ms)


def test_organization_required_without_a_single_default() -> None:
    with pytest.raises(OrganizationRequiredError):
        resolve_organization(None, user_id="u1", memberships=[])
    with pytest.raises(OrganizationRequiredError):
        resolve_organization(None, user_id="u1", memberships=[member(ORG), member(OTHER)])
    with pytest.raises(OrganizationRequiredError):
        resolve_organization(
            None,
            user_id="u1",
            memberships=[member(ORG, is_default=True), member(OTHER, is_default=True)],
        )


@pytest.mark.spec("RBAC-4")
def test_soft_deleted_records_are_invisible() -> None:
    assert is_visible(MINE)
    assert not is_visible(GONE)
    later = datetime(2099, 1, 1, tzinfo=UTC)  # any deleted_at hides the record
    assert not is_visible(attrs.evolve(MINE, deleted_at=later))
    assert only_visible([MINE, GONE, THEIRS]) == [MINE, THEIRS]
    removed = member(ORG, Role.OWNER, deleted_at=DELETED)
    assert not is_visible(removed)
    assert removed.effective_permissions == frozenset()

    @attrs.frozen
    class Invoice:  # any record with deleted_at works
        number: str
        deleted_at: datetime | None = None

    assert only_visible([Invoice("1"), Invoice("2", DELETED)]) == [Invoice("1")]


def test_deleted_at_must_be_aware() -> None:
    with pytest.raises(ValueError, match="naive"):
        Company(company_id="c", organization_id=ORG, deleted_at=datetime(2026, 1, 1))


@pytest.mark.spec("RBAC-1")
def test_user_organization_company_model() -> None:
    from storno_security.errors import PermissionDeniedError
    from storno_security.rbac import Principal, authorize

    # a membership gives one user exactly one role in one organization
    own = member(ORG, Role.OWNER, is_default=True)
    assert own.role is Role.OWNER
    assert own.effective_permissions  # the Owner of the organization created at registration
    with pytest.raises(TypeError):
        member(ORG, role=[Role.OWNER, Role.ADMIN])  # type: ignore[arg-type]
    # it grants nothing in another organization, and the company hangs off its organization
    principal = Principal.user("u1", organization_id=OTHER)
    with pytest.raises(PermissionDeniedError):
        authorize(principal, "org.view", organization_id=OTHER, membership=own)
    grant = authorize(
        Principal.user("u1", organization_id=ORG),
        "company.view",
        organization_id=ORG,
        membership=own,
        company=MINE,
    )
    assert grant.company_id == MINE.company_id
    assert grant.organization_id == MINE.organization_id == ORG


@pytest.mark.parametrize("header", [b"org-a", 7])
def test_a_header_value_must_be_text(header: object) -> None:
    memberships = [member(ORG, Role.OWNER, is_default=True)]
    with pytest.raises(TypeError, match="a header value must be a str or None"):
        resolve_organization(header, user_id="u1", memberships=memberships)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a header value must be a str or None"):
        resolve_company(header, organization_id=ORG, companies=COMPANIES)  # type: ignore[arg-type]
