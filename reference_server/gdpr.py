"""GDPR (ACC-4, ACC-7) for the server: the kit's flows plus the server's own rows.

* :func:`export_user_data`: the kit's export of the user, plus the server's records the user
  created (invoices, storage credentials: their content only while the kit's authorization
  still lets the user see them) and the companies of the organizations the user owns.
* :func:`delete_account`: the kit deletes the account (re-authenticated, ACC-6); the server
  then deletes its rows of the organizations left without a member and clears ``created_by``
  where it names the user.

The purge after the grace period is :meth:`reference_server.wiring.Server.purge_deleted_accounts`
(``storno-security accounts purge``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from reference_server.data import export
from storno_security.errors import RbacError
from storno_security.integrations.falcon.routing import iso
from storno_security.kit import AccountDeletion, Caller
from storno_security.rbac import Permission, Role

if TYPE_CHECKING:
    from reference_server.wiring import Server

__all__ = ["delete_account", "export_user_data"]


def _may_see(server: Server, caller: Caller) -> Any:
    """Whether the caller may still see a company's records with a permission: the kit's
    decision, as for a request naming that company (RBAC-3, RBAC-4), cached per export."""
    decided: dict[tuple[str, Permission], bool] = {}

    def may(company_id: str, permission: Permission) -> bool:
        key = (company_id, permission)
        if key not in decided:
            company = server.data.company_lookup(company_id)
            try:
                server.kit.authorize(
                    caller,
                    permission,
                    organization=company.organization_id if company else None,
                    company=company_id,
                    company_required=True,
                )
                decided[key] = True
            except RbacError:  # not a member, no such live company, or not permitted
                decided[key] = False
        return decided[key]

    return may


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    return value.isoformat() if isinstance(value, date) else value


def _record(row: dict[str, Any], *, visible: bool) -> dict[str, Any]:
    """A record the user created: its content while the user may see it; else only that the
    user created it, and when (``content_withheld``)."""
    shown = row if visible else {key: row[key] for key in ("id", "created_at", "deleted_at")}
    return {**{key: _plain(value) for key, value in shown.items()}, "content_withheld": not visible}


def export_user_data(server: Server, caller: Caller) -> dict[str, Any]:
    """Everything held about the caller, as JSON-ready values (ACC-4): never a secret, a
    hash or a sealed value.

    Raises:
        AccountNotFoundError: the account is deleted.
        StoreError: a store failed.
    """
    kit, data = server.kit, server.data
    document = kit.export_user_data(caller.user_id)
    may = _may_see(server, caller)
    owned = []
    for membership in document["memberships"]:
        if membership["removed_at"] is not None or membership["role"] != Role.OWNER.value:
            continue
        org = kit.directory.get_organization(membership["organization_id"])
        if org is None or org.deleted_at is not None:
            continue
        companies = export.live_companies(data, org.organization_id)
        owned.append(
            {
                "id": org.organization_id,
                "name": org.name,
                "created_at": iso(org.created_at),
                "license_installed": data.licenses.token(org.organization_id) is not None,
                "companies": [{k: _plain(v) for k, v in row.items()} for row in companies],
            }
        )
    return {
        "exported_at": iso(server.clock.now()),
        **document,
        "organizations_owned": owned,
        "invoices_created": [
            _record(row, visible=may(row["company_id"], Permission.INVOICE_VIEW))
            for row in export.invoices_created_by(data, caller.user_id)
        ],
        "storage_credentials_created": [
            _record(row, visible=may(row["company_id"], Permission.VAULT_MANAGE))
            for row in export.credentials_created_by(data, caller.user_id)
        ],
    }


def delete_account(
    server: Server,
    caller: Caller,
    *,
    step_up_token: str | None = None,
    current_password: str | None = None,
) -> AccountDeletion:
    """Delete the caller's account (ACC-4): the kit's flow, then the server's rows.

    Raises:
        PermissionDeniedError: the caller is an API key.
        ReauthenticationRequiredError, InvalidStepUpTokenError, InvalidPasswordError: the
            proof is missing or wrong.
        OwnershipTransferRequiredError: the user owns organizations with other members.
        ConcurrentChangeError: an organization kept changing; retry.
        StoreError: a store failed; the purge finishes the server's part.
    """
    deletion = server.kit.delete_account(
        caller, step_up_token=step_up_token, current_password=current_password
    )
    server.data.delete_organizations(deletion.organization_ids)
    server.data.forget_user(deletion.user_id)
    return deletion
