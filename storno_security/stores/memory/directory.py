"""In-memory directory store: users, organizations, memberships and invitations; thread-safe,
per process, for tests, single-process apps and defaults.

Every method runs under one lock, so each is atomic among the threads of a process: a
compare-and-set of a user, or a change conditional on an organization's version, reads and
writes in one step.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from storno_security.accounts.model import UserAccount, _check_user_values
from storno_security.clock import ensure_aware_utc
from storno_security.errors import AccountExistsError, StoreError
from storno_security.kit.storage import (
    MemberRecord,
    _check_invitation,
    _check_limit,
    _check_membership,
    _check_new_account,
    _check_version,
)
from storno_security.rbac.invitations import (
    Invitation,
    InvitationState,
    Organization,
    _check_acceptance,
    _check_memberships,
)
from storno_security.rbac.model import Membership
from storno_security.stores.memory._base import _check_str

__all__ = ["MemoryDirectoryStore"]


class MemoryDirectoryStore:
    """The directory in dictionaries, with indexes of the live users' addresses and Google
    subjects, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, UserAccount] = {}
        self._by_email: dict[str, str] = {}  # live users only
        self._by_google: dict[str, str] = {}  # live users only
        self._organizations: dict[str, Organization] = {}
        self._members: dict[tuple[str, str], MemberRecord] = {}  # (organization, user)
        self._invitations: dict[str, Invitation] = {}

    def __repr__(self) -> str:
        return (
            f"MemoryDirectoryStore({len(self._users)} users, "
            f"{len(self._organizations)} organizations)"
        )

    # --- users -------------------------------------------------------------------------------

    def _holder(self, user: UserAccount) -> str | None:
        """Why ``user`` cannot be stored: another live user has its address or subject."""
        if not user.is_live:
            return None
        if user.email is not None and self._by_email.get(user.email, user.user_id) != user.user_id:
            return "email_taken"
        if (
            user.google_subject is not None
            and self._by_google.get(user.google_subject, user.user_id) != user.user_id
        ):
            return "google_taken"
        return None

    def _index(self, user: UserAccount) -> None:
        if user.is_live:
            if user.email is not None:
                self._by_email[user.email] = user.user_id
            if user.google_subject is not None:
                self._by_google[user.google_subject] = user.user_id

    def _unindex(self, user: UserAccount) -> None:
        if user.is_live:
            if user.email is not None:
                del self._by_email[user.email]
            if user.google_subject is not None:
                del self._by_google[user.google_subject]

    def create_account(
        self, user: UserAccount, *, organization: Organization, owner: Membership
    ) -> None:
        """See :meth:`DirectoryStore.create_account`."""
        _check_new_account(user, organization, owner)
        with self._lock:
            reason = self._holder(user)
            if reason is not None:
                raise AccountExistsError(reason=reason)
            if user.user_id in self._users or organization.organization_id in self._organizations:
                raise StoreError("the user or organization id exists already", reason="duplicate")
            self._users[user.user_id] = user
            self._index(user)
            self._organizations[organization.organization_id] = organization
            self._members[organization.organization_id, user.user_id] = MemberRecord(
                membership=owner, joined_at=organization.created_at
            )

    def get_user(self, user_id: str) -> UserAccount | None:
        """See :meth:`DirectoryStore.get_user`."""
        return self._users.get(_check_str("user_id", user_id))

    def find_user(
        self, *, email: str | None = None, google_subject: str | None = None
    ) -> UserAccount | None:
        """See :meth:`DirectoryStore.find_user`."""
        if (email is None) == (google_subject is None):
            raise ValueError("give exactly one of email and google_subject")
        with self._lock:
            if email is not None:
                user_id = self._by_email.get(_check_str("email", email))
            else:
                user_id = self._by_google.get(_check_str("google_subject", google_subject))
            return None if user_id is None else self._users[user_id]

    def get_users(self, user_ids: Iterable[str]) -> dict[str, UserAccount]:
        """See :meth:`DirectoryStore.get_users`."""
        wanted = [_check_str("user_id", user_id) for user_id in user_ids]
        with self._lock:
            return {i: self._users[i] for i in wanted if i in self._users}

    def update_user(
        self,
        user_id: str,
        *,
        expected: Mapping[str, Any],
        changes: Mapping[str, Any],
    ) -> UserAccount | None:
        """See :meth:`DirectoryStore.update_user`."""
        user_id = _check_str("user_id", user_id)
        expected = _check_user_values(expected, "expected")
        changes = _check_user_values(changes, "changes")
        with self._lock:
            current = self._users.get(user_id)
            if current is None:
                return None
            if any(getattr(current, name) != value for name, value in expected.items()):
                return None
            updated = attrs.evolve(current, **changes)
            reason = self._holder(updated)
            if reason is not None:
                raise AccountExistsError(reason=reason)
            self._unindex(current)
            self._users[user_id] = updated
            self._index(updated)
            return updated

    def deleted_users(self, *, deleted_before: datetime, limit: int) -> list[str]:
        """See :meth:`DirectoryStore.deleted_users`."""
        before = ensure_aware_utc(deleted_before)
        limit = _check_limit(limit)
        with self._lock:
            deleted = sorted(
                (u.deleted_at, u.user_id)
                for u in self._users.values()
                if u.deleted_at is not None and u.deleted_at < before
            )
        return [user_id for _, user_id in deleted[:limit]]

    # --- organizations and memberships -------------------------------------------------------

    def get_organization(self, organization_id: str) -> Organization | None:
        """See :meth:`DirectoryStore.get_organization`."""
        return self._organizations.get(_check_str("organization_id", organization_id))

    def memberships_of(self, user_id: str) -> list[Membership]:
        """See :meth:`DirectoryStore.memberships_of`."""
        user_id = _check_str("user_id", user_id)
        with self._lock:
            records = [r for (_, user), r in self._members.items() if user == user_id]
        records.sort(key=lambda r: (r.joined_at, r.membership.organization_id))
        return [r.membership for r in records]

    def members_of(self, organization_id: str) -> list[MemberRecord]:
        """See :meth:`DirectoryStore.members_of`."""
        organization_id = _check_str("organization_id", organization_id)
        with self._lock:
            records = [r for (org, _), r in self._members.items() if org == organization_id]
        return sorted(records, key=lambda r: (r.joined_at, r.membership.user_id))

    def _bump(self, organization_id: str, expected_version: int | None) -> bool:
        """Bump the organization's version if it exists (and has ``expected_version``)."""
        organization = self._organizations.get(organization_id)
        if organization is None:
            return False
        if expected_version is not None and organization.version != expected_version:
            return False
        self._organizations[organization_id] = attrs.evolve(
            organization, version=organization.version + 1
        )
        return True

    def apply_memberships(
        self,
        organization_id: str,
        *,
        expected_version: int,
        memberships: Sequence[Membership],
        now: datetime,
    ) -> bool:
        """See :meth:`DirectoryStore.apply_memberships`."""
        organization_id = _check_str("organization_id", organization_id)
        expected_version = _check_version(expected_version)
        _check_memberships(organization_id, memberships)
        now = ensure_aware_utc(now)
        with self._lock:
            if not self._bump(organization_id, expected_version):
                return False
            for membership in memberships:
                key = (organization_id, membership.user_id)
                old = self._members.get(key)
                joined_at = now if old is None else old.joined_at
                self._members[key] = MemberRecord(membership=membership, joined_at=joined_at)
            return True

    def update_organization(
        self,
        organization_id: str,
        *,
        expected_version: int,
        name: str | None = None,
        deleted_at: datetime | None = None,
    ) -> bool:
        """See :meth:`DirectoryStore.update_organization`."""
        organization_id = _check_str("organization_id", organization_id)
        expected_version = _check_version(expected_version)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = _check_str("name", name)
        if deleted_at is not None:
            changes["deleted_at"] = ensure_aware_utc(deleted_at)
        with self._lock:
            if not self._bump(organization_id, expected_version):
                return False
            if changes:
                organization = self._organizations[organization_id]
                self._organizations[organization_id] = attrs.evolve(organization, **changes)
            return True

    # --- invitations -------------------------------------------------------------------------

    def add_invitation(self, invitation: Invitation, *, expected_version: int) -> bool:
        """See :meth:`DirectoryStore.add_invitation`."""
        invitation = _check_invitation(invitation)
        expected_version = _check_version(expected_version)
        with self._lock:
            organization = self._organizations.get(invitation.organization_id)
            if (
                organization is None
                or organization.deleted_at is not None
                or organization.version != expected_version
            ):
                return False
            if invitation.invitation_id in self._invitations:
                raise StoreError("the invitation id exists already", reason="duplicate")
            self._bump(invitation.organization_id, expected_version)
            self._invitations[invitation.invitation_id] = invitation
            return True

    def get_invitation(self, invitation_id: str) -> Invitation | None:
        """See :meth:`DirectoryStore.get_invitation`."""
        return self._invitations.get(_check_str("invitation_id", invitation_id))

    def invitations(
        self, *, email: str | None = None, organization_id: str | None = None
    ) -> list[Invitation]:
        """See :meth:`DirectoryStore.invitations`."""
        if email is None and organization_id is None:
            raise ValueError("give email, organization_id or both")
        if email is not None:
            _check_str("email", email)
        if organization_id is not None:
            _check_str("organization_id", organization_id)
        with self._lock:
            found = [
                i
                for i in self._invitations.values()
                if (email is None or i.email == email)
                and (organization_id is None or i.organization_id == organization_id)
            ]
        return sorted(found, key=lambda i: (i.created_at, i.invitation_id))

    def accept_invitation(
        self,
        invitation_id: str,
        *,
        expected_version: int,
        membership: Membership,
        now: datetime,
    ) -> bool:
        """See :meth:`DirectoryStore.accept_invitation`."""
        invitation_id = _check_str("invitation_id", invitation_id)
        expected_version = _check_version(expected_version)
        membership = _check_membership(membership)
        now = ensure_aware_utc(now)
        with self._lock:
            invitation = self._invitations.get(invitation_id)
            if invitation is None:
                return False
            _check_acceptance(invitation, membership)
            organization_id = invitation.organization_id
            organization = self._organizations.get(organization_id)
            if (
                organization is None
                or organization.deleted_at is not None
                or organization.version != expected_version
                or invitation.state(now) is not InvitationState.OPEN
            ):
                return False
            key = (organization_id, membership.user_id)
            old = self._members.get(key)
            if old is not None and old.membership.deleted_at is None:
                return False
            self._bump(organization_id, expected_version)
            self._invitations[invitation_id] = attrs.evolve(
                invitation, accepted_at=now, accepted_by=membership.user_id
            )
            self._members[key] = MemberRecord(membership=membership, joined_at=now)
            return True

    def close_invitation(self, invitation_id: str, *, declined: bool, now: datetime) -> bool:
        """See :meth:`DirectoryStore.close_invitation`."""
        invitation_id = _check_str("invitation_id", invitation_id)
        if not isinstance(declined, bool):
            raise TypeError("declined must be a bool")
        now = ensure_aware_utc(now)
        with self._lock:
            invitation = self._invitations.get(invitation_id)
            if invitation is None or invitation.state(now) is not InvitationState.OPEN:
                return False
            if declined:
                closed = attrs.evolve(invitation, declined_at=now)
            else:
                closed = attrs.evolve(invitation, withdrawn_at=now)
            self._invitations[invitation_id] = closed
            self._bump(invitation.organization_id, None)
            return True

    def delete_invitations(self, *, email: str) -> int:
        """See :meth:`DirectoryStore.delete_invitations`."""
        email = _check_str("email", email)
        with self._lock:
            addressed = [i for i in self._invitations.values() if i.email == email]
            for invitation in addressed:
                del self._invitations[invitation.invitation_id]
            for organization_id in {i.organization_id for i in addressed}:
                self._bump(organization_id, None)
            return len(addressed)

    # --- GDPR --------------------------------------------------------------------------------

    def forget_user(self, user_id: str) -> int:
        """See :meth:`DirectoryStore.forget_user`."""
        user_id = _check_str("user_id", user_id)
        with self._lock:
            count = 0
            touched: set[str] = set()
            user = self._users.pop(user_id, None)
            email = None
            if user is not None:
                self._unindex(user)
                email = user.email
                count += 1
            for key in [k for k in self._members if k[1] == user_id]:
                del self._members[key]
                touched.add(key[0])
                count += 1
            for invitation in list(self._invitations.values()):
                named = invitation.accepted_by == user_id or (
                    email is not None and invitation.email == email
                )
                if named:
                    del self._invitations[invitation.invitation_id]
                elif invitation.invited_by == user_id:
                    self._invitations[invitation.invitation_id] = attrs.evolve(
                        invitation, invited_by=None
                    )
                else:
                    continue
                touched.add(invitation.organization_id)
                count += 1
            for organization_id in touched:
                self._bump(organization_id, None)
            return count

    def purge_organizations(self) -> list[str]:
        """See :meth:`DirectoryStore.purge_organizations`."""
        with self._lock:
            occupied = {org for org, _ in self._members}
            purged = sorted(o for o in self._organizations if o not in occupied)
            for organization_id in purged:
                del self._organizations[organization_id]
            gone = set(purged)
            for invitation in list(self._invitations.values()):
                if invitation.organization_id in gone:
                    del self._invitations[invitation.invitation_id]
            return purged
