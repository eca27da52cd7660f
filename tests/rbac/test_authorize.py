"""The access decision: roles, custom sets, API-key scopes and lists (RBAC-2, KEY-4, KEY-5)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storno_security.errors import CompanyNotFoundError, PermissionDeniedError
from storno_security.rbac import (
    KEY_FORBIDDEN_PERMISSIONS,
    PERMISSION_INFO,
    ROLE_PERMISSIONS,
    SCOPE_PERMISSIONS,
    Company,
    Membership,
    Permission,
    PermissionKind,
    Principal,
    Role,
    Scope,
    authorize,
    effective_permissions,
)

ORG = "org-1"
OTHER_ORG = "org-2"
USER = "user-1"
COMPANY = Company(company_id="7d1c1f6e-3c1a-4d55-9a57-2d1f0f6f0a01", organization_id=ORG)
DELETED = datetime(2026, 2, 1, tzinfo=UTC)


def member(role: Role, **kw: object) -> Membership:
    return Membership(user_id=USER, organization_id=ORG, role=role, **kw)  # type: ignore[arg-type]


def user() -> Principal:
    return Principal.user(USER, organization_id=ORG)


def key(*scopes: str, permissions: list[str] | None = None) -> Principal:
    return Principal.api_key(USER, organization_id=ORG, scopes=scopes, permissions=permissions)


@pytest.mark.spec("RBAC-2")
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_user_gets_exactly_the_role_permissions(role: Role, permission: Permission) -> None:
    membership = member(role)
    if permission in ROLE_PERMISSIONS[role]:
        grant = authorize(user(), permission, organization_id=ORG, membership=membership)
        assert grant.permission is permission
        assert grant.role is role
        assert grant.effective_permissions == ROLE_PERMISSIONS[role]
    else:
        with pytest.raises(PermissionDeniedError) as info:
            authorize(user(), permission, organization_id=ORG, membership=membership)
        assert info.value.reason == "not_in_role"
        assert str(info.value) == "permission denied"


@pytest.mark.spec("RBAC-2")
def test_custom_permissions_replace_the_role_defaults() -> None:
    custom = member(Role.VIEWER, permissions=["invoice.view", "invoice.create", "audit.view"])
    assert authorize(user(), "invoice.create", organization_id=ORG, membership=custom)
    assert authorize(user(), "audit.view", organization_id=ORG, membership=custom)
    with pytest.raises(PermissionDeniedError):  # a default of Viewer, not in the custom set
        authorize(user(), "client.view", organization_id=ORG, membership=custom)
    empty = member(Role.ADMIN, permissions=[])
    with pytest.raises(PermissionDeniedError):
        authorize(user(), "org.view", organization_id=ORG, membership=empty)


@pytest.mark.spec("RBAC-2")
def test_custom_sets_cannot_hold_owner_acts_and_owner_has_no_custom_set() -> None:
    for owner_only in ("org.delete", "billing.manage", "org.transfer_ownership"):
        with pytest.raises(ValueError, match="Owner-only"):
            member(Role.ADMIN, permissions=[owner_only])
    with pytest.raises(ValueError, match="Owner"):
        member(Role.OWNER, permissions=["org.view"])
    with pytest.raises(ValueError, match="unknown permission"):
        member(Role.ADMIN, permissions=["root"])


@pytest.mark.spec("KEY-4")
@pytest.mark.parametrize(
    ("scope", "permission", "granted"),
    [
        ("read", "invoice.view", True),
        ("read", "invoice.create", False),
        ("write", "invoice.create", True),
        ("write", "invoice.issue", True),
        ("write", "company.manage", False),
        ("admin", "company.manage", True),
        ("admin", "audit.view", True),
        ("admin", "org.delete", True),
    ],
)
def test_key_scope_of_an_owner(scope: str, permission: str, granted: bool) -> None:
    owner = member(Role.OWNER)
    if granted:
        assert authorize(key(scope), permission, organization_id=ORG, membership=owner)
    else:
        with pytest.raises(PermissionDeniedError) as info:
            authorize(key(scope), permission, organization_id=ORG, membership=owner)
        assert info.value.reason == "not_in_scope"


@pytest.mark.spec("KEY-4")
def test_key_scope_is_intersected_with_the_role() -> None:
    viewer = member(Role.VIEWER)
    with pytest.raises(PermissionDeniedError) as info:
        authorize(key("admin"), "invoice.create", organization_id=ORG, membership=viewer)
    assert info.value.reason == "not_in_role"
    accountant = member(Role.ACCOUNTANT)
    allowed = effective_permissions(key("admin"), accountant)
    assert allowed == ROLE_PERMISSIONS[Role.ACCOUNTANT] - KEY_FORBIDDEN_PERMISSIONS


@pytest.mark.spec("KEY-4")
def test_explicit_list_is_intersected_with_the_current_membership_on_every_call() -> None:
    listed = key(permissions=["invoice.view", "invoice.issue", "company.manage"])
    as_admin = member(Role.ADMIN)
    assert authorize(listed, "company.manage", organization_id=ORG, membership=as_admin)
    with pytest.raises(PermissionDeniedError) as info:
        authorize(listed, "client.view", organization_id=ORG, membership=as_admin)
    assert info.value.reason == "not_in_key_permissions"
    # the creator is demoted to Accountant: the same key loses company.manage at once
    demoted = member(Role.ACCOUNTANT)
    with pytest.raises(PermissionDeniedError) as info:
        authorize(listed, "company.manage", organization_id=ORG, membership=demoted)
    assert info.value.reason == "not_in_role"
    assert authorize(listed, "invoice.issue", organization_id=ORG, membership=demoted)
    # removed: the key is dead
    removed = member(Role.ADMIN, deleted_at=DELETED)
    with pytest.raises(PermissionDeniedError) as info:
        authorize(listed, "invoice.view", organization_id=ORG, membership=removed)
    assert info.value.reason == "no_membership"


@pytest.mark.spec("KEY-4")
def test_list_and_scope_together_both_apply() -> None:
    both = key("read", permissions=["invoice.view", "invoice.create"])
    owner = member(Role.OWNER)
    assert effective_permissions(both, owner) == {Permission.INVOICE_VIEW}


@pytest.mark.spec("KEY-5")
@pytest.mark.parametrize("permission", sorted(KEY_FORBIDDEN_PERMISSIONS))
@pytest.mark.parametrize("scopes", [("read",), ("write",), ("admin",), ("read", "write", "admin")])
def test_keys_never_manage_keys_passwords_mfa_or_passkeys(
    permission: Permission, scopes: tuple[str, ...]
) -> None:
    owner = member(Role.OWNER)
    listed_only = key(permissions=[permission.value])
    for principal in (key(*scopes), key(*scopes, permissions=[permission.value]), listed_only):
        with pytest.raises(PermissionDeniedError) as info:
            authorize(principal, permission, organization_id=ORG, membership=owner)
        assert info.value.reason == "key_forbidden"
    # while the user itself may
    assert authorize(user(), permission, organization_id=ORG, membership=owner)


@pytest.mark.spec("RBAC-3")
def test_wrong_organization_or_foreign_membership_is_denied() -> None:
    owner = member(Role.OWNER)
    with pytest.raises(PermissionDeniedError) as info:
        authorize(user(), "org.view", organization_id=OTHER_ORG, membership=owner)
    assert info.value.reason == "wrong_organization"
    elsewhere = Principal.user(USER, organization_id=OTHER_ORG)
    with pytest.raises(PermissionDeniedError):
        authorize(elsewhere, "org.view", organization_id=OTHER_ORG, membership=owner)
    someone_else = Membership(user_id="user-2", organization_id=ORG, role=Role.OWNER)
    with pytest.raises(PermissionDeniedError) as info:
        authorize(user(), "org.view", organization_id=ORG, membership=someone_else)
    assert info.value.reason == "no_membership"
    with pytest.raises(PermissionDeniedError):
        authorize(user(), "org.view", organization_id=ORG, membership=None)


@pytest.mark.spec("RBAC-3")
def test_company_of_another_organization_or_deleted_is_not_found() -> None:
    owner = member(Role.OWNER)
    grant = authorize(
        user(), "invoice.view", organization_id=ORG, membership=owner, company=COMPANY
    )
    assert grant.company_id == COMPANY.company_id
    foreign = Company(company_id=COMPANY.company_id, organization_id=OTHER_ORG)
    gone = Company(company_id=COMPANY.company_id, organization_id=ORG, deleted_at=DELETED)
    for company in (foreign, gone):
        with pytest.raises(CompanyNotFoundError) as info:
            authorize(
                user(), "invoice.view", organization_id=ORG, membership=owner, company=company
            )
        assert str(info.value) == "company not found"


def test_bad_arguments_are_caller_errors() -> None:
    owner = member(Role.OWNER)
    with pytest.raises(ValueError, match="unknown permission"):
        authorize(user(), "invoice.steal", organization_id=ORG, membership=owner)
    with pytest.raises(TypeError):
        authorize("user-1", "org.view", organization_id=ORG, membership=owner)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no scopes"):
        Principal(kind="user", user_id=USER, organization_id=ORG, scopes=frozenset({"read"}))
    with pytest.raises(ValueError, match="needs a scope"):
        Principal.api_key(USER, organization_id=ORG)
    with pytest.raises(ValueError, match="unknown scope"):
        Principal.api_key(USER, organization_id=ORG, scopes=["root"])
    with pytest.raises(ValueError, match="unknown role"):
        Membership(user_id=USER, organization_id=ORG, role="god")
    with pytest.raises(ValueError, match="1 to 255"):
        Principal.user("", organization_id=ORG)


def test_principal_and_membership_fields_refuse_the_wrong_type() -> None:
    from storno_security.rbac import check_key_grant

    with pytest.raises(TypeError, match="user_id must be a str, not int"):
        Membership(user_id=7, organization_id=ORG, role=Role.VIEWER)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="deleted_at must be a datetime or None"):
        member(Role.VIEWER, deleted_at="2026-02-01")
    with pytest.raises(TypeError, match="kind must be a PrincipalKind or its name"):
        Principal(kind=1, user_id=USER, organization_id=ORG)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown principal kind"):
        Principal(kind="robot", user_id=USER, organization_id=ORG)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scopes must be an iterable of scope names"):
        Principal(kind="api_key", user_id=USER, organization_id=ORG, scopes="read")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scopes must be an iterable of scope names"):
        Principal(kind="api_key", user_id=USER, organization_id=ORG, scopes=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a scope must be a str"):
        Principal.api_key(USER, organization_id=ORG, scopes=[Scope.READ, 1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="creator must be a Membership"):
        check_key_grant(user(), scopes=["read"])  # type: ignore[arg-type]


@pytest.mark.spec("KEY-4")
def test_a_key_principal_takes_lists_of_names_never_a_bare_name() -> None:
    from storno_security.rbac import check_key_grant

    principal = Principal.api_key(
        USER, organization_id=ORG, scopes=(s for s in ["read"]), permissions=iter(["org.view"])
    )
    assert (principal.scopes, principal.permissions) == ({Scope.READ}, {Permission.ORG_VIEW})
    # a bare name is not read letter by letter (and then refused as unknown names)
    with pytest.raises(TypeError, match="scopes must be an iterable of scope names"):
        Principal.api_key(USER, organization_id=ORG, scopes="read")
    with pytest.raises(TypeError, match="permissions must be an iterable of permission names"):
        Principal.api_key(USER, organization_id=ORG, permissions="org.view")
    with pytest.raises(TypeError, match="permissions must be an iterable of permission names"):
        check_key_grant(member(Role.OWNER), permissions="org.view")


# --- properties ------------------------------------------------------------------------------

permissions_st = st.sampled_from(sorted(Permission))
custom_ceiling = sorted(
    p for p in Permission if PERMISSION_INFO[p].kind is not PermissionKind.OWNER
)


@st.composite
def memberships(draw: st.DrawFn) -> Membership:
    role = draw(st.sampled_from(list(Role)))
    custom = None
    if role is not Role.OWNER and draw(st.booleans()):
        custom = draw(st.frozensets(st.sampled_from(custom_ceiling)))
    removed = draw(st.booleans()) and draw(st.booleans())
    return Membership(
        user_id=USER,
        organization_id=draw(st.sampled_from([ORG, OTHER_ORG])),
        role=role,
        permissions=custom,
        deleted_at=DELETED if removed else None,
    )


@st.composite
def principals(draw: st.DrawFn) -> Principal:
    org = draw(st.sampled_from([ORG, OTHER_ORG]))
    if draw(st.booleans()):
        return Principal.user(USER, organization_id=org)
    scopes = draw(st.frozensets(st.sampled_from(["read", "write", "admin"])))
    listed = None
    if not scopes or draw(st.booleans()):
        listed = draw(st.frozensets(permissions_st).map(lambda s: sorted(p.value for p in s)))
    return Principal.api_key(USER, organization_id=org, scopes=scopes, permissions=listed)


@pytest.mark.spec("RBAC-2")
@pytest.mark.spec("KEY-4")
@pytest.mark.spec("KEY-5")
@given(principal=principals(), membership=memberships(), permission=permissions_st)
def test_no_principal_gets_a_permission_outside_its_role_or_scope(
    principal: Principal, membership: Membership, permission: Permission
) -> None:
    # the rule, restated independently of the implementation
    held = (
        membership.permissions
        if membership.permissions is not None
        else ROLE_PERMISSIONS[membership.role]
    )
    expected = (
        membership.deleted_at is None
        and principal.organization_id == ORG
        and membership.organization_id == ORG
        and permission in held
    )
    if principal.is_api_key:
        expected = expected and permission not in KEY_FORBIDDEN_PERMISSIONS
        if principal.scopes:
            expected = expected and any(
                permission in SCOPE_PERMISSIONS[s] for s in principal.scopes
            )
        if principal.permissions is not None:
            expected = expected and permission in principal.permissions
    try:
        grant = authorize(principal, permission, organization_id=ORG, membership=membership)
    except PermissionDeniedError:
        assert not expected
    else:
        assert expected
        assert grant.effective_permissions <= held
        if membership.role is not Role.OWNER:
            assert Permission.ORG_DELETE not in grant.effective_permissions
        if principal.is_api_key:
            assert not grant.effective_permissions & KEY_FORBIDDEN_PERMISSIONS


@pytest.mark.spec("KEY-4")
def test_explicit_list_must_be_within_the_creator_at_creation() -> None:
    from storno_security.rbac import check_key_grant

    accountant = member(Role.ACCOUNTANT)
    granted = check_key_grant(accountant, permissions=["invoice.view", "invoice.issue"])
    assert granted == {Permission.INVOICE_VIEW, Permission.INVOICE_ISSUE}
    assert check_key_grant(accountant, scopes=["read"]) == SCOPE_PERMISSIONS[Scope.READ]
    with pytest.raises(PermissionDeniedError) as info:
        check_key_grant(accountant, permissions=["invoice.view", "company.manage"])
    assert info.value.reason == "exceeds_creator"
    with pytest.raises(PermissionDeniedError) as info:
        check_key_grant(member(Role.OWNER), permissions=["apikey.manage"])
    assert info.value.reason == "key_forbidden"
    with pytest.raises(PermissionDeniedError):
        check_key_grant(member(Role.OWNER, deleted_at=DELETED), scopes=["read"])
    with pytest.raises(ValueError, match="needs a scope"):
        check_key_grant(accountant)
