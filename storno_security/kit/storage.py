"""What the kit needs from storage: the directory of accounts and organizations, and the bundle
of every capability's store.

:class:`DirectoryStore` keeps users (:class:`~storno_security.accounts.UserAccount`),
organizations, memberships and invitations. Every write that a security rule depends on is one
atomic, conditional operation:

* a user is updated by compare-and-set on the fields the decision read
  (:meth:`DirectoryStore.update_user`), so a password checked a moment ago cannot have changed
  under the new hash;
* memberships and invitations of an organization change only if the organization's
  ``version`` is still the one the decision read (:meth:`DirectoryStore.apply_memberships`,
  :meth:`DirectoryStore.accept_invitation`); the store bumps it in the same step. Two
  decisions made on the same state cannot both apply, so an invitation is accepted at most once
  and an organization never ends without an Owner, whatever the isolation level (RBAC-6).

:class:`StoreBundle` holds one store per protocol. Build it with one call per backend
(``storno_security.stores.memory.memory_bundle()``, ``storno_security.stores.sql.sql_bundle()``)
so every flow uses the same stores: the verifier and the session manager share one session-state
store, TOTP and backup codes share one lockout, and so on, by construction.

Stores take times from the caller and never read a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from storno_security.accounts.model import UserAccount, _check_keys
from storno_security.accounts.storage import EmailConfirmationStore, ResetTokenStore
from storno_security.api_keys.storage import ApiKeyStore
from storno_security.audit.storage import AuditStore
from storno_security.license.storage import LastSeenStore
from storno_security.mfa.storage import (
    BackupCodeStore,
    MfaChallengeStore,
    MfaFailureStore,
    StepUpStore,
    TotpReplayStore,
)
from storno_security.passkeys.storage import PasskeyChallengeStore, PasskeyCredentialStore
from storno_security.ratelimit.storage import RateLimitStorage
from storno_security.rbac.invitations import Invitation, Organization
from storno_security.rbac.model import Membership
from storno_security.rbac.permissions import Role
from storno_security.tokens.storage import RefreshFamilyStore, SessionState, SessionStateStore

__all__ = [
    "AccountOverview",
    "AccountOverviewStore",
    "DirectoryStore",
    "ForgetsUsers",
    "MemberRecord",
    "SessionOverviewStore",
    "StoreBundle",
]


@attrs.frozen(kw_only=True)
class MemberRecord:
    """A membership with the time it was created (for stable listing)."""

    membership: Membership
    joined_at: datetime


@runtime_checkable
class DirectoryStore(Protocol):
    """Users, organizations, memberships and invitations. Every method is one atomic operation.

    Addresses are stored in their normal form (the caller normalises); at most one *live*
    user has a given address or Google subject. Every change to an organization's memberships
    or invitations bumps its ``version``, so no decision read before applies.

    Besides what each method lists, every method raises ``TypeError`` for an argument of the
    wrong type, ``ValueError`` for a naive time or a text no column can hold (refused, never
    truncated), :class:`~storno_security.errors.StoreUnavailableError` when the backend cannot
    be reached and :class:`~storno_security.errors.CorruptRecordError` for a stored record the
    library did not write (both are ``StoreError``); a call that raises wrote nothing.
    """

    # --- users -------------------------------------------------------------------------------

    def create_account(
        self, user: UserAccount, *, organization: Organization, owner: Membership
    ) -> None:
        """Store a new user with their first organization and Owner membership, atomically
        (ACC-1, RBAC-1).

        The Owner membership's ``joined_at`` is the organization's ``created_at``.

        Raises:
            ValueError: the user or organization is deleted, the address or Google subject is
                empty, or ``owner`` is not the user's live Owner membership of the organization.
            AccountExistsError: a live user has this address (``reason="email_taken"``) or
                Google subject (``reason="google_taken"``); nothing was written.
            StoreError: the backend failed (or an id exists already); nothing was written.
        """
        ...

    def get_user(self, user_id: str) -> UserAccount | None:
        """The user with this id, deleted or not; ``None`` when there is none.

        Raises:
            StoreError: the backend failed.
        """
        ...

    def find_user(
        self, *, email: str | None = None, google_subject: str | None = None
    ) -> UserAccount | None:
        """The *live* user with this normalised address, or this Google subject (exactly one
        of the two is given).

        Raises:
            ValueError: neither or both given.
            StoreError: the backend failed.
        """
        ...

    def get_users(self, user_ids: Iterable[str]) -> dict[str, UserAccount]:
        """The users with these ids that exist (deleted included), by id.

        Raises:
            StoreError: the backend failed.
        """
        ...

    def update_user(
        self,
        user_id: str,
        *,
        expected: Mapping[str, Any],
        changes: Mapping[str, Any],
    ) -> UserAccount | None:
        """Compare-and-set: apply ``changes`` if the user exists and every field named in
        ``expected`` has the given value (``None`` included); field names are those of
        :data:`~storno_security.accounts.model.USER_FIELDS`.

        Returns:
            The user as stored after the change, or ``None`` when nothing matched (the user is
            unknown, or a field changed meanwhile); then nothing was written.

        An expected text that no column can hold matches nothing; with no ``changes`` it only
        compares.

        Raises:
            ValueError: an unknown field name, a value of the wrong type, or (in ``changes``)
                an empty address or Google subject.
            AccountExistsError: the change would give a second live user this address or
                Google subject; nothing was written.
            StoreError: the backend failed; nothing was written.
        """
        ...

    def deleted_users(self, *, deleted_before: datetime, limit: int) -> list[str]:
        """Ids of users deleted before ``deleted_before`` (for the purge), oldest first.

        Raises:
            ValueError: ``limit`` is negative.
            StoreError: the backend failed.
        """
        ...

    # --- organizations and memberships -------------------------------------------------------

    def get_organization(self, organization_id: str) -> Organization | None:
        """The organization, deleted or not; ``None`` when there is none.

        Raises:
            StoreError: the backend failed.
        """
        ...

    def memberships_of(self, user_id: str) -> list[Membership]:
        """Every membership of the user, removed ones included.

        Raises:
            StoreError: the backend failed.
        """
        ...

    def members_of(self, organization_id: str) -> list[MemberRecord]:
        """Every membership of the organization, removed ones included, oldest first.

        Raises:
            StoreError: the backend failed.
        """
        ...

    def apply_memberships(
        self,
        organization_id: str,
        *,
        expected_version: int,
        memberships: Sequence[Membership],
        now: datetime,
    ) -> bool:
        """Write these memberships of ``organization_id`` (insert, or replace the record of
        the same user) if the organization's version is still ``expected_version``; bump the
        version in the same atomic step. A new record's ``joined_at`` is ``now``.

        Returns:
            ``True`` when written; ``False`` when the version moved (or the organization is
            unknown): nothing was written.

        Raises:
            ValueError: a membership of another organization, or two of one user.
            StoreError: the backend failed; nothing was written.
        """
        ...

    def update_organization(
        self,
        organization_id: str,
        *,
        expected_version: int,
        name: str | None = None,
        deleted_at: datetime | None = None,
    ) -> bool:
        """Rename and/or soft-delete the organization if its version is ``expected_version``;
        bump the version. Returns whether it was written.

        Raises:
            StoreError: the backend failed; nothing was written.
        """
        ...

    # --- invitations -------------------------------------------------------------------------

    def add_invitation(self, invitation: Invitation, *, expected_version: int) -> bool:
        """Store a new invitation if the organization's version is ``expected_version`` (the
        inviter's rights were read at that version) and it is not soft-deleted; bump the
        version. Returns whether it was written.

        Raises:
            StoreError: the id exists already, or the backend failed; nothing was written.
        """
        ...

    def get_invitation(self, invitation_id: str) -> Invitation | None:
        """The invitation, whatever its state; ``None`` when unknown.

        Raises:
            StoreError: the backend failed.
        """
        ...

    def invitations(
        self, *, email: str | None = None, organization_id: str | None = None
    ) -> list[Invitation]:
        """Invitations addressed to ``email`` and/or made by ``organization_id`` (at least one
        is given), in every state, oldest first.

        Raises:
            ValueError: neither given.
            StoreError: the backend failed.
        """
        ...

    def accept_invitation(
        self,
        invitation_id: str,
        *,
        expected_version: int,
        membership: Membership,
        now: datetime,
    ) -> bool:
        """Accept an open invitation: mark it accepted by ``membership.user_id`` and write
        ``membership``, in one atomic step, if the invitation is still open at ``now`` and the
        organization's version is ``expected_version``; bump the version.

        Of any number of concurrent calls for one invitation, at most one returns ``True``. The
        membership replaces a removed membership of the user (``joined_at`` becomes ``now``),
        never a live one; a soft-deleted organization takes no one.

        Returns:
            Whether it was accepted by this call; ``False``: nothing was written.

        Raises:
            ValueError: ``membership`` is not what the invitation grants (another organization,
                role or permission set, or removed).
            StoreError: the backend failed; nothing was written.
        """
        ...

    def close_invitation(self, invitation_id: str, *, declined: bool, now: datetime) -> bool:
        """Mark an open invitation declined (``declined=True``) or withdrawn; return whether
        this call closed it (``False``: it was not open).

        Raises:
            StoreError: the backend failed; nothing was written.
        """
        ...

    def delete_invitations(self, *, email: str) -> int:
        """Delete every invitation addressed to ``email``, whatever its state (the address is
        personal data of an account being deleted); return how many.

        Raises:
            StoreError: the backend failed; nothing was written.
        """
        ...

    # --- GDPR --------------------------------------------------------------------------------

    def forget_user(self, user_id: str) -> int:
        """Delete every record that names the user: the user row, their memberships, the
        invitations addressed to their address or accepted by them; clear ``invited_by`` where
        it names them. Return how many records were deleted or changed.

        Raises:
            StoreError: the backend failed; nothing was written.
        """
        ...

    def purge_organizations(self) -> list[str]:
        """Delete the organizations that have no membership record left (every member
        forgotten); return their ids, so the application can delete its own rows of them.

        Raises:
            StoreError: the backend failed.
        """
        ...


# --- the arguments every directory store checks the same way ---------------------------------


def _check_new_account(user: object, organization: object, owner: object) -> None:
    """The arguments of :meth:`DirectoryStore.create_account`: a live user, a live
    organization, and that user's live Owner membership of it.

    Raises:
        TypeError: a record of the wrong type.
        ValueError: the records do not fit together.
    """
    if not isinstance(user, UserAccount):
        raise TypeError("user must be a UserAccount")
    if not isinstance(organization, Organization):
        raise TypeError("organization must be an Organization")
    if not isinstance(owner, Membership):
        raise TypeError("owner must be a Membership")
    _check_keys(user)
    if not user.is_live or organization.deleted_at is not None:
        raise ValueError("a new account and its organization cannot be deleted already")
    if (
        owner.user_id != user.user_id
        or owner.organization_id != organization.organization_id
        or owner.role is not Role.OWNER
        or owner.deleted_at is not None
    ):
        raise ValueError("owner must be the user's live Owner membership of the organization")


def _check_version(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected_version must be an int")
    return value


def _check_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("limit must be an int")
    if value < 0:
        raise ValueError("limit must not be negative")
    return value


def _check_membership(value: object) -> Membership:
    if not isinstance(value, Membership):
        raise TypeError("membership must be a Membership")
    return value


def _check_invitation(value: object) -> Invitation:
    if not isinstance(value, Invitation):
        raise TypeError("invitation must be an Invitation")
    return value


@runtime_checkable
class ForgetsUsers(Protocol):
    """A store that keys data by user and can forget one (ACC-7)."""

    def forget_user(self, user_id: str) -> int:
        """Delete every record of the user; return how many were deleted.

        Raises:
            StoreError: the backend failed.
        """
        ...


@attrs.frozen(kw_only=True)
class AccountOverview:
    """A user's own records as one read saw them: what ``GET /me`` shows.

    Attributes:
        user: the account, deleted or not.
        memberships: every membership of the user, removed ones included (as
            :meth:`DirectoryStore.memberships_of`).
        organizations: the organization of each membership, by id (deleted ones included).
        has_passkeys: a usable (unflagged) passkey exists.
        backup_codes_left: unused backup codes of the current set.
    """

    user: UserAccount
    memberships: tuple[Membership, ...]
    organizations: Mapping[str, Organization]
    has_passkeys: bool
    backup_codes_left: int


@runtime_checkable
class AccountOverviewStore(Protocol):
    """Optional: a backend that reads a user's own records in one statement (issue 18). Without
    one the kit reads the directory, the passkeys and the backup codes one by one; the result
    is the same."""

    def account_overview(self, user_id: str) -> AccountOverview | None:
        """The user's records, or ``None`` when there is no such user.

        Raises:
            StoreError: the backend failed.
        """
        ...


@runtime_checkable
class SessionOverviewStore(Protocol):
    """Optional, on an :class:`AccountOverviewStore`: a backend that reads a session's state
    (as :meth:`~storno_security.tokens.storage.SessionStateStore.session_state`) and the
    user's own records in one statement, so an authenticated ``GET /me`` costs one read. The
    kit uses it only where :meth:`reads_session_state_of` says it reads the records the
    bundle's ``session_state`` store writes; otherwise that store is read, as without it."""

    def reads_session_state_of(self, store: object) -> bool:
        """Whether :meth:`session_overview` reads the very records that ``store`` (a
        :class:`~storno_security.tokens.storage.SessionStateStore`) writes, so that every
        revocation recorded there is seen at once. When unsure, ``False``."""
        ...

    def session_overview(
        self, *, user_id: str, session_id: str
    ) -> tuple[SessionState, AccountOverview | None]:
        """The session's state and the user's records (``None``: no such user).

        Raises:
            TypeError, ValueError: a bad argument, as ``session_state``.
            StoreError: the backend failed.
        """
        ...


def _is(protocol: type, what: str) -> Any:
    verbs = [name for name in vars(protocol) if not name.startswith("_")]

    def check(instance: Any, attribute: attrs.Attribute[Any], value: object) -> None:
        missing = [verb for verb in verbs if not callable(getattr(value, verb, None))]
        if missing:
            raise TypeError(f"{attribute.name} must implement {what} (no {missing[0]}())")

    return check


@attrs.frozen(kw_only=True)
class StoreBundle:
    """One store per protocol, for :class:`~storno_security.kit.Kit`.

    Build it with ``memory_bundle()`` or ``sql_bundle(engine, redis=...)`` from
    :mod:`storno_security.stores`; a hand-made bundle is checked field by field.

    Raises:
        TypeError: a field does not implement its protocol.
    """

    directory: DirectoryStore = attrs.field(validator=_is(DirectoryStore, "DirectoryStore"))
    refresh_families: RefreshFamilyStore = attrs.field(
        validator=_is(RefreshFamilyStore, "RefreshFamilyStore")
    )
    session_state: SessionStateStore = attrs.field(
        validator=_is(SessionStateStore, "SessionStateStore")
    )
    totp_replay: TotpReplayStore = attrs.field(validator=_is(TotpReplayStore, "TotpReplayStore"))
    backup_codes: BackupCodeStore = attrs.field(validator=_is(BackupCodeStore, "BackupCodeStore"))
    mfa_challenges: MfaChallengeStore = attrs.field(
        validator=_is(MfaChallengeStore, "MfaChallengeStore")
    )
    step_up: StepUpStore = attrs.field(validator=_is(StepUpStore, "StepUpStore"))
    mfa_failures: MfaFailureStore = attrs.field(validator=_is(MfaFailureStore, "MfaFailureStore"))
    api_keys: ApiKeyStore = attrs.field(validator=_is(ApiKeyStore, "ApiKeyStore"))
    passkey_challenges: PasskeyChallengeStore = attrs.field(
        validator=_is(PasskeyChallengeStore, "PasskeyChallengeStore")
    )
    passkey_credentials: PasskeyCredentialStore = attrs.field(
        validator=_is(PasskeyCredentialStore, "PasskeyCredentialStore")
    )
    reset_tokens: ResetTokenStore = attrs.field(validator=_is(ResetTokenStore, "ResetTokenStore"))
    email_confirmations: EmailConfirmationStore = attrs.field(
        validator=_is(EmailConfirmationStore, "EmailConfirmationStore")
    )
    audit: AuditStore = attrs.field(validator=_is(AuditStore, "AuditStore"))
    license_last_seen: LastSeenStore = attrs.field(validator=_is(LastSeenStore, "LastSeenStore"))
    rate_limits: RateLimitStorage = attrs.field(validator=_is(RateLimitStorage, "RateLimitStorage"))
    #: Called by :meth:`close`: releases connections (engine, Redis client).
    closers: tuple[Any, ...] = attrs.field(default=(), repr=False)
    #: ``(name, probe)``: each dependency beside the main database and a no-argument call that
    #: says whether it answers now (readiness).
    dependencies: tuple[tuple[str, Any], ...] = attrs.field(default=(), repr=False)
    #: Optional: the one-statement read of a user's own records (see
    #: :class:`AccountOverviewStore`); it must read the very stores above.
    account_overview: AccountOverviewStore | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_is(AccountOverviewStore, "AccountOverviewStore")),
    )

    def probes(self) -> tuple[tuple[str, Any], ...]:
        """The bundle's dependencies and their probes (see ``dependencies``)."""
        return self.dependencies

    def user_stores(self) -> list[ForgetsUsers]:
        """Every store that keys data by user, for :meth:`Kit.forget_user` (ACC-7)."""
        seen: list[ForgetsUsers] = []
        for field in attrs.fields(StoreBundle):
            value = getattr(self, field.name)
            if isinstance(value, ForgetsUsers) and all(value is not s for s in seen):
                seen.append(value)
        return seen

    def close(self) -> None:
        """Release the bundle's connections."""
        for close in self.closers:
            close()
