"""Organizations: the one access decision per request (RBAC-2..5, KEY-4), members, and
invitations (RBAC-6).

Every membership change is decided by :mod:`storno_security.rbac` on records read *after* the
organization's version, then applied by the directory store only if that version still holds:
two changes decided on the same state never both apply, so an invitation is accepted once and
an organization keeps its Owner, on every backend and isolation level.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import attrs

from storno_security.accounts.email import normalise_email
from storno_security.accounts.model import UserAccount
from storno_security.audit.capabilities import (
    event_from_membership_change,
    event_from_ownership_transfer,
)
from storno_security.errors import (
    AccountNotFoundError,
    ConcurrentChangeError,
    InvitationNotFoundError,
    MembershipNotFoundError,
    OrganizationNotFoundError,
    OrganizationRequiredError,
    PermissionDeniedError,
)
from storno_security.events import Outcome, SecurityEventType
from storno_security.kit._core import Mail
from storno_security.kit.account import AccountFlows, mfa_status_of
from storno_security.kit.results import Caller, CallerView
from storno_security.kit.storage import MemberRecord
from storno_security.rbac.authorize import Authorization, authorize
from storno_security.rbac.invitations import (
    Invitation,
    InvitationState,
    Organization,
    authorize_acceptance,
    authorize_invitation,
)
from storno_security.rbac.members import (
    MembershipAction,
    MembershipChange,
    authorize_member_removal,
    authorize_membership_update,
    authorize_ownership_transfer,
)
from storno_security.rbac.model import Membership, is_visible
from storno_security.rbac.permissions import Permission, Role
from storno_security.rbac.tenancy import canonical_uuid, resolve_company, resolve_organization

__all__ = ["CallerView", "MemberView", "TenancyFlows"]


@attrs.frozen(kw_only=True)
class MemberView:
    """A live member, as shown to the organization.

    Attributes:
        membership: the role and permissions.
        email: the member's address (``None`` once anonymised).
        name: the member's display name.
        joined_at: when the membership was created.
    """

    membership: Membership
    email: str | None
    name: str
    joined_at: datetime


class TenancyFlows(AccountFlows):
    """Authorization, members and invitations (mixed into :class:`~storno_security.kit.Kit`)."""

    # --- the access decision -----------------------------------------------------------------

    def authorize(
        self,
        caller: Caller,
        permission: Permission | str,
        *,
        organization: str | None = None,
        company: str | None = None,
        company_required: bool = False,
    ) -> Authorization:
        """Decide whether ``caller`` may use ``permission`` (RBAC-2, RBAC-3, KEY-4, KEY-5).

        Args:
            caller: from :meth:`authenticate`.
            permission: what the operation needs.
            organization: the ``X-Organization`` header (ignored for an API key, whose
                organization is fixed); without it, the caller's default membership.
            company: the ``X-Company`` header, for a company-scoped operation.
            company_required: the operation is company-scoped: the header is required.

        Raises:
            OrganizationRequiredError: no organization named and no default (400).
            OrganizationNotFoundError: not a member of the named organization (404).
            CompanyRequiredError: the operation is company-scoped and no company named (400).
            CompanyNotFoundError: unknown, deleted or another organization's company (404).
            PermissionDeniedError: outside the role, the key's scope or list, or forbidden to
                keys (403).
            StoreError: a store failed.
        """
        return self._decide(
            caller,
            permission,
            self.directory.memberships_of(caller.user_id),
            organization=organization,
            company=company,
            company_required=company_required,
        )

    def _decide(
        self,
        caller: Caller,
        permission: Permission | str,
        memberships: Iterable[Membership],
        *,
        organization: str | None = None,
        company: str | None = None,
        company_required: bool = False,
    ) -> Authorization:
        """:meth:`authorize` on the caller's memberships as read."""
        if caller.api_key is not None:
            organization_id = caller.api_key.organization_id
            membership = next(
                (m for m in memberships if m.organization_id == organization_id and is_visible(m)),
                None,
            )
        else:
            membership = resolve_organization(
                organization, user_id=caller.user_id, memberships=memberships
            )
            organization_id = membership.organization_id
        found = None
        if company_required or company is not None:
            if self.companies is None:
                raise TypeError("the kit was built without a company lookup (companies=...)")
            found = resolve_company(
                company,
                organization_id=organization_id,
                companies=self.companies,
                required=company_required,
            )
        return authorize(
            caller.principal(organization_id),
            permission,
            organization_id=organization_id,
            membership=membership,
            company=found,
        )

    def caller_view(self, caller: Caller, *, organization: str | None = None) -> CallerView:
        """What ``GET /me`` shows: the live account, the access decision for ``org.view`` (none
        for a user with no live membership), its organization and the MFA status.

        With a bundle that offers :class:`~storno_security.kit.storage.AccountOverviewStore`
        the user's records come from one read (none when the caller carries them:
        :meth:`authenticate` with ``overview=True``); otherwise from one read per store. Decisions
        and errors are :meth:`authorize`'s, :meth:`get_user`'s and :meth:`organization`'s.

        Raises:
            OrganizationRequiredError: several live memberships and no default, or an API key
                whose organization is gone (400).
            OrganizationNotFoundError: not a member of the named organization, or it is
                deleted (404).
            PermissionDeniedError: outside the role or the key's scope (403).
            AccountNotFoundError: the account is unknown or deleted.
            StoreError: a store failed.
        """
        store = self.stores.account_overview
        overview = caller.overview  # read with the session state by authenticate(overview=True)
        if overview is None and store is not None:
            overview = store.account_overview(caller.user_id)
        if overview is not None and caller.api_key is None:
            known = self.caller_views.get(overview, organization)
            if known is not None:
                return known
        if overview is not None:
            memberships: Sequence[Membership] = overview.memberships
        elif store is None:
            memberships = self.directory.memberships_of(caller.user_id)
        else:
            memberships = ()  # no such user: decided as for no membership, then refused
        auth: Authorization | None
        try:
            auth = self._decide(caller, Permission.ORG_VIEW, memberships, organization=organization)
        except OrganizationRequiredError:
            # Several memberships and no default: the client must choose. None at all: the user
            # still sees themselves.
            if caller.is_api_key or any(m.deleted_at is None for m in memberships):
                raise
            auth = None
        if overview is not None:
            user = overview.user
            if not user.is_live:
                raise AccountNotFoundError(reason="unknown_or_deleted")
            found = None
            if auth is not None:
                found = overview.organizations.get(auth.organization_id)
                if found is None or found.deleted_at is not None:
                    raise OrganizationNotFoundError(reason="unknown")
            mfa = mfa_status_of(
                user,
                has_passkeys=self.passkeys is not None and overview.has_passkeys,
                backup_codes_left=overview.backup_codes_left,
            )
            view = CallerView(user=user, authorization=auth, organization=found, mfa=mfa)
            if caller.api_key is None:
                self.caller_views.keep(overview, view, organization)
            return view
        user = self.live_user(caller.user_id)
        found = self.organization(auth.organization_id) if auth is not None else None
        return CallerView(
            user=user, authorization=auth, organization=found, mfa=self.mfa_status(user)
        )

    def organization(self, organization_id: str) -> Organization:
        """The live organization.

        Raises:
            OrganizationNotFoundError: unknown or deleted.
            StoreError: a store failed.
        """
        found = self.directory.get_organization(organization_id)
        if found is None or found.deleted_at is not None:
            raise OrganizationNotFoundError(reason="unknown")
        return found

    def _members(self, organization_id: str) -> tuple[Organization, list[MemberRecord]]:
        # The version first, then the members: a change between the two moves the version, so
        # a decision on these members can never be applied over a newer state.
        organization = self.organization(organization_id)
        return organization, self.directory.members_of(organization_id)

    def list_members(self, auth: Authorization) -> list[MemberView]:
        """The organization's live members, oldest first (call after authorizing
        ``member.view``).

        Raises:
            StoreError: a store failed.
        """
        _, records = self._members(auth.organization_id)
        live = [r for r in records if is_visible(r.membership)]
        users = self.directory.get_users(r.membership.user_id for r in live)
        views = []
        for record in live:
            user = users.get(record.membership.user_id)
            views.append(
                MemberView(
                    membership=record.membership,
                    email=user.email if user is not None else None,
                    name=user.name if user is not None else "",
                    joined_at=record.joined_at,
                )
            )
        return views

    def _manager(
        self,
        caller: Caller,
        organization: str | None,
        permission: Permission = Permission.MEMBER_MANAGE,
    ) -> tuple[Authorization, Organization, list[MemberRecord], Membership]:
        auth = self.authorize(caller, permission, organization=organization)
        org, records = self._members(auth.organization_id)
        actor = _live_member(records, caller.user_id)
        if actor is None:
            raise ConcurrentChangeError(reason="changed_meanwhile")
        return auth, org, records, actor

    def _apply(self, org: Organization, memberships: Iterable[Membership]) -> None:
        written = self.directory.apply_memberships(
            org.organization_id,
            expected_version=org.version,
            memberships=list(memberships),
            now=self.clock.now(),
        )
        if not written:
            raise ConcurrentChangeError(reason="changed_meanwhile")

    def _denied(self, auth: Authorization, exc: PermissionDeniedError) -> None:
        self.emit(
            SecurityEventType.ACCESS_DENIED,
            actor_id=auth.principal.user_id,
            organization_id=auth.organization_id,
            details={"permission": auth.permission.value},
            error=exc,
        )

    # --- members -----------------------------------------------------------------------------

    def update_member(
        self,
        caller: Caller,
        user_id: str,
        *,
        role: Role | str | None = None,
        permissions: Iterable[Permission | str] | None = None,
        organization: str | None = None,
    ) -> Membership:
        """Give a member a new role and/or custom permission set (RBAC-5).

        Raises:
            MembershipNotFoundError: no live member with this id here.
            PermissionDeniedError: the rules refuse it (self-promotion, the Owner, more than
                the caller holds, an API key).
            ValueError: a custom set the role cannot hold.
            ConcurrentChangeError: the organization changed meanwhile.
            StoreError: a store failed.
        """
        auth, org, records, actor = self._manager(caller, organization)
        target = _live_member(records, user_id)
        if target is None:
            raise MembershipNotFoundError(reason="unknown")
        try:
            change = authorize_membership_update(
                actor,
                target,
                principal=auth.principal,
                role=target.role if role is None else role,
                permissions=permissions,
            )
        except PermissionDeniedError as exc:
            self._denied(auth, exc)
            raise
        self._apply(org, [change.after])
        self.emit_event(event_from_membership_change(change, at=self.clock.now()))
        return change.after

    def remove_member(
        self, caller: Caller, user_id: str, *, organization: str | None = None
    ) -> None:
        """Remove a member (soft deletion, RBAC-4, RBAC-5). Never the Owner.

        Raises:
            MembershipNotFoundError, PermissionDeniedError, ConcurrentChangeError, StoreError:
                as :meth:`update_member`.
        """
        auth, org, records, actor = self._manager(caller, organization)
        target = _live_member(records, user_id)
        try:
            change = authorize_member_removal(
                actor, target, principal=auth.principal, at=self.clock.now()
            )
        except PermissionDeniedError as exc:
            self._denied(auth, exc)
            raise
        self._apply(org, [attrs.evolve(change.after, is_default=False)])
        self.emit_event(event_from_membership_change(change, at=self.clock.now()))

    def transfer_ownership(
        self, caller: Caller, user_id: str, *, organization: str | None = None
    ) -> tuple[Membership, Membership]:
        """Make a member the Owner; the caller (the Owner) becomes an Admin (RBAC-5).

        Returns:
            ``(former_owner, new_owner)`` as stored.

        Raises:
            MembershipNotFoundError, PermissionDeniedError, ConcurrentChangeError, StoreError:
                as :meth:`update_member`.
        """
        auth, org, records, actor = self._manager(
            caller, organization, Permission.ORG_TRANSFER_OWNERSHIP
        )
        target = _live_member(records, user_id)
        try:
            transfer = authorize_ownership_transfer(actor, target, principal=auth.principal)
        except PermissionDeniedError as exc:
            self._denied(auth, exc)
            raise
        self._apply(org, [transfer.former_owner, transfer.new_owner])
        self.emit_event(event_from_ownership_transfer(transfer, at=self.clock.now()))
        return transfer.former_owner, transfer.new_owner

    # --- invitations -------------------------------------------------------------------------

    def invite(
        self,
        caller: Caller,
        email: str,
        *,
        role: Role | str,
        permissions: Iterable[Permission | str] | None = None,
        organization: str | None = None,
    ) -> Invitation:
        """Invite an address to the caller's organization (RBAC-6). The answer is the same
        whether or not the address is registered; the mail goes through ``defer``, at most
        once per organization and address in ``policy.invitation_mail_interval``.

        Returns:
            The stored invitation (for the inviter: it names only what they typed).

        Raises:
            InvalidEmailError: the address is not plausible.
            PermissionDeniedError: no ``member.manage``, an API key, an Owner role, or a grant
                beyond the caller's.
            ValueError: a custom set the role cannot hold.
            ConcurrentChangeError: the organization changed meanwhile.
            StoreError: a store failed.
        """
        address = normalise_email(email)
        auth, org, _, actor = self._manager(caller, organization)
        now = self.clock.now()
        try:
            invitation = authorize_invitation(
                actor,
                principal=auth.principal,
                organization_id=org.organization_id,
                email=address,
                role=role,
                permissions=permissions,
                now=now,
                lifetime=self.policy.invitation_lifetime,
            )
        except PermissionDeniedError as exc:
            self._denied(auth, exc)
            raise
        earlier = self.directory.invitations(email=address, organization_id=org.organization_id)
        recent = any(i.created_at > now - self.policy.invitation_mail_interval for i in earlier)
        if not self.directory.add_invitation(invitation, expected_version=org.version):
            raise ConcurrentChangeError(reason="changed_meanwhile")
        self.emit(
            SecurityEventType.INVITATION_SENT,
            actor_id=caller.user_id,
            organization_id=org.organization_id,
            details=_grant_details(invitation),
        )
        if not recent:
            self.defer(lambda: self._send_invitation(invitation))
        return invitation

    def _send_invitation(self, invitation: Invitation) -> None:
        org = self.directory.get_organization(invitation.organization_id)
        if org is None or org.deleted_at is not None:
            return
        holder = self.directory.find_user(email=invitation.email)
        if holder is not None and any(
            m.organization_id == org.organization_id and is_visible(m)
            for m in self.directory.memberships_of(holder.user_id)
        ):
            return
        self.mailer.send(
            Mail(
                kind="invitation",
                to=invitation.email,
                organization_id=org.organization_id,
                organization_name=org.name,
                invitation_id=invitation.invitation_id,
            )
        )

    def my_invitations(self, caller: Caller) -> list[Invitation]:
        """The open invitations addressed to the caller's *confirmed* address (ACC-5): an
        account that has not proven its address sees none.

        Raises:
            PermissionDeniedError: the caller is an API key.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        if not user.email_confirmed or user.email is None:
            return []
        now = self.clock.now()
        found = []
        for invitation in self.directory.invitations(email=user.email):
            if invitation.state(now) is not InvitationState.OPEN:
                continue
            org = self.directory.get_organization(invitation.organization_id)
            if org is not None and org.deleted_at is None:
                found.append(invitation)
        return found

    def _addressed(self, user: UserAccount, invitation_id: str) -> Invitation:
        """The invitation, if addressed to the user's confirmed address; else the one error."""
        wanted = canonical_uuid(invitation_id) or invitation_id
        invitation = self.directory.get_invitation(wanted)
        if (
            invitation is None
            or not user.email_confirmed
            or user.email is None
            or invitation.email != user.email
        ):
            raise InvitationNotFoundError(reason="not_addressee")
        org = self.directory.get_organization(invitation.organization_id)
        if org is None or org.deleted_at is not None:
            raise InvitationNotFoundError(reason="organization_gone")
        return invitation

    def accept_invitation(self, caller: Caller, invitation_id: str) -> Membership:
        """Accept an invitation addressed to the caller's confirmed address (RBAC-6, ACC-5):
        at most once, and only if its inviter can still grant it.

        Raises:
            InvitationNotFoundError: unknown, not for this account (or its address is not
                confirmed), or no longer open.
            InvitationVoidError: the inviter can no longer grant it.
            DuplicateMembershipError: already a member.
            ConcurrentChangeError: the organization changed meanwhile; retry.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        invitation = self._addressed(user, invitation_id)
        org, records = self._members(invitation.organization_id)
        inviter = _live_member(records, invitation.invited_by) if invitation.invited_by else None
        now = self.clock.now()
        membership = authorize_acceptance(
            invitation,
            user_id=user.user_id,
            email=user.email,
            email_confirmed=user.email_confirmed,
            inviter=inviter,
            existing=self.directory.memberships_of(user.user_id),
            now=now,
        )
        accepted = self.directory.accept_invitation(
            invitation.invitation_id,
            expected_version=org.version,
            membership=membership,
            now=now,
        )
        if not accepted:
            current = self.directory.get_invitation(invitation.invitation_id)
            state = current.state(now) if current is not None else InvitationState.WITHDRAWN
            if state is not InvitationState.OPEN:
                raise InvitationNotFoundError(reason=state.value)
            raise ConcurrentChangeError(reason="changed_meanwhile")
        details = _grant_details(invitation)
        self.emit(
            SecurityEventType.INVITATION_ACCEPTED,
            actor_id=user.user_id,
            subject_id=user.user_id,
            organization_id=org.organization_id,
            details=details,
        )
        self.emit_event(
            event_from_membership_change(
                MembershipChange(
                    action=MembershipAction.ADD,
                    actor_user_id=user.user_id,
                    before=None,
                    after=membership,
                ),
                at=now,
            )
        )
        return membership

    def decline_invitation(self, caller: Caller, invitation_id: str) -> None:
        """Decline an open invitation addressed to the caller's confirmed address.

        Raises:
            InvitationNotFoundError: as :meth:`accept_invitation`.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        invitation = self._addressed(user, invitation_id)
        now = self.clock.now()
        state = invitation.state(now)
        if state is not InvitationState.OPEN or not self.directory.close_invitation(
            invitation.invitation_id, declined=True, now=now
        ):
            raise InvitationNotFoundError(reason=state.value)
        self.emit(
            SecurityEventType.INVITATION_DECLINED,
            actor_id=user.user_id,
            organization_id=invitation.organization_id,
            details={"invitation_id": invitation.invitation_id},
        )

    def organization_invitations(self, auth: Authorization) -> list[Invitation]:
        """The organization's open invitations, oldest first (after authorizing
        ``member.view``).

        Raises:
            StoreError: a store failed.
        """
        now = self.clock.now()
        return [
            i
            for i in self.directory.invitations(organization_id=auth.organization_id)
            if i.state(now) is InvitationState.OPEN
        ]

    def withdraw_invitation(
        self, caller: Caller, invitation_id: str, *, organization: str | None = None
    ) -> None:
        """Withdraw an open invitation of the caller's organization (``member.manage``; nobody
        withdraws a grant larger than their own).

        Raises:
            InvitationNotFoundError: unknown, another organization's, or not open.
            PermissionDeniedError: the caller may not.
            StoreError: a store failed.
        """
        auth, org, _, actor = self._manager(caller, organization)
        wanted = canonical_uuid(invitation_id) or invitation_id
        invitation = self.directory.get_invitation(wanted)
        now = self.clock.now()
        if (
            invitation is None
            or invitation.organization_id != org.organization_id
            or invitation.state(now) is not InvitationState.OPEN
        ):
            raise InvitationNotFoundError(reason="unknown")
        try:
            authorize_invitation(
                actor,
                principal=auth.principal,
                organization_id=org.organization_id,
                email=invitation.email,
                role=invitation.role,
                permissions=invitation.permissions,
                now=now,
                lifetime=self.policy.invitation_lifetime,
                invitation_id=invitation.invitation_id,
            )
        except PermissionDeniedError as exc:
            self._denied(auth, exc)
            raise
        if not self.directory.close_invitation(invitation.invitation_id, declined=False, now=now):
            raise InvitationNotFoundError(reason="not_open")
        self.emit(
            SecurityEventType.INVITATION_WITHDRAWN,
            outcome=Outcome.SUCCESS,
            actor_id=caller.user_id,
            organization_id=org.organization_id,
            details={"invitation_id": invitation.invitation_id},
        )


def _live_member(records: Iterable[MemberRecord], user_id: str) -> Membership | None:
    for record in records:
        if record.membership.user_id == user_id and is_visible(record.membership):
            return record.membership
    return None


def _grant_details(invitation: Invitation) -> dict[str, object]:
    return {
        "invitation_id": invitation.invitation_id,
        "role": invitation.role.value,
        "custom_permissions": invitation.permissions is not None,
    }
