"""The permission catalogue, the roles and the API-key scopes (RBAC-2, KEY-4, KEY-5).

Every permission is a dotted name (``invoice.view``) with one kind and one line of
documentation. The kind decides who may hold it:

* ``read``: looking at business data. Every role; the ``read`` scope of an API key.
* ``write``: creating and changing financial documents and clients. Owner, Admin, Accountant;
  the ``write`` scope.
* ``admin``: running the organization (companies, members, keys, vault, audit log). Owner and
  Admin; the ``admin`` scope.
* ``owner``: the three acts only the Owner may do (delete the organization, billing, transfer
  ownership). The ``admin`` scope of a key created by the Owner.
* ``account``: a user's own credentials (password, MFA, passkeys). Every role, never an API key
  (KEY-5).

The tables here are frozen: ``Mapping`` views over dictionaries built once at import, holding
frozensets. Nothing registers anything into process state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import attrs

__all__ = [
    "ALL_PERMISSIONS",
    "KEY_FORBIDDEN_PERMISSIONS",
    "PERMISSION_INFO",
    "ROLE_PERMISSIONS",
    "SCOPE_PERMISSIONS",
    "Permission",
    "PermissionInfo",
    "PermissionKind",
    "Role",
    "Scope",
    "parse_permission",
    "parse_permissions",
    "permission_table_markdown",
]


class Permission(enum.StrEnum):
    """A named permission. The value is the dotted name used in APIs and storage."""

    # read
    ORG_VIEW = "org.view"
    COMPANY_VIEW = "company.view"
    INVOICE_VIEW = "invoice.view"
    PROFORMA_VIEW = "proforma.view"
    RECEIPT_VIEW = "receipt.view"
    EXPENSE_VIEW = "expense.view"
    CLIENT_VIEW = "client.view"
    PRODUCT_VIEW = "product.view"
    PAYMENT_VIEW = "payment.view"
    REPORT_VIEW = "report.view"
    # account
    PASSWORD_CHANGE = "password.change"  # noqa: S105 - a permission name
    MFA_MANAGE = "mfa.manage"
    PASSKEY_MANAGE = "passkey.manage"
    # write
    INVOICE_CREATE = "invoice.create"
    INVOICE_UPDATE = "invoice.update"
    INVOICE_DELETE = "invoice.delete"
    INVOICE_ISSUE = "invoice.issue"
    INVOICE_SEND = "invoice.send"
    INVOICE_CANCEL = "invoice.cancel"
    PROFORMA_CREATE = "proforma.create"
    PROFORMA_UPDATE = "proforma.update"
    PROFORMA_DELETE = "proforma.delete"
    PROFORMA_CONVERT = "proforma.convert"
    RECEIPT_CREATE = "receipt.create"
    RECEIPT_CANCEL = "receipt.cancel"
    EXPENSE_CREATE = "expense.create"
    EXPENSE_UPDATE = "expense.update"
    EXPENSE_DELETE = "expense.delete"
    CLIENT_CREATE = "client.create"
    CLIENT_UPDATE = "client.update"
    CLIENT_DELETE = "client.delete"
    PRODUCT_CREATE = "product.create"
    PRODUCT_UPDATE = "product.update"
    PRODUCT_DELETE = "product.delete"
    PAYMENT_RECORD = "payment.record"
    PAYMENT_DELETE = "payment.delete"
    # admin
    COMPANY_CREATE = "company.create"
    COMPANY_MANAGE = "company.manage"
    COMPANY_DELETE = "company.delete"
    MEMBER_VIEW = "member.view"
    MEMBER_MANAGE = "member.manage"
    SETTINGS_MANAGE = "settings.manage"
    APIKEY_MANAGE = "apikey.manage"
    VAULT_MANAGE = "vault.manage"
    AUDIT_VIEW = "audit.view"
    LICENSE_MANAGE = "license.manage"
    DATA_EXPORT = "data.export"
    # owner
    ORG_DELETE = "org.delete"
    ORG_TRANSFER_OWNERSHIP = "org.transfer_ownership"
    BILLING_MANAGE = "billing.manage"


class PermissionKind(enum.StrEnum):
    """Which roles and scopes a permission belongs to (see the module docstring)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    OWNER = "owner"
    ACCOUNT = "account"


class Role(enum.StrEnum):
    """A member's role in an organization (RBAC-1)."""

    OWNER = "owner"
    ADMIN = "admin"
    ACCOUNTANT = "accountant"
    VIEWER = "viewer"


class Scope(enum.StrEnum):
    """An API key's scope (KEY-3): ``read`` ⊂ ``write`` ⊂ ``admin``."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@attrs.frozen
class PermissionInfo:
    """One row of the catalogue.

    Attributes:
        permission: the permission.
        kind: who may hold it.
        description: one line for humans (docs, admin screens).
    """

    permission: Permission
    kind: PermissionKind
    description: str


_R, _W, _A, _O, _C = (
    PermissionKind.READ,
    PermissionKind.WRITE,
    PermissionKind.ADMIN,
    PermissionKind.OWNER,
    PermissionKind.ACCOUNT,
)
_P = Permission

_CATALOGUE: Final[tuple[tuple[Permission, PermissionKind, str], ...]] = (
    (_P.ORG_VIEW, _R, "See the organization's name, plan and limits."),
    (_P.COMPANY_VIEW, _R, "See the organization's companies and their details."),
    (_P.INVOICE_VIEW, _R, "List and open invoices and credit notes, download PDF and XML."),
    (_P.PROFORMA_VIEW, _R, "List and open proforma invoices and quotes."),
    (_P.RECEIPT_VIEW, _R, "List and open receipts."),
    (_P.EXPENSE_VIEW, _R, "List and open supplier invoices received (expenses)."),
    (_P.CLIENT_VIEW, _R, "List and open clients."),
    (_P.PRODUCT_VIEW, _R, "List and open products and services."),
    (_P.PAYMENT_VIEW, _R, "See payments recorded against documents."),
    (_P.REPORT_VIEW, _R, "See reports and dashboards."),
    (_P.PASSWORD_CHANGE, _C, "Change one's own password (never by an API key)."),
    (_P.MFA_MANAGE, _C, "Enable or disable one's own MFA, regenerate backup codes (no API key)."),
    (_P.PASSKEY_MANAGE, _C, "Register and remove one's own passkeys (never by an API key)."),
    (_P.INVOICE_CREATE, _W, "Create draft invoices."),
    (_P.INVOICE_UPDATE, _W, "Edit draft invoices."),
    (_P.INVOICE_DELETE, _W, "Delete draft invoices (soft deletion)."),
    (_P.INVOICE_ISSUE, _W, "Issue an invoice: give it its number and make it final."),
    (_P.INVOICE_SEND, _W, "Send an issued invoice to the client or the e-invoicing provider."),
    (_P.INVOICE_CANCEL, _W, "Cancel an issued invoice with a credit note (storno)."),
    (_P.PROFORMA_CREATE, _W, "Create proforma invoices and quotes."),
    (_P.PROFORMA_UPDATE, _W, "Edit proforma invoices and quotes."),
    (_P.PROFORMA_DELETE, _W, "Delete proforma invoices and quotes (soft deletion)."),
    (_P.PROFORMA_CONVERT, _W, "Turn a proforma invoice into an invoice."),
    (_P.RECEIPT_CREATE, _W, "Create receipts."),
    (_P.RECEIPT_CANCEL, _W, "Cancel receipts."),
    (_P.EXPENSE_CREATE, _W, "Record supplier invoices received."),
    (_P.EXPENSE_UPDATE, _W, "Edit recorded supplier invoices."),
    (_P.EXPENSE_DELETE, _W, "Delete recorded supplier invoices (soft deletion)."),
    (_P.CLIENT_CREATE, _W, "Create clients."),
    (_P.CLIENT_UPDATE, _W, "Edit clients."),
    (_P.CLIENT_DELETE, _W, "Delete clients (soft deletion)."),
    (_P.PRODUCT_CREATE, _W, "Create products and services."),
    (_P.PRODUCT_UPDATE, _W, "Edit products and services."),
    (_P.PRODUCT_DELETE, _W, "Delete products and services (soft deletion)."),
    (_P.PAYMENT_RECORD, _W, "Record a payment against a document."),
    (_P.PAYMENT_DELETE, _W, "Delete a recorded payment (soft deletion)."),
    (_P.COMPANY_CREATE, _A, "Add a company to the organization."),
    (_P.COMPANY_MANAGE, _A, "Edit a company: details, number series, e-invoicing settings."),
    (_P.COMPANY_DELETE, _A, "Delete a company (soft deletion)."),
    (_P.MEMBER_VIEW, _A, "List the organization's members and their roles."),
    (_P.MEMBER_MANAGE, _A, "Invite and remove members, change roles (within RBAC-5)."),
    (_P.SETTINGS_MANAGE, _A, "Change organization settings."),
    (_P.APIKEY_MANAGE, _A, "Create and revoke API keys (never by an API key)."),
    (_P.VAULT_MANAGE, _A, "Store and read sealed secrets such as storage credentials."),
    (_P.AUDIT_VIEW, _A, "Read the organization's security audit log."),
    (_P.LICENSE_MANAGE, _A, "Install and check the organization's license."),
    (_P.DATA_EXPORT, _A, "Export the organization's data."),
    (_P.ORG_DELETE, _O, "Delete the organization (Owner only)."),
    (_P.ORG_TRANSFER_OWNERSHIP, _O, "Transfer ownership to another member (Owner only)."),
    (_P.BILLING_MANAGE, _O, "Manage the subscription and billing details (Owner only)."),
)

#: Every permission's kind and description, in catalogue order.
PERMISSION_INFO: Final[Mapping[Permission, PermissionInfo]] = MappingProxyType(
    {p: PermissionInfo(permission=p, kind=k, description=d) for p, k, d in _CATALOGUE}
)

#: Every permission.
ALL_PERMISSIONS: Final[frozenset[Permission]] = frozenset(Permission)


def _of_kind(*kinds: PermissionKind) -> frozenset[Permission]:
    return frozenset(p for p, info in PERMISSION_INFO.items() if info.kind in kinds)


#: The default permissions of each role (RBAC-2). A membership may replace them.
ROLE_PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = MappingProxyType(
    {
        Role.OWNER: ALL_PERMISSIONS,
        Role.ADMIN: _of_kind(_R, _W, _A, _C),
        Role.ACCOUNTANT: _of_kind(_R, _W, _C),
        Role.VIEWER: _of_kind(_R, _C),
    }
)

#: What an API key may never do, whatever its scope or list (KEY-5): manage API keys,
#: passwords, MFA or passkeys.
KEY_FORBIDDEN_PERMISSIONS: Final[frozenset[Permission]] = frozenset(
    {_P.APIKEY_MANAGE, _P.PASSWORD_CHANGE, _P.MFA_MANAGE, _P.PASSKEY_MANAGE}
)

#: The most each scope allows (KEY-4); the key's user's role narrows it further.
SCOPE_PERMISSIONS: Final[Mapping[Scope, frozenset[Permission]]] = MappingProxyType(
    {
        Scope.READ: _of_kind(_R),
        Scope.WRITE: _of_kind(_R, _W),
        Scope.ADMIN: ALL_PERMISSIONS - KEY_FORBIDDEN_PERMISSIONS,
    }
)


def parse_permission(value: str) -> Permission:
    """Return the permission named ``value`` (``"invoice.view"``).

    Raises:
        TypeError: ``value`` is not a str.
        ValueError: no permission has this name.
    """
    if not isinstance(value, str):
        raise TypeError(f"a permission name must be a str, not {type(value).__name__}")
    try:
        return Permission(value)
    except ValueError:
        raise ValueError("unknown permission name") from None


def parse_permissions(values: object) -> frozenset[Permission]:
    """Return the permissions named in ``values`` (any iterable of names, not a bare str).

    Raises:
        TypeError: ``values`` is a str or not iterable, or holds a non-str.
        ValueError: a name is unknown.
    """
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise TypeError("permissions must be an iterable of permission names")
    return frozenset(parse_permission(v) for v in values)


def permission_table_markdown() -> str:
    """The catalogue as a Markdown table (the one in ``docs/rbac.md``, checked by a test)."""
    marks = {
        Role.OWNER: "O",
        Role.ADMIN: "A",
        Role.ACCOUNTANT: "Ac",
        Role.VIEWER: "V",
    }
    lines = [
        "| Permission | Kind | Roles | Key scopes | Description |",
        "|---|---|---|---|---|",
    ]
    for permission, info in PERMISSION_INFO.items():
        roles = " ".join(m for r, m in marks.items() if permission in ROLE_PERMISSIONS[r])
        scopes = " ".join(s.value for s in Scope if permission in SCOPE_PERMISSIONS[s]) or "never"
        lines.append(
            f"| `{permission.value}` | {info.kind.value} | {roles} | {scopes} | "
            f"{info.description} |"
        )
    return "\n".join(lines) + "\n"
