"""The permission catalogue and the roles (RBAC-2), checked against a table written here by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storno_security.rbac import (
    ALL_PERMISSIONS,
    KEY_FORBIDDEN_PERMISSIONS,
    PERMISSION_INFO,
    ROLE_PERMISSIONS,
    SCOPE_PERMISSIONS,
    Permission,
    Role,
    Scope,
    parse_permission,
    parse_permissions,
    permission_table_markdown,
)

DOCS = Path(__file__).parents[2] / "docs" / "rbac.md"

#: Written independently of the code: which roles hold each permission. O = Owner, A = Admin,
#: C = Accountant, V = Viewer.
EXPECTED: dict[str, str] = {
    "org.view": "OACV",
    "company.view": "OACV",
    "invoice.view": "OACV",
    "proforma.view": "OACV",
    "receipt.view": "OACV",
    "expense.view": "OACV",
    "client.view": "OACV",
    "product.view": "OACV",
    "payment.view": "OACV",
    "report.view": "OACV",
    "password.change": "OACV",
    "mfa.manage": "OACV",
    "passkey.manage": "OACV",
    "invoice.create": "OAC",
    "invoice.update": "OAC",
    "invoice.delete": "OAC",
    "invoice.issue": "OAC",
    "invoice.send": "OAC",
    "invoice.cancel": "OAC",
    "proforma.create": "OAC",
    "proforma.update": "OAC",
    "proforma.delete": "OAC",
    "proforma.convert": "OAC",
    "receipt.create": "OAC",
    "receipt.cancel": "OAC",
    "expense.create": "OAC",
    "expense.update": "OAC",
    "expense.delete": "OAC",
    "client.create": "OAC",
    "client.update": "OAC",
    "client.delete": "OAC",
    "product.create": "OAC",
    "product.update": "OAC",
    "product.delete": "OAC",
    "payment.record": "OAC",
    "payment.delete": "OAC",
    "company.create": "OA",
    "company.manage": "OA",
    "company.delete": "OA",
    "member.view": "OA",
    "member.manage": "OA",
    "settings.manage": "OA",
    "apikey.manage": "OA",
    "vault.manage": "OA",
    "audit.view": "OA",
    "license.manage": "OA",
    "data.export": "OA",
    "org.delete": "O",
    "org.transfer_ownership": "O",
    "billing.manage": "O",
}
ROLE_LETTER = {Role.OWNER: "O", Role.ADMIN: "A", Role.ACCOUNTANT: "C", Role.VIEWER: "V"}
#: Which scopes allow each permission, by hand: r = read, w = write, a = admin.
EXPECTED_SCOPES = {
    name: "rwa" if roles == "OACV" else "wa" if roles == "OAC" else "a"
    for name, roles in EXPECTED.items()
}
for _name in ("password.change", "mfa.manage", "passkey.manage", "apikey.manage"):
    EXPECTED_SCOPES[_name] = ""


def test_catalogue_is_the_expected_table() -> None:
    assert {p.value for p in Permission} == set(EXPECTED)
    assert set(PERMISSION_INFO) == ALL_PERMISSIONS == set(Permission)


@pytest.mark.spec("RBAC-2")
def test_at_least_forty_dotted_permissions_each_documented() -> None:
    assert len(ALL_PERMISSIONS) >= 40
    for permission in Permission:
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", permission.value)
        description = PERMISSION_INFO[permission].description
        assert description
        assert "\n" not in description
        assert description.endswith(".")


@pytest.mark.spec("RBAC-2")
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", sorted(EXPECTED))
def test_every_permission_by_every_role(permission: str, role: Role) -> None:
    held = Permission(permission) in ROLE_PERMISSIONS[role]
    assert held == (ROLE_LETTER[role] in EXPECTED[permission])


@pytest.mark.spec("KEY-4")
@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize("permission", sorted(EXPECTED))
def test_every_permission_by_every_scope(permission: str, scope: Scope) -> None:
    allowed = Permission(permission) in SCOPE_PERMISSIONS[scope]
    assert allowed == (scope.value[0] in EXPECTED_SCOPES[permission])


@pytest.mark.spec("RBAC-2")
def test_role_shapes() -> None:
    owner, admin = ROLE_PERMISSIONS[Role.OWNER], ROLE_PERMISSIONS[Role.ADMIN]
    assert owner == ALL_PERMISSIONS
    assert owner - admin == {
        Permission.ORG_DELETE,
        Permission.BILLING_MANAGE,
        Permission.ORG_TRANSFER_OWNERSHIP,
    }
    assert ROLE_PERMISSIONS[Role.VIEWER] < ROLE_PERMISSIONS[Role.ACCOUNTANT] < admin < owner
    viewer_business = ROLE_PERMISSIONS[Role.VIEWER] - {
        Permission.PASSWORD_CHANGE,
        Permission.MFA_MANAGE,
        Permission.PASSKEY_MANAGE,
    }
    assert all(p.value.endswith(".view") for p in viewer_business)
    # figures of the catalogue (the platform has 50 / 49 / 36 / 13; see docs/rbac.md)
    assert [len(ROLE_PERMISSIONS[r]) for r in Role] == [50, 47, 36, 13]


@pytest.mark.spec("KEY-5")
def test_scopes_nest_and_never_allow_key_forbidden() -> None:
    assert SCOPE_PERMISSIONS[Scope.READ] < SCOPE_PERMISSIONS[Scope.WRITE]
    assert SCOPE_PERMISSIONS[Scope.WRITE] < SCOPE_PERMISSIONS[Scope.ADMIN]
    assert {
        Permission.APIKEY_MANAGE,
        Permission.PASSWORD_CHANGE,
        Permission.MFA_MANAGE,
        Permission.PASSKEY_MANAGE,
    } == KEY_FORBIDDEN_PERMISSIONS
    for allowed in SCOPE_PERMISSIONS.values():
        assert not allowed & KEY_FORBIDDEN_PERMISSIONS


def test_tables_are_frozen() -> None:
    with pytest.raises(TypeError):
        ROLE_PERMISSIONS[Role.VIEWER] = ALL_PERMISSIONS  # type: ignore[index]
    with pytest.raises(TypeError):
        SCOPE_PERMISSIONS[Scope.READ] = ALL_PERMISSIONS  # type: ignore[index]
    assert isinstance(ROLE_PERMISSIONS[Role.VIEWER], frozenset)


def test_parse_permission() -> None:
    assert parse_permission("invoice.view") is Permission.INVOICE_VIEW
    with pytest.raises(ValueError, match="unknown permission"):
        parse_permission("invoice.steal")
    with pytest.raises(TypeError):
        parse_permission(3)  # type: ignore[arg-type]
    assert parse_permissions(["org.view", "org.view"]) == {Permission.ORG_VIEW}
    with pytest.raises(TypeError):
        parse_permissions("org.view")


def test_docs_table_matches_the_code() -> None:
    text = DOCS.read_text()
    begin, end = "<!-- permissions:begin -->\n", "<!-- permissions:end -->"
    assert begin in text
    assert end in text
    table = text.split(begin, 1)[1].split(end, 1)[0]
    assert table == permission_table_markdown(), (
        "docs/rbac.md is out of date: paste permission_table_markdown() between the markers"
    )
