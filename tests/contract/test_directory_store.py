"""One contract for every DirectoryStore implementation (memory, SQLite, PostgreSQL, MariaDB).

Ids and addresses are random per test, so the tests share each backend's schema without seeing
each other's rows.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from storno_security.accounts.model import USER_FIELDS, UserAccount
from storno_security.errors import AccountExistsError, CorruptRecordError, StoreError
from storno_security.kit.storage import DirectoryStore, ForgetsUsers, MemberRecord
from storno_security.rbac.invitations import Invitation, InvitationState, Organization
from storno_security.rbac.model import Membership
from storno_security.rbac.permissions import Permission, Role
from storno_security.stores import sql as sql_stores
from storno_security.stores.memory import MemoryDirectoryStore
from storno_security.stores.sql import SqlDirectoryStore
from tests.conftest import get_sql_engine
from tests.contract.conftest import store_fixture

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
TICK = timedelta(microseconds=1)

directory = store_fixture("directory", {"memory": MemoryDirectoryStore, "sql": SqlDirectoryStore})


# --- helpers ---------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def new_email() -> str:
    return f"u{secrets.token_hex(6)}@example.com"


def new_user(**fields: Any) -> UserAccount:
    values: dict[str, Any] = {"user_id": new_id("user"), "email": new_email(), "created_at": NOW}
    values.update(fields)
    return UserAccount(**values)


def owner_of(user: UserAccount, organization: Organization) -> Membership:
    return Membership(
        user_id=user.user_id,
        organization_id=organization.organization_id,
        role=Role.OWNER,
        is_default=True,
    )


def register(
    store: Any, user: UserAccount | None = None, **fields: Any
) -> tuple[UserAccount, Organization]:
    """A new account: the user, its organization and Owner membership."""
    user = user or new_user(**fields)
    organization = Organization(organization_id=new_id("org"), name="Acme", created_at=NOW)
    store.create_account(user, organization=organization, owner=owner_of(user, organization))
    return user, organization


def version_of(store: Any, organization_id: str) -> int:
    organization = store.get_organization(organization_id)
    assert organization is not None
    return int(organization.version)


def invite(
    store: Any,
    organization_id: str,
    *,
    email: str | None = None,
    role: Role = Role.ACCOUNTANT,
    permissions: frozenset[Permission] | None = None,
    invited_by: str | None = None,
    created_at: datetime = NOW,
    expires_at: datetime = NOW + WEEK,
) -> Invitation:
    invitation = Invitation(
        invitation_id=new_id("inv"),
        organization_id=organization_id,
        email=email or new_email(),
        role=role,
        permissions=permissions,
        invited_by=invited_by,
        created_at=created_at,
        expires_at=expires_at,
    )
    assert store.add_invitation(invitation, expected_version=version_of(store, organization_id))
    return invitation


def accept(store: Any, invitation: Invitation, user_id: str, *, now: datetime = NOW) -> bool:
    return bool(
        store.accept_invitation(
            invitation.invitation_id,
            expected_version=version_of(store, invitation.organization_id),
            membership=invitation.membership_for(user_id),
            now=now,
        )
    )


def member(user_id: str, organization_id: str, **fields: Any) -> Membership:
    values: dict[str, Any] = {"role": Role.VIEWER}
    values.update(fields)
    return Membership(user_id=user_id, organization_id=organization_id, **values)


def _strings(value: Any) -> Iterator[str]:
    """Every str held in a structure of dicts, sequences, sets and attrs records."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _strings(item)
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            yield from _strings(getattr(value, field.name))


def stored_text(store: Any) -> list[str]:
    """Every text value the store holds: every column of every row of its tables (SQL), or
    everything its dictionaries hold (memory)."""
    if isinstance(store, SqlDirectoryStore):
        found: list[str] = []
        engine = store._engine
        with engine.connect() as conn:
            for table in (
                sql_stores.users,
                sql_stores.organizations,
                sql_stores.memberships,
                sql_stores.invitations,
            ):
                for row in conn.execute(sa.select(table)):
                    found.extend(_strings(tuple(row)))
        return found
    return list(_strings(vars(store)))


# --- users -----------------------------------------------------------------------------------


def test_is_a_directory_store(directory: Any) -> None:
    assert isinstance(directory, DirectoryStore)
    assert isinstance(directory, ForgetsUsers)


@pytest.mark.spec("ACC-1")
def test_create_account_round_trip(directory: Any) -> None:
    user = new_user(
        name="Zoë Ärger ✓",
        email_confirmed_at=NOW + timedelta(seconds=1, microseconds=7),
        password_hash="$2b$12$" + "a" * 53,
        google_subject="1234567890",
        totp_secret_sealed="sealed-" + "x" * 300,
        totp_pending_sealed="pending",
        mfa_enabled=True,
        password_changed_at=NOW + TICK,
    )
    _, organization = register(directory, user)
    assert directory.get_user(user.user_id) == user
    assert directory.get_organization(organization.organization_id) == organization
    owner = owner_of(user, organization)
    assert directory.memberships_of(user.user_id) == [owner]
    assert directory.members_of(organization.organization_id) == [
        MemberRecord(membership=owner, joined_at=NOW)
    ]
    found = directory.find_user(email=user.email)
    assert found == user
    assert found.email_confirmed_at.utcoffset() == timedelta(0)
    assert directory.find_user(google_subject="1234567890") == user


@pytest.mark.spec("ACC-1")
def test_a_taken_address_or_google_subject_writes_nothing(directory: Any) -> None:
    first, _ = register(directory, google_subject=new_id("google"))
    for clash, reason in (
        (new_user(email=first.email), "email_taken"),
        (new_user(google_subject=first.google_subject), "google_taken"),
        (new_user(email=first.email, google_subject=first.google_subject), "email_taken"),
    ):
        organization = Organization(organization_id=new_id("org"), name="B", created_at=NOW)
        with pytest.raises(AccountExistsError) as info:
            directory.create_account(
                clash, organization=organization, owner=owner_of(clash, organization)
            )
        assert info.value.reason == reason
        assert directory.get_user(clash.user_id) is None
        assert directory.get_organization(organization.organization_id) is None
        assert directory.memberships_of(clash.user_id) == []
    assert directory.find_user(email=first.email) == first


def test_a_taken_id_is_a_store_error_and_writes_nothing(directory: Any) -> None:
    user, organization = register(directory)
    same_user = new_user(user_id=user.user_id)
    other_org = Organization(organization_id=new_id("org"), name="B", created_at=NOW)
    with pytest.raises(StoreError) as info:
        directory.create_account(
            same_user, organization=other_org, owner=owner_of(same_user, other_org)
        )
    assert not isinstance(info.value, AccountExistsError)
    assert info.value.reason == "duplicate"
    assert directory.get_organization(other_org.organization_id) is None
    assert directory.find_user(email=same_user.email) is None

    other_user = new_user()
    with pytest.raises(StoreError) as info:
        directory.create_account(
            other_user, organization=organization, owner=owner_of(other_user, organization)
        )
    assert info.value.reason == "duplicate"
    assert directory.get_user(other_user.user_id) is None
    assert directory.members_of(organization.organization_id) == [
        MemberRecord(membership=owner_of(user, organization), joined_at=NOW)
    ]


def test_create_account_refuses_records_that_do_not_fit(directory: Any) -> None:
    user = new_user()
    organization = Organization(organization_id=new_id("org"), name="A", created_at=NOW)
    owner = owner_of(user, organization)
    bad_owners = [
        attrs.evolve(owner, role=Role.ADMIN),
        attrs.evolve(owner, user_id=new_id("user")),
        attrs.evolve(owner, organization_id=new_id("org")),
        attrs.evolve(owner, deleted_at=NOW),
    ]
    for bad in bad_owners:
        with pytest.raises(ValueError, match="Owner membership"):
            directory.create_account(user, organization=organization, owner=bad)
    for empty in ({"email": ""}, {"google_subject": ""}):
        with pytest.raises(ValueError, match="empty"):
            directory.create_account(
                attrs.evolve(user, **empty), organization=organization, owner=owner
            )
    with pytest.raises(ValueError, match="deleted"):
        directory.create_account(
            attrs.evolve(user, deleted_at=NOW), organization=organization, owner=owner
        )
    with pytest.raises(TypeError):
        directory.create_account(attrs.asdict(user), organization=organization, owner=owner)
    assert directory.get_user(user.user_id) is None
    assert directory.get_organization(organization.organization_id) is None


def test_unknown_ids_are_none(directory: Any) -> None:
    for unknown in (new_id("user"), "", "nul\x00byte", "\ud800"):
        assert directory.get_user(unknown) is None
        assert directory.get_organization(unknown) is None
        assert directory.get_invitation(unknown) is None
        assert directory.memberships_of(unknown) == []
        assert directory.members_of(unknown) == []
        assert directory.find_user(email=unknown) is None
        assert directory.find_user(google_subject=unknown) is None


def test_find_user_takes_exactly_one_key(directory: Any) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        directory.find_user()
    with pytest.raises(ValueError, match="exactly one"):
        directory.find_user(email="a@example.com", google_subject="1")


@pytest.mark.spec("ACC-1")
def test_addresses_and_subjects_compare_exactly(directory: Any) -> None:
    subject = "Sub" + secrets.token_hex(4)
    user, _ = register(directory, email="Ab" + new_email(), google_subject=subject)
    assert user.email is not None
    for near in (user.email.lower(), user.email.upper(), user.email + " ", " " + user.email):
        assert directory.find_user(email=near) is None
    for near in (subject.lower(), subject.upper(), subject + " "):
        assert directory.find_user(google_subject=near) is None
    # the store keeps addresses as given: the caller normalises, the store never folds case
    other, _ = register(directory, email=user.email.lower(), google_subject=subject.lower())
    assert directory.find_user(email=user.email) == user
    assert directory.find_user(email=user.email.lower()) == other


@pytest.mark.spec("ACC-1")
def test_a_deleted_users_leftover_address_neither_matches_nor_blocks(directory: Any) -> None:
    gone, _ = register(directory, google_subject=new_id("google"))
    deleted = directory.update_user(gone.user_id, expected={}, changes={"deleted_at": NOW})
    assert deleted is not None
    assert deleted.email == gone.email  # left over by a careless caller
    assert directory.find_user(email=gone.email) is None
    assert directory.find_user(google_subject=gone.google_subject) is None

    again, _ = register(directory, email=gone.email, google_subject=gone.google_subject)
    assert directory.find_user(email=gone.email) == again
    assert directory.find_user(google_subject=gone.google_subject) == again
    assert directory.get_user(gone.user_id) == deleted
    # the deleted user can still be changed (anonymised later) without clashing
    renamed = directory.update_user(gone.user_id, expected={}, changes={"name": "gone"})
    assert renamed == attrs.evolve(deleted, name="gone")

    # bringing the deleted user back would give the address a second live user
    with pytest.raises(AccountExistsError) as info:
        directory.update_user(gone.user_id, expected={}, changes={"deleted_at": None})
    assert info.value.reason == "email_taken"
    assert directory.get_user(gone.user_id) == renamed


def test_get_users(directory: Any) -> None:
    first, _ = register(directory)
    second, _ = register(directory)
    directory.update_user(second.user_id, expected={}, changes={"deleted_at": NOW, "email": None})
    unknown = [new_id("user") for _ in range(700)]
    found = directory.get_users([first.user_id, second.user_id, first.user_id, *unknown, ""])
    assert set(found) == {first.user_id, second.user_id}
    assert found[first.user_id] == first
    assert found[second.user_id].deleted_at == NOW
    assert directory.get_users([]) == {}
    assert directory.get_users(iter([first.user_id])) == {first.user_id: first}


# --- update_user -----------------------------------------------------------------------------


def test_update_user_compares_and_sets(directory: Any) -> None:
    user, _ = register(directory, password_hash="old-hash", name="Alice")
    changed_at = NOW + timedelta(hours=1, microseconds=3)
    updated = directory.update_user(
        user.user_id,
        expected={"password_hash": "old-hash", "password_changed_at": None, "name": "Alice"},
        changes={"password_hash": "new-hash", "password_changed_at": changed_at},
    )
    assert updated == attrs.evolve(user, password_hash="new-hash", password_changed_at=changed_at)
    assert directory.get_user(user.user_id) == updated

    # every expected field must still hold; a stale one writes nothing
    for stale in (
        {"password_hash": "old-hash"},
        {"password_changed_at": None},
        {"password_changed_at": changed_at + TICK},
        {"name": "alice"},
        {"name": "Alice "},
        {"mfa_enabled": True},
        {"email": None},
    ):
        assert (
            directory.update_user(user.user_id, expected=stale, changes={"name": "Mallory"}) is None
        )
    assert directory.get_user(user.user_id) == updated

    # None means "is null"; an aware time in another zone is the same instant
    east = timezone(timedelta(hours=2))
    done = directory.update_user(
        user.user_id,
        expected={"totp_secret_sealed": None, "password_changed_at": changed_at.astimezone(east)},
        changes={"mfa_enabled": True, "totp_secret_sealed": "sealed"},
    )
    assert done is not None
    assert done.mfa_enabled is True
    assert done.totp_secret_sealed == "sealed"
    assert directory.update_user(new_id("user"), expected={}, changes={"name": "x"}) is None


def test_update_user_without_changes_only_compares(directory: Any) -> None:
    user, _ = register(directory)
    assert directory.update_user(user.user_id, expected={"email": user.email}, changes={}) == user
    assert directory.update_user(user.user_id, expected={"email": None}, changes={}) is None


@pytest.mark.parametrize(
    ("expected", "changes"),
    [
        ({}, {"user_id": "other"}),
        ({}, {"created_at": NOW}),
        ({}, {"no_such_field": 1}),
        ({"no_such_field": 1}, {}),
        ({}, {"mfa_enabled": "yes"}),
        ({}, {"name": None}),
        ({}, {"email": 5}),
        ({}, {"email": ""}),
        ({}, {"google_subject": ""}),
        ({}, {"deleted_at": datetime(2026, 3, 1, 12, 0)}),  # naive
        ({"password_changed_at": "2026-03-01"}, {}),
        ({}, "name"),
    ],
)
def test_update_user_refuses_unknown_fields_and_bad_values(
    directory: Any, expected: Any, changes: Any
) -> None:
    user, _ = register(directory)
    with pytest.raises(ValueError, match=r"unknown user fields|wrong type|mapping|empty"):
        directory.update_user(user.user_id, expected=expected, changes=changes)
    assert directory.get_user(user.user_id) == user


@pytest.mark.spec("ACC-1")
def test_update_user_keeps_addresses_and_subjects_unique(directory: Any) -> None:
    holder, _ = register(directory, google_subject=new_id("google"))
    user, _ = register(directory)
    for change, reason in (
        ({"email": holder.email}, "email_taken"),
        ({"google_subject": holder.google_subject}, "google_taken"),
        ({"name": "x", "google_subject": holder.google_subject}, "google_taken"),
    ):
        with pytest.raises(AccountExistsError) as info:
            directory.update_user(user.user_id, expected={"email": user.email}, changes=change)
        assert info.value.reason == reason
        assert directory.get_user(user.user_id) == user
    # one's own address is no clash; a deleted holder's leftover is none either
    assert directory.update_user(user.user_id, expected={}, changes={"email": user.email}) == user
    directory.update_user(holder.user_id, expected={}, changes={"deleted_at": NOW})
    moved = directory.update_user(
        user.user_id,
        expected={},
        changes={"email": holder.email, "google_subject": holder.google_subject},
    )
    assert moved is not None
    assert directory.find_user(email=holder.email) == moved


# --- deleted users ---------------------------------------------------------------------------


def test_deleted_users_oldest_first(directory: Any) -> None:
    # times long past, so that no other test's deleted users are older
    base = datetime(1971, 1, 1, tzinfo=UTC)
    ids = []
    for offset in (3, 1, 2, 0):
        user, _ = register(directory)
        at = base + timedelta(days=offset)
        directory.update_user(user.user_id, expected={}, changes={"deleted_at": at, "email": None})
        ids.append((at, user.user_id))
    live, _ = register(directory)
    oldest_first = [user_id for _, user_id in sorted(ids)]
    cutoff = base + timedelta(days=3)  # the one deleted at the cutoff is not before it
    assert directory.deleted_users(deleted_before=cutoff, limit=10) == oldest_first[:3]
    assert directory.deleted_users(deleted_before=cutoff, limit=2) == oldest_first[:2]
    assert directory.deleted_users(deleted_before=cutoff, limit=0) == []
    assert live.user_id not in directory.deleted_users(deleted_before=NOW + WEEK, limit=10_000)
    with pytest.raises(ValueError, match="negative"):
        directory.deleted_users(deleted_before=cutoff, limit=-1)
    with pytest.raises(TypeError):
        directory.deleted_users(deleted_before=cutoff, limit=True)
    with pytest.raises(ValueError, match="naive"):
        directory.deleted_users(deleted_before=datetime(1972, 1, 1), limit=1)


# --- organizations and memberships -----------------------------------------------------------


@pytest.mark.spec("RBAC-6")
def test_update_organization_is_conditional_on_the_version(directory: Any) -> None:
    _, organization = register(directory)
    org_id = organization.organization_id
    assert directory.update_organization(org_id, expected_version=0, name="Renamed") is True
    assert directory.get_organization(org_id) == attrs.evolve(
        organization, name="Renamed", version=1
    )
    assert directory.update_organization(org_id, expected_version=0, name="Stale") is False
    assert directory.get_organization(org_id).name == "Renamed"
    assert directory.update_organization(org_id, expected_version=1, deleted_at=NOW) is True
    assert directory.get_organization(org_id) == attrs.evolve(
        organization, name="Renamed", version=2, deleted_at=NOW
    )
    assert directory.update_organization(org_id, expected_version=2) is True
    assert version_of(directory, org_id) == 3
    assert directory.update_organization(new_id("org"), expected_version=0, name="x") is False


@pytest.mark.spec("RBAC-6")
def test_apply_memberships_is_conditional_on_the_version(directory: Any) -> None:
    owner, organization = register(directory)
    org_id = organization.organization_id
    joiner = new_id("user")
    later = NOW + timedelta(hours=1)
    added = member(joiner, org_id, permissions=[Permission.INVOICE_VIEW])
    assert directory.apply_memberships(org_id, expected_version=0, memberships=[added], now=later)
    assert version_of(directory, org_id) == 1
    assert directory.members_of(org_id) == [
        MemberRecord(membership=owner_of(owner, organization), joined_at=NOW),
        MemberRecord(membership=added, joined_at=later),
    ]
    # a decision made on version 0 no longer applies, whatever it writes
    removal = attrs.evolve(owner_of(owner, organization), deleted_at=later)
    assert not directory.apply_memberships(
        org_id, expected_version=0, memberships=[removal], now=later
    )
    assert version_of(directory, org_id) == 1
    assert directory.memberships_of(owner.user_id) == [owner_of(owner, organization)]

    # replacing keeps joined_at; a removed membership stays listed
    promoted = member(joiner, org_id, role=Role.ADMIN)
    removed = attrs.evolve(added, deleted_at=later + WEEK)
    assert directory.apply_memberships(
        org_id, expected_version=1, memberships=[promoted], now=later + WEEK
    )
    assert directory.members_of(org_id)[1] == MemberRecord(membership=promoted, joined_at=later)
    assert directory.apply_memberships(
        org_id, expected_version=2, memberships=[removed], now=later + 2 * WEEK
    )
    assert directory.memberships_of(joiner) == [removed]
    assert directory.apply_memberships(org_id, expected_version=3, memberships=[], now=NOW)
    assert version_of(directory, org_id) == 4
    assert not directory.apply_memberships(
        new_id("org"), expected_version=0, memberships=[], now=NOW
    )


def test_apply_memberships_refuses_bad_memberships(directory: Any) -> None:
    _, organization = register(directory)
    org_id = organization.organization_id
    one = new_id("user")
    for bad in (
        [member(one, new_id("org"))],
        [member(one, org_id), member(one, org_id, role=Role.ADMIN)],
    ):
        with pytest.raises(ValueError, match=r"another organization|two memberships"):
            directory.apply_memberships(org_id, expected_version=0, memberships=bad, now=NOW)
    with pytest.raises(TypeError):
        directory.apply_memberships(org_id, expected_version=0, memberships=["x"], now=NOW)
    with pytest.raises(TypeError):
        directory.apply_memberships(org_id, expected_version="0", memberships=[], now=NOW)
    with pytest.raises(ValueError, match="naive"):
        directory.apply_memberships(
            org_id, expected_version=0, memberships=[], now=datetime(2026, 1, 1)
        )
    assert version_of(directory, org_id) == 0
    assert len(directory.members_of(org_id)) == 1


def test_memberships_of_a_user_in_several_organizations(directory: Any) -> None:
    user, first = register(directory)
    _, second = register(directory)
    joined = member(user.user_id, second.organization_id)
    directory.apply_memberships(
        second.organization_id, expected_version=0, memberships=[joined], now=NOW + WEEK
    )
    assert directory.memberships_of(user.user_id) == [owner_of(user, first), joined]


# --- invitations -----------------------------------------------------------------------------


@pytest.mark.spec("RBAC-6")
def test_add_invitation_is_conditional_on_the_version(directory: Any) -> None:
    owner, organization = register(directory)
    org_id = organization.organization_id
    invitation = Invitation(
        invitation_id=new_id("inv"),
        organization_id=org_id,
        email=new_email(),
        role=Role.ACCOUNTANT,
        permissions=[Permission.INVOICE_VIEW, Permission.CLIENT_VIEW],
        invited_by=owner.user_id,
        created_at=NOW,
        expires_at=NOW + WEEK,
    )
    assert directory.add_invitation(invitation, expected_version=1) is False
    assert directory.get_invitation(invitation.invitation_id) is None
    assert directory.add_invitation(invitation, expected_version=0) is True
    assert directory.get_invitation(invitation.invitation_id) == invitation
    assert version_of(directory, org_id) == 1

    with pytest.raises(StoreError):
        directory.add_invitation(attrs.evolve(invitation, email=new_email()), expected_version=1)
    assert directory.get_invitation(invitation.invitation_id) == invitation
    assert version_of(directory, org_id) == 1  # the failed write bumped nothing

    stray = attrs.evolve(invitation, invitation_id=new_id("inv"), organization_id=new_id("org"))
    assert directory.add_invitation(stray, expected_version=0) is False
    directory.update_organization(org_id, expected_version=1, deleted_at=NOW)
    late = attrs.evolve(invitation, invitation_id=new_id("inv"))
    assert directory.add_invitation(late, expected_version=2) is False
    assert directory.get_invitation(late.invitation_id) is None
    assert version_of(directory, org_id) == 2


def test_invitations_are_listed_oldest_first(directory: Any) -> None:
    _, organization = register(directory)
    _, other_org = register(directory)
    email = new_email()
    org_id = organization.organization_id
    second = invite(directory, org_id, email=email, created_at=NOW + timedelta(minutes=1))
    first = invite(directory, org_id, created_at=NOW)
    elsewhere = invite(directory, other_org.organization_id, email=email, created_at=NOW)
    closed = invite(directory, org_id, email=email, created_at=NOW + timedelta(minutes=2))
    assert directory.close_invitation(closed.invitation_id, declined=True, now=NOW)
    closed = directory.get_invitation(closed.invitation_id)

    assert directory.invitations(organization_id=org_id) == [first, second, closed]
    assert directory.invitations(email=email) == [elsewhere, second, closed]
    assert directory.invitations(email=email, organization_id=org_id) == [second, closed]
    assert directory.invitations(email=email.upper()) == []
    assert directory.invitations(email=new_email()) == []
    with pytest.raises(ValueError, match="give email"):
        directory.invitations()


@pytest.mark.spec("RBAC-6")
def test_accept_invitation_once(directory: Any) -> None:
    _, organization = register(directory)
    org_id = organization.organization_id
    invitation = invite(directory, org_id, permissions=frozenset({Permission.INVOICE_VIEW}))
    joiner = new_id("user")
    at = NOW + timedelta(hours=2)
    assert accept(directory, invitation, joiner, now=at) is True
    assert directory.get_invitation(invitation.invitation_id) == attrs.evolve(
        invitation, accepted_at=at, accepted_by=joiner
    )
    assert directory.members_of(org_id)[-1] == MemberRecord(
        membership=invitation.membership_for(joiner), joined_at=at
    )
    assert version_of(directory, org_id) == 2

    # at most once: not again, not by another account, whatever version it reads
    assert accept(directory, invitation, joiner, now=at) is False
    assert accept(directory, invitation, new_id("user"), now=at) is False
    assert directory.get_invitation(invitation.invitation_id).accepted_by == joiner
    assert version_of(directory, org_id) == 2
    assert len(directory.members_of(org_id)) == 2


@pytest.mark.spec("RBAC-6")
def test_accept_invitation_on_a_stale_version_writes_nothing(directory: Any) -> None:
    owner, organization = register(directory)
    org_id = organization.organization_id
    invitation = invite(directory, org_id)
    stale = version_of(directory, org_id)
    removal = attrs.evolve(owner_of(owner, organization), deleted_at=NOW)
    assert directory.apply_memberships(
        org_id, expected_version=stale, memberships=[removal], now=NOW
    )
    joiner = new_id("user")
    assert not directory.accept_invitation(
        invitation.invitation_id,
        expected_version=stale,
        membership=invitation.membership_for(joiner),
        now=NOW,
    )
    assert directory.get_invitation(invitation.invitation_id) == invitation
    assert directory.memberships_of(joiner) == []
    assert version_of(directory, org_id) == stale + 1


@pytest.mark.spec("RBAC-6")
def test_an_invitation_expires_at_exactly_expires_at(directory: Any) -> None:
    _, organization = register(directory)
    ends = NOW + WEEK
    expired = invite(directory, organization.organization_id, expires_at=ends)
    assert expired.state(ends) is InvitationState.EXPIRED
    assert accept(directory, expired, new_id("user"), now=ends) is False
    assert accept(directory, expired, new_id("user"), now=ends + TICK) is False
    assert directory.close_invitation(expired.invitation_id, declined=True, now=ends) is False
    assert directory.get_invitation(expired.invitation_id) == expired

    last_moment = invite(directory, organization.organization_id, expires_at=ends)
    assert accept(directory, last_moment, new_id("user"), now=ends - TICK) is True


@pytest.mark.spec("RBAC-6")
def test_closed_invitations_cannot_be_accepted(directory: Any) -> None:
    _, organization = register(directory)
    org_id = organization.organization_id
    declined = invite(directory, org_id)
    withdrawn = invite(directory, org_id)
    before = version_of(directory, org_id)
    assert directory.close_invitation(declined.invitation_id, declined=True, now=NOW) is True
    assert directory.close_invitation(withdrawn.invitation_id, declined=False, now=NOW) is True
    assert version_of(directory, org_id) == before + 2  # an invitation change, like any
    assert directory.get_invitation(declined.invitation_id) == attrs.evolve(
        declined, declined_at=NOW
    )
    assert directory.get_invitation(withdrawn.invitation_id) == attrs.evolve(
        withdrawn, withdrawn_at=NOW
    )
    for closed in (declined, withdrawn):
        assert accept(directory, closed, new_id("user")) is False
        for again in (True, False):
            assert not directory.close_invitation(closed.invitation_id, declined=again, now=NOW)
    accepted = invite(directory, org_id)
    assert accept(directory, accepted, new_id("user"))
    assert not directory.close_invitation(accepted.invitation_id, declined=False, now=NOW)
    assert not directory.close_invitation(new_id("inv"), declined=True, now=NOW)
    assert not directory.close_invitation("", declined=True, now=NOW)


def test_accept_unknown_invitation_is_false(directory: Any) -> None:
    _, organization = register(directory)
    membership = member(new_id("user"), organization.organization_id)
    for unknown in (new_id("inv"), "", "nul\x00"):
        assert not directory.accept_invitation(
            unknown, expected_version=0, membership=membership, now=NOW
        )
    assert version_of(directory, organization.organization_id) == 0


@pytest.mark.spec("RBAC-6")
def test_accept_writes_only_what_the_invitation_grants(directory: Any) -> None:
    _, organization = register(directory)
    org_id = organization.organization_id
    invitation = invite(directory, org_id, role=Role.VIEWER)
    joiner = new_id("user")
    granted = invitation.membership_for(joiner)
    for bad in (
        attrs.evolve(granted, role=Role.ADMIN),
        attrs.evolve(granted, permissions=frozenset({Permission.INVOICE_VIEW})),
        attrs.evolve(granted, organization_id=new_id("org")),
        attrs.evolve(granted, deleted_at=NOW),
    ):
        with pytest.raises(ValueError, match="invitation"):
            directory.accept_invitation(
                invitation.invitation_id,
                expected_version=version_of(directory, org_id),
                membership=bad,
                now=NOW,
            )
    assert directory.get_invitation(invitation.invitation_id) == invitation
    assert directory.memberships_of(joiner) == []
    assert accept(directory, invitation, joiner)


@pytest.mark.spec("RBAC-6")
def test_accept_replaces_a_removed_membership_never_a_live_one(directory: Any) -> None:
    _, organization = register(directory)
    org_id = organization.organization_id
    user = new_id("user")
    live = member(user, org_id)
    directory.apply_memberships(
        org_id, expected_version=version_of(directory, org_id), memberships=[live], now=NOW
    )
    invitation = invite(directory, org_id, role=Role.ADMIN)
    assert accept(directory, invitation, user) is False
    assert directory.get_invitation(invitation.invitation_id) == invitation
    assert directory.memberships_of(user) == [live]

    removed = attrs.evolve(live, deleted_at=NOW)
    directory.apply_memberships(
        org_id, expected_version=version_of(directory, org_id), memberships=[removed], now=NOW
    )
    rejoin = NOW + WEEK - timedelta(hours=1)
    assert accept(directory, invitation, user, now=rejoin) is True
    assert directory.memberships_of(user) == [invitation.membership_for(user)]
    assert directory.members_of(org_id)[-1].joined_at == rejoin


def test_a_deleted_organization_takes_no_one(directory: Any) -> None:
    _, organization = register(directory)
    org_id = organization.organization_id
    invitation = invite(directory, org_id)
    directory.update_organization(
        org_id, expected_version=version_of(directory, org_id), deleted_at=NOW
    )
    assert accept(directory, invitation, new_id("user")) is False
    assert directory.get_invitation(invitation.invitation_id) == invitation


@pytest.mark.spec("ACC-7")
def test_delete_invitations_to_an_address_in_every_state(directory: Any) -> None:
    _, first = register(directory)
    _, second = register(directory)
    email = new_email()
    open_one = invite(directory, first.organization_id, email=email)
    accepted = invite(directory, second.organization_id, email=email)
    assert accept(directory, accepted, new_id("user"))
    declined = invite(directory, second.organization_id, email=email)
    assert directory.close_invitation(declined.invitation_id, declined=True, now=NOW)
    expired = invite(directory, first.organization_id, email=email, expires_at=NOW)
    other = invite(directory, first.organization_id, email=email.upper())
    versions = {
        o: version_of(directory, o) for o in (first.organization_id, second.organization_id)
    }

    assert directory.delete_invitations(email=email) == 4
    for gone in (open_one, accepted, declined, expired):
        assert directory.get_invitation(gone.invitation_id) is None
    assert directory.invitations(email=email) == []
    assert directory.get_invitation(other.invitation_id) == other
    for org_id, before in versions.items():
        assert version_of(directory, org_id) == before + 1
    assert directory.delete_invitations(email=email) == 0
    assert directory.delete_invitations(email="") == 0
    assert directory.delete_invitations(email="nul\x00") == 0


# --- GDPR ------------------------------------------------------------------------------------


@pytest.mark.spec("ACC-7")
def test_forget_user_leaves_nothing_that_names_them(directory: Any) -> None:
    user, own_org = register(directory, google_subject=new_id("google"), name="Forget Me")
    bystander, other_org = register(directory)
    _, third_org = register(directory)
    assert user.email is not None

    # a member of another organization, through an invitation they accepted
    accepted = invite(directory, other_org.organization_id, email=user.email)
    assert accept(directory, accepted, user.user_id)
    # an open invitation to their current address
    addressed = invite(directory, third_org.organization_id, email=user.email)
    # an invitation they made (it stays, without their id)
    made = invite(directory, own_org.organization_id, invited_by=user.user_id)
    # an invitation of the bystander's, untouched
    unrelated = invite(directory, other_org.organization_id, invited_by=bystander.user_id)
    versions = {
        o.organization_id: version_of(directory, o.organization_id)
        for o in (own_org, other_org, third_org)
    }

    # user row 1, memberships 2, invitations deleted 2, invited_by cleared 1
    assert directory.forget_user(user.user_id) == 6

    text = stored_text(directory)
    assert not [t for t in text if user.user_id in t]
    assert not [t for t in text if user.email in t]
    assert not [t for t in text if user.google_subject in t]
    assert directory.get_user(user.user_id) is None
    assert directory.find_user(email=user.email) is None
    assert directory.memberships_of(user.user_id) == []
    assert directory.get_invitation(accepted.invitation_id) is None
    assert directory.get_invitation(addressed.invitation_id) is None
    assert directory.get_invitation(made.invitation_id) == attrs.evolve(made, invited_by=None)
    assert directory.get_invitation(unrelated.invitation_id) == unrelated
    assert directory.get_user(bystander.user_id) == bystander
    assert [r.membership.user_id for r in directory.members_of(other_org.organization_id)] == [
        bystander.user_id
    ]
    # every organization whose records changed moved on: decisions read before do not apply
    for org_id, before in versions.items():
        assert version_of(directory, org_id) == before + 1
    assert directory.forget_user(user.user_id) == 0
    assert directory.forget_user(new_id("user")) == 0
    assert directory.forget_user("") == 0


@pytest.mark.spec("ACC-7")
def test_forget_user_after_deletion_and_purge_organizations(directory: Any) -> None:
    user, organization = register(directory)
    org_id = organization.organization_id
    _, kept = register(directory)
    leftover = invite(directory, org_id)
    # deletion (ACC-4): anonymised, membership removed; the purge comes later
    directory.update_user(user.user_id, expected={}, changes={"email": None, "deleted_at": NOW})
    removal = attrs.evolve(owner_of(user, organization), deleted_at=NOW)
    assert directory.apply_memberships(
        org_id, expected_version=version_of(directory, org_id), memberships=[removal], now=NOW
    )
    stale = version_of(directory, org_id)
    assert directory.forget_user(user.user_id) == 2
    assert not directory.apply_memberships(
        org_id, expected_version=stale, memberships=[removal], now=NOW
    )
    assert not [t for t in stored_text(directory) if user.user_id in t]

    purged = directory.purge_organizations()
    assert org_id in purged
    assert kept.organization_id not in purged
    assert purged == sorted(purged)
    assert directory.get_organization(org_id) is None
    assert directory.get_invitation(leftover.invitation_id) is None
    assert directory.get_organization(kept.organization_id) == kept
    assert org_id not in directory.purge_organizations()


# --- SQL specifics ---------------------------------------------------------------------------


def test_sql_users_table_holds_every_user_field() -> None:
    stored = {c.name for c in sql_stores.users.columns if c.computed is None}
    assert stored == {a.name for a in attrs.fields(UserAccount)}
    assert stored - {"user_id", "created_at"} == USER_FIELDS


def test_sql_refuses_text_it_cannot_hold(sql_engine: Any) -> None:
    store = SqlDirectoryStore(sql_engine)
    user, _ = register(store)
    for changes in ({"name": "x" * 256}, {"email": "a\x00@example.com"}, {"name": "\ud800"}):
        with pytest.raises(ValueError, match="at most"):
            store.update_user(user.user_id, expected={}, changes=changes)
    assert store.get_user(user.user_id) == user
    # an expected value no column can hold matches nothing
    assert store.update_user(user.user_id, expected={"name": "x" * 256}, changes={}) is None
    assert store.update_user(user.user_id, expected={"name": "\x00"}, changes={"name": "y"}) is None
    long_name = Organization(organization_id=new_id("org"), name="n" * 256, created_at=NOW)
    other = new_user()
    with pytest.raises(ValueError, match="at most"):
        store.create_account(other, organization=long_name, owner=owner_of(other, long_name))
    assert store.get_user(other.user_id) is None


def test_sql_malformed_rows_are_corrupt_records(sql_engine: Any) -> None:
    store = SqlDirectoryStore(sql_engine)
    _, organization = register(store)
    with sql_engine.begin() as conn:
        conn.execute(
            sa.insert(sql_stores.memberships).values(
                user_id=new_id("user"),
                organization_id=organization.organization_id,
                role="emperor",
                permissions=None,
                is_default=False,
                joined_at=NOW,
            )
        )
    with pytest.raises(CorruptRecordError):
        store.members_of(organization.organization_id)


# --- arguments refused, accounts without an address ------------------------------------------


def test_an_organization_is_renamed_with_text_only(directory: Any) -> None:
    _, organization = register(directory)
    org_id = organization.organization_id
    version = version_of(directory, org_id)
    with pytest.raises(TypeError, match="name"):
        directory.update_organization(org_id, expected_version=version, name=5)
    assert version_of(directory, org_id) == version  # nothing written


@pytest.mark.parametrize("name", ["x" * 256, "Acme\x00"])
def test_an_organization_name_no_column_holds_is_refused(sql_engine: Any, name: str) -> None:
    store = SqlDirectoryStore(sql_engine)
    _, organization = register(store)
    org_id = organization.organization_id
    version = version_of(store, org_id)
    with pytest.raises(ValueError, match="name must be at most 255 characters"):
        store.update_organization(org_id, expected_version=version, name=name)
    assert store.get_organization(org_id) == organization


def test_an_invitation_is_closed_declined_or_not(directory: Any) -> None:
    _, organization = register(directory)
    invitation = invite(directory, organization.organization_id)
    with pytest.raises(TypeError, match="declined must be a bool"):
        directory.close_invitation(invitation.invitation_id, declined="yes", now=NOW)
    assert directory.get_invitation(invitation.invitation_id) == invitation


def test_accounts_linked_to_google_only(directory: Any) -> None:
    subject = f"google-{secrets.token_hex(6)}"
    user, _ = register(directory, email=None, google_subject=subject)
    with pytest.raises(AccountExistsError) as caught:
        register(directory, email=None, google_subject=subject)
    assert caught.value.reason == "google_taken"
    bare, _ = register(directory, email=None)  # neither an address nor a subject: no clash
    assert directory.get_user(bare.user_id) == bare
    changed = directory.update_user(
        user.user_id, expected={}, changes={"google_subject": None, "deleted_at": NOW}
    )
    assert changed is not None
    other, _ = register(directory, email=None, google_subject=subject)  # free again
    assert directory.get_user(other.user_id) == other


def test_a_purge_keeps_the_invitations_of_organizations_it_keeps(directory: Any) -> None:
    _, organization = register(directory)
    invitation = invite(directory, organization.organization_id)
    assert organization.organization_id not in directory.purge_organizations()
    assert directory.get_invitation(invitation.invitation_id) == invitation


def test_the_memory_directory_counts_what_it_holds() -> None:
    store = MemoryDirectoryStore()
    assert repr(store) == "MemoryDirectoryStore(0 users, 0 organizations)"
    register(store)
    assert repr(store) == "MemoryDirectoryStore(1 users, 1 organizations)"


# --- what changes between a store's statements -----------------------------------------------
#
# A listener on the engine makes another connection's write at the exact point between two
# statements of the store's transaction: the interleavings the store's re-checks are for.


@contextlib.contextmanager
def before_statement(
    engine: sa.Engine, matches: Callable[[str, Any], bool], write: Callable[[sa.Connection], Any]
) -> Iterator[list[str]]:
    """Run ``write`` in a transaction of another connection (committed) just before the first
    statement of ``engine`` that ``matches(sql, parameters)``; yield the statements it ran
    before."""
    other = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    fired: list[str] = []

    def listener(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if not fired and matches(statement, parameters):
            fired.append(statement)
            with other.begin() as other_conn:
                write(other_conn)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield fired
    finally:
        event.remove(engine, "before_cursor_execute", listener)
        other.dispose()


def _lock_of(organization_id: str) -> Callable[[str, Any], bool]:
    return lambda sql, params: "FOR UPDATE" in sql and organization_id in repr(params)


def _empty_organization(store: SqlDirectoryStore) -> str:
    """An organization whose only member (its Owner) was deleted and forgotten."""
    user, organization = register(store)
    org_id = organization.organization_id
    store.update_user(user.user_id, expected={}, changes={"email": None, "deleted_at": NOW})
    removal = attrs.evolve(owner_of(user, organization), deleted_at=NOW)
    assert store.apply_memberships(
        org_id, expected_version=version_of(store, org_id), memberships=[removal], now=NOW
    )
    store.forget_user(user.user_id)
    return org_id


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])  # SQLite: one writer at a time
def test_an_organization_deleted_while_a_purge_runs_is_passed_over(
    backend: str, sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    store = SqlDirectoryStore(engine)
    org_id = _empty_organization(store)
    table = sql_stores.organizations
    delete = sa.delete(table).where(table.c.organization_id == org_id)
    with before_statement(engine, _lock_of(org_id), lambda conn: conn.execute(delete)) as fired:
        purged = store.purge_organizations()
    assert fired
    assert org_id not in purged
    assert store.get_organization(org_id) is None


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_an_organization_joined_while_a_purge_runs_is_kept(
    backend: str, sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    store = SqlDirectoryStore(engine)
    org_id = _empty_organization(store)
    newcomer = new_id("user")
    join = sa.insert(sql_stores.memberships).values(
        user_id=newcomer, organization_id=org_id, role="viewer", is_default=False, joined_at=NOW
    )
    with before_statement(engine, _lock_of(org_id), lambda conn: conn.execute(join)) as fired:
        purged = store.purge_organizations()
    assert fired
    assert org_id not in purged
    assert store.get_organization(org_id) is not None
    assert store.purge_organizations().count(org_id) == 0


def test_an_address_freed_after_a_refused_update_is_still_named(sql_engine: Any) -> None:
    """The update is refused by the unique address; before the store reads who holds it, the
    holder moves to another address: the refusal still names the address."""
    store = SqlDirectoryStore(sql_engine)
    holder, _ = register(store)
    other, _ = register(store)
    table = sql_stores.users
    move = sa.update(table).where(table.c.user_id == holder.user_id).values(email=new_email())

    def who_holds(sql: str, params: Any) -> bool:
        return "live_google_subject" in sql and sql.lstrip().upper().startswith("SELECT")

    with (
        before_statement(sql_engine, who_holds, lambda conn: conn.execute(move)) as fired,
        pytest.raises(AccountExistsError) as caught,
    ):
        store.update_user(other.user_id, expected={}, changes={"email": holder.email})
    assert fired
    assert caught.value.reason == "email_taken"
    assert store.get_user(other.user_id) == other
    moved = store.get_user(holder.user_id)
    assert moved is not None
    assert moved.email != holder.email  # no one held the address when the refusal was named
