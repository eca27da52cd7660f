"""Roles, permissions, tenancy and the one access decision (RBAC-1..RBAC-5, KEY-4, KEY-5).

Typical use in a request handler::

    member = resolve_organization(headers.get("X-Organization"), user_id=user_id,
                                  memberships=load_memberships(user_id))
    principal = Principal.user(user_id, organization_id=member.organization_id)
    company = resolve_company(headers.get("X-Company"),
                              organization_id=member.organization_id, companies=load_company)
    grant = authorize(principal, "invoice.issue", organization_id=member.organization_id,
                      membership=member, company=company)

Every function takes the records it decides on; nothing here reads a store or a clock.
"""

from storno_security.rbac.authorize import (
    Authorization,
    authorize,
    check_key_grant,
    effective_permissions,
)
from storno_security.rbac.invitations import (
    Invitation,
    InvitationState,
    Organization,
    authorize_acceptance,
    authorize_invitation,
    new_invitation_id,
)
from storno_security.rbac.members import (
    MembershipAction,
    MembershipChange,
    OwnershipTransfer,
    authorize_member_addition,
    authorize_member_removal,
    authorize_membership_update,
    authorize_ownership_transfer,
)
from storno_security.rbac.model import (
    Company,
    Membership,
    Principal,
    PrincipalKind,
    SoftDeletable,
    is_visible,
    only_visible,
)
from storno_security.rbac.permissions import (
    ALL_PERMISSIONS,
    KEY_FORBIDDEN_PERMISSIONS,
    PERMISSION_INFO,
    ROLE_PERMISSIONS,
    SCOPE_PERMISSIONS,
    Permission,
    PermissionInfo,
    PermissionKind,
    Role,
    Scope,
    parse_permission,
    parse_permissions,
    permission_table_markdown,
)
from storno_security.rbac.tenancy import (
    CompanyLookup,
    canonical_uuid,
    resolve_company,
    resolve_organization,
)

__all__ = [
    "ALL_PERMISSIONS",
    "KEY_FORBIDDEN_PERMISSIONS",
    "PERMISSION_INFO",
    "ROLE_PERMISSIONS",
    "SCOPE_PERMISSIONS",
    "Authorization",
    "Company",
    "CompanyLookup",
    "Invitation",
    "InvitationState",
    "Membership",
    "MembershipAction",
    "MembershipChange",
    "Organization",
    "OwnershipTransfer",
    "Permission",
    "PermissionInfo",
    "PermissionKind",
    "Principal",
    "PrincipalKind",
    "Role",
    "Scope",
    "SoftDeletable",
    "authorize",
    "authorize_acceptance",
    "authorize_invitation",
    "authorize_member_addition",
    "authorize_member_removal",
    "authorize_membership_update",
    "authorize_ownership_transfer",
    "canonical_uuid",
    "check_key_grant",
    "effective_permissions",
    "is_visible",
    "new_invitation_id",
    "only_visible",
    "parse_permission",
    "parse_permissions",
    "permission_table_markdown",
    "resolve_company",
    "resolve_organization",
]
