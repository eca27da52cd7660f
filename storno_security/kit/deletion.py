"""Leaving: account deletion (ACC-4, ACC-7), the purge after the grace period, and the export
of a user's data (ACC-4).

Deletion is built only from store verbs: memberships are removed by the organization's
compare-and-set (an Owner with other members must hand over first, RBAC-6), every session and
credential dies at once, every store forgets the user (``forget_user``) except the session
epoch, which must keep the access tokens dead until they expire, and the account row is
anonymised, as is the name of an organization the user leaves empty (registration named it
after the person). The purge, after ``policy.deletion_grace``, forgets the rest and deletes the
organizations nobody is left in. Audit events are kept, pseudonymised.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from storno_security.audit.storage import MAX_QUERY_LIMIT, AuditCursor
from storno_security.errors import (
    ConcurrentChangeError,
    OwnershipTransferRequiredError,
)
from storno_security.events import SecurityEvent, SecurityEventType
from storno_security.kit.credentials import CredentialFlows
from storno_security.kit.policy import SensitiveAction
from storno_security.kit.results import Caller
from storno_security.rbac.invitations import InvitationState
from storno_security.rbac.model import Membership, is_visible
from storno_security.rbac.permissions import Role

__all__ = ["DELETED_ORGANIZATION_NAME", "AccountDeletion", "DeletionFlows", "Purge"]

_ATTEMPTS = 3

#: The name an organization takes when its last member deletes the account: registration
#: names it after the person (their name, or their address), personal data to clear at once.
DELETED_ORGANIZATION_NAME = "Deleted organization"


@attrs.frozen(kw_only=True)
class AccountDeletion:
    """A deleted account.

    Attributes:
        user_id: the account (kept as a tombstone until the purge).
        deleted_at: when.
        purge_after: when the purge may forget it entirely.
        organization_ids: organizations the user was the last member of, now deleted: the
            application deletes its own rows of them.
        forgotten: how many library records were deleted at once.
    """

    user_id: str
    deleted_at: datetime
    purge_after: datetime
    organization_ids: tuple[str, ...]
    forgotten: int


@attrs.frozen(kw_only=True)
class Purge:
    """What a purge run removed.

    Attributes:
        user_ids: the accounts forgotten.
        organization_ids: the organizations deleted for good (no member record left): the
            application deletes its own rows of them.
    """

    user_ids: tuple[str, ...]
    organization_ids: tuple[str, ...]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


class DeletionFlows(CredentialFlows):
    """Deletion, purge and export (mixed into :class:`~storno_security.kit.Kit`)."""

    def owned_organizations_with_members(self, user_id: str) -> list[str]:
        """Organizations the user owns that have other live members (deletion waits for a
        transfer of each).

        Raises:
            StoreError: a store failed.
        """
        blocked = []
        for membership in self.directory.memberships_of(user_id):
            if not is_visible(membership) or membership.role is not Role.OWNER:
                continue
            records = self.directory.members_of(membership.organization_id)
            if any(is_visible(r.membership) and r.membership.user_id != user_id for r in records):
                blocked.append(membership.organization_id)
        return blocked

    def delete_account(
        self,
        caller: Caller,
        *,
        step_up_token: str | None = None,
        current_password: str | None = None,
    ) -> AccountDeletion:
        """Delete the caller's account (ACC-4, re-authenticated, ACC-6).

        Raises:
            PermissionDeniedError: the caller is an API key.
            ReauthenticationRequiredError, InvalidStepUpTokenError, InvalidPasswordError: the
                proof is missing or wrong.
            OwnershipTransferRequiredError: the user owns organizations with other members.
            ConcurrentChangeError: an organization kept changing; retry.
            StoreError: a store failed; call again (every step is idempotent).
        """
        user = self._interactive(caller)
        blocked = self.owned_organizations_with_members(user.user_id)
        if blocked:
            raise OwnershipTransferRequiredError(tuple(blocked))
        self.reauthenticate(
            caller,
            SensitiveAction.ACCOUNT_DELETE,
            step_up_token=step_up_token,
            current_password=current_password,
        )
        now = self.clock.now()
        emptied = self._leave_organizations(user.user_id, now)
        # Every way in dies at once: sessions (the epoch bump kills live access tokens),
        # then every record that names the user, save the epoch (forgotten at the purge).
        self.sessions.revoke_all(user.user_id, reason="account_deleted")
        self.api_keys.revoke_user_keys(user.user_id)
        forgotten = self._forget(user.user_id, keep_session_state=True)
        if user.email is not None:
            forgotten += self.directory.delete_invitations(email=user.email)
        self.directory.update_user(
            user.user_id,
            expected={"deleted_at": None},
            changes={
                "email": None,
                "email_confirmed_at": None,
                "name": "",
                "password_hash": None,
                "google_subject": None,
                "totp_secret_sealed": None,
                "totp_pending_sealed": None,
                "mfa_enabled": False,
                "deleted_at": now,
            },
        )
        self.emit(
            SecurityEventType.ACCOUNT_DELETED,
            actor_id=user.user_id,
            subject_id=user.user_id,
            details={"record_count": forgotten},
        )
        self.audit.pseudonymise_user(user.user_id)
        return AccountDeletion(
            user_id=user.user_id,
            deleted_at=now,
            purge_after=now + self.policy.deletion_grace,
            organization_ids=tuple(emptied),
            forgotten=forgotten,
        )

    def _leave_organizations(self, user_id: str, now: datetime) -> list[str]:
        """Remove the user's memberships, each by the organization's compare-and-set; delete
        the organizations left without a member. Refused if the user became an Owner with
        members meanwhile."""
        emptied: list[str] = []
        for _ in range(_ATTEMPTS):
            pending = [m for m in self.directory.memberships_of(user_id) if is_visible(m)]
            if not pending:
                return emptied
            try:
                for membership in pending:
                    if self._leave(membership, now):
                        emptied.append(membership.organization_id)
            except ConcurrentChangeError:
                continue
        raise ConcurrentChangeError(reason="changed_meanwhile")

    def _leave(self, membership: Membership, now: datetime) -> bool:
        org = self.directory.get_organization(membership.organization_id)
        if org is None:
            return False
        records = self.directory.members_of(org.organization_id)
        others = [
            r.membership
            for r in records
            if is_visible(r.membership) and r.membership.user_id != membership.user_id
        ]
        if membership.role is Role.OWNER and others:
            raise OwnershipTransferRequiredError((org.organization_id,))
        removed = attrs.evolve(membership, deleted_at=now, is_default=False)
        if not self.directory.apply_memberships(
            org.organization_id, expected_version=org.version, memberships=[removed], now=now
        ):
            raise ConcurrentChangeError(reason="changed_meanwhile")
        if others or org.deleted_at is not None:
            return False
        self.directory.update_organization(
            org.organization_id,
            expected_version=org.version + 1,
            name=DELETED_ORGANIZATION_NAME,
            deleted_at=now,
        )
        return True

    def _forget(self, user_id: str, *, keep_session_state: bool) -> int:
        count = 0
        keep: list[object] = [self.directory]
        if keep_session_state:
            keep.append(self.stores.session_state)
        for store in self.stores.user_stores():
            if any(store is kept for kept in keep):
                continue
            count += store.forget_user(user_id)
        return count

    def forget_user(self, user_id: str) -> int:
        """Delete every record that names the user from every store (ACC-7), the directory's
        account row included; return how many. Audit events are pseudonymised instead.

        The session epoch goes too, so an access token issued before would pass the session
        check again (at epoch 0) until it expires; every route then finds no account. Call it
        once the user's access tokens have expired, as :meth:`purge_deleted_accounts` does
        (``deletion_grace`` is at least their lifetime), or after :meth:`delete_account`,
        whose epoch bump ends them at once, no sooner than that lifetime later.

        Raises:
            StoreError: a store failed; call again.
        """
        count = self._forget(user_id, keep_session_state=False)
        count += self.directory.forget_user(user_id)
        self.audit.pseudonymise_user(user_id)
        return count

    def purge_deleted_accounts(self, *, limit: int = 1000) -> Purge:
        """Forget the accounts deleted more than ``policy.deletion_grace`` ago (ACC-4) and the
        organizations left without any member record.

        Raises:
            StoreError: a store failed; run it again (it resumes).
        """
        cutoff = self.clock.now() - self.policy.deletion_grace
        user_ids = self.directory.deleted_users(deleted_before=cutoff, limit=limit)
        for user_id in user_ids:
            self.forget_user(user_id)
        organizations = self.directory.purge_organizations()
        return Purge(user_ids=tuple(user_ids), organization_ids=tuple(organizations))

    # --- export ------------------------------------------------------------------------------

    def export_user_data(self, user_id: str) -> dict[str, Any]:
        """The library's records of a user, as JSON-ready data (ACC-4): the account, the
        memberships, invitations received, API keys and passkeys (descriptions, never a
        secret or hash), MFA status, and the audit events the user acted in.

        Raises:
            AccountNotFoundError: unknown or deleted.
            StoreError: a store failed.
        """
        user = self.live_user(user_id)
        now = self.clock.now()
        passkeys = self.passkeys.list_passkeys(user_id) if self.passkeys is not None else []
        status = self.mfa_status(user)
        received = self.directory.invitations(email=user.email) if user.email is not None else []
        return {
            "account": {
                "id": user.user_id,
                "email": user.email,
                "email_confirmed_at": _iso(user.email_confirmed_at),
                "name": user.name,
                "created_at": _iso(user.created_at),
                "password_changed_at": _iso(user.password_changed_at),
                "has_password": user.has_password,
                "google_linked": user.google_subject is not None,
            },
            "mfa": {
                "enabled": status.enabled,
                "methods": list(status.methods),
                "backup_codes_left": status.backup_codes_left,
            },
            "memberships": [
                {
                    "organization_id": m.organization_id,
                    "role": m.role.value,
                    "permissions": None
                    if m.permissions is None
                    else sorted(p.value for p in m.permissions),
                    "is_default": m.is_default,
                    "removed_at": _iso(m.deleted_at),
                }
                for m in self.directory.memberships_of(user_id)
            ],
            "invitations_received": [
                {
                    "id": i.invitation_id,
                    "organization_id": i.organization_id,
                    "role": i.role.value,
                    "state": i.state(now).value,
                    "created_at": _iso(i.created_at),
                }
                for i in received
                if i.state(now) is not InvitationState.WITHDRAWN or i.accepted_by == user_id
            ],
            "api_keys": [
                {
                    "key_id": k.key_id,
                    "organization_id": k.organization_id,
                    "name": k.name,
                    "scope": k.scope.value,
                    "created_at": _iso(k.created_at),
                    "expires_at": _iso(k.expires_at),
                    "revoked_at": _iso(k.revoked_at),
                    "last_used_at": _iso(k.last_used_at),
                }
                for k in self.api_keys.list_keys(user_id=user_id)
            ],
            "passkeys": [
                {
                    "name": p.name,
                    "created_at": _iso(p.created_at),
                    "last_used_at": _iso(p.last_used_at),
                    "backup_eligible": p.backup_eligible,
                }
                for p in passkeys
            ],
            "audit_events": [_event_json(e) for e in self._events_of(user_id)],
        }

    def _events_of(self, user_id: str) -> Sequence[SecurityEvent]:
        out: list[SecurityEvent] = []
        cursor: AuditCursor | None = None
        while True:
            page = self.stores.audit.query(
                organization_id=None, actor_id=user_id, cursor=cursor, limit=MAX_QUERY_LIMIT
            )
            out.extend(page)
            if len(page) < MAX_QUERY_LIMIT:
                return out
            cursor = AuditCursor.after(page[-1])


def _event_json(event: SecurityEvent) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.type.value,
        "at": _iso(event.at),
        "outcome": event.outcome.value,
        "organization_id": event.organization_id,
        "company_id": event.company_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "details": dict(event.details),
    }
