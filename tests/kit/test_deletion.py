"""ACC-4 and ACC-7: deletion anonymises at once and kills every credential; the purge leaves
no record that names the user, proven by scanning every store."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from storno_security.accounts import UserAccount
from storno_security.audit.storage import MAX_QUERY_LIMIT
from storno_security.clock import FrozenClock
from storno_security.errors import (
    ConcurrentChangeError,
    InvalidAccessTokenError,
    InvalidApiKeyError,
    InvalidPasswordError,
    InvalidRefreshTokenError,
    OwnershipTransferRequiredError,
    ReauthenticationRequiredError,
)
from storno_security.events import SecurityEventType
from storno_security.kit import Kit
from storno_security.kit.deletion import DELETED_ORGANIZATION_NAME
from storno_security.rbac import Membership, Organization, Role
from storno_security.stores.memory import MemoryDirectoryStore, memory_bundle
from tests.contract._scan import stored_text
from tests.kit.conftest import PASSWORD, RacedWorld, World, kit_keys, kit_policy

_STORES = (
    "directory",
    "refresh_families",
    "session_state",
    "totp_replay",
    "backup_codes",
    "mfa_challenges",
    "step_up",
    "mfa_failures",
    "api_keys",
    "passkey_challenges",
    "passkey_credentials",
    "reset_tokens",
    "email_confirmations",
    "license_last_seen",
)


def scan_for(kit: Kit, needle: str) -> list[str]:
    """The stores whose backend still holds ``needle``: a scan of everything each wrote (every
    row of every table, every key and value under the prefix, every reachable value), not a
    list of names. On SQL and Redis a store's scan covers its whole backend."""
    return [name for name in _STORES if needle in stored_text(getattr(kit.stores, name))]


def audit_names(kit: Kit, user_id: str) -> bool:
    events = kit.stores.audit.query(organization_id=None, limit=10_000)
    return any(user_id in (e.actor_id, e.subject_id) for e in events)


@pytest.mark.spec("ACC-4")
@pytest.mark.spec("ACC-7")
def test_deletion_and_purge_leave_nothing_that_names_the_user(world: World) -> None:
    session = world.register()
    user_id = session.user.user_id
    email = session.user.email or ""
    caller = world.caller(session)
    secret = world.enable_mfa(session)
    world.kit.step_up(caller, "apikey.create", method="totp", code=world.totp(secret))
    world.clock.advance(timedelta(seconds=30))
    grant = world.kit.step_up(caller, "apikey.create", method="totp", code=world.totp(secret))
    created = world.kit.create_api_key(caller, name="k", scope="read", step_up_token=grant.token)
    world.kit.request_password_reset(email)
    world.kit.login(email, PASSWORD)  # a pending MFA challenge
    world.kit.passkey_login_options(email)
    world.clock.advance(timedelta(seconds=30))
    grant = world.kit.step_up(caller, "account.delete", method="totp", code=world.totp(secret))
    deletion = world.kit.delete_account(caller, step_up_token=grant.token)
    assert deletion.organization_ids  # the user was its organization's only member
    for attempt in (
        lambda: world.kit.authenticate(f"Bearer {session.tokens.access_token}"),
        lambda: world.kit.authenticate(created.key),
        lambda: world.kit.refresh(session.tokens.refresh_token),
        lambda: world.kit.login(email, PASSWORD),
    ):
        with pytest.raises(
            (
                InvalidAccessTokenError,
                InvalidApiKeyError,
                InvalidRefreshTokenError,
                InvalidPasswordError,
            )
        ):
            attempt()
    # at once: the address is nowhere, the audit trail is pseudonymised, and (where each store
    # can be scanned alone) only the tombstone and the session epoch name the user
    assert scan_for(world.kit, email) == []
    assert not audit_names(world.kit, user_id)
    if isinstance(world.kit.directory, MemoryDirectoryStore):
        assert set(scan_for(world.kit, user_id)) <= {"directory", "session_state"}
    world.clock.advance(world.kit.policy.deletion_grace + timedelta(seconds=1))
    purge = world.kit.purge_deleted_accounts()
    assert user_id in purge.user_ids
    assert scan_for(world.kit, user_id) == []
    assert not audit_names(world.kit, user_id)


@pytest.mark.spec("ACC-4")
def test_deletion_is_reauthenticated(world: World) -> None:
    session = world.register()
    with pytest.raises(ReauthenticationRequiredError):
        world.kit.delete_account(world.caller(session))
    with pytest.raises(InvalidPasswordError):
        world.kit.delete_account(world.caller(session), current_password="not it at all")


@pytest.mark.spec("RBAC-6")
def test_an_owner_with_members_hands_over_first(world: World) -> None:
    owner = world.register()
    address = world.email()
    invitation = world.kit.invite(world.caller(owner), address, role="admin")
    admin = world.register(address)
    world.kit.accept_invitation(world.caller(admin), invitation.invitation_id)
    with pytest.raises(OwnershipTransferRequiredError) as info:
        world.kit.delete_account(world.caller(owner), current_password=PASSWORD)
    assert info.value.organization_ids == (invitation.organization_id,)
    world.kit.transfer_ownership(world.caller(owner), admin.user.user_id)
    deletion = world.kit.delete_account(world.caller(owner), current_password=PASSWORD)
    assert invitation.organization_id not in deletion.organization_ids
    members = world.kit.directory.members_of(invitation.organization_id)
    live = [r.membership for r in members if r.membership.deleted_at is None]
    assert [(m.user_id, m.role.value) for m in live] == [(admin.user.user_id, "owner")]


@pytest.mark.spec("ACC-4")
def test_an_organization_left_empty_loses_the_name_registration_gave_it(world: World) -> None:
    """Registration names the organization after the person (here their address): personal
    data, cleared at the deletion, not at the purge."""
    session = world.register()
    address = session.user.email or ""
    deletion = world.kit.delete_account(world.caller(session), current_password=PASSWORD)
    (organization_id,) = deletion.organization_ids
    organization = world.kit.directory.get_organization(organization_id)
    assert organization is not None
    assert organization.deleted_at is not None
    assert organization.name == DELETED_ORGANIZATION_NAME
    assert address.split("@")[0] not in organization.name


# --- what changes while the account is being deleted -----------------------------------------


@pytest.mark.spec("ACC-4")
@pytest.mark.spec("RBAC-6")
def test_a_member_who_joins_during_the_deletion_must_be_handed_over_to(raced: RacedWorld) -> None:
    owner = raced.register()
    address = raced.email()
    invitation = raced.kit.invite(raced.caller(owner), address, role="admin")
    joiner = raced.register(address)
    # the invitee accepts between the deletion's read of the organization and its write
    raced.meanwhile.before(
        "apply_memberships",
        lambda: raced.kit.accept_invitation(raced.caller(joiner), invitation.invitation_id),
    )
    with pytest.raises(OwnershipTransferRequiredError) as info:
        raced.kit.delete_account(raced.caller(owner), current_password=PASSWORD)
    assert info.value.organization_ids == (invitation.organization_id,)
    assert raced.meanwhile.pending == []
    assert raced.kit.get_user(owner.user.user_id).is_live
    live = [
        (r.membership.user_id, r.membership.role.value)
        for r in raced.kit.directory.members_of(invitation.organization_id)
        if r.membership.deleted_at is None
    ]
    assert sorted(live) == sorted([(owner.user.user_id, "owner"), (joiner.user.user_id, "admin")])


@pytest.mark.spec("ACC-4")
def test_a_deletion_stops_while_an_organization_keeps_changing_and_resumes_later(
    raced: RacedWorld,
) -> None:
    other = raced.register()
    member = raced.register()
    raced.clock.advance(timedelta(minutes=1))  # joined after their own organization
    busy = raced.join(other, member)
    changing = [True]

    def keep_changing() -> None:
        # another member of the organization invites someone before every write
        if changing[0]:
            raced.kit.invite(raced.caller(other), raced.email(), role="viewer")
            raced.meanwhile.before("apply_memberships", keep_changing)

    raced.meanwhile.before("apply_memberships", keep_changing)
    caller = raced.caller(member)
    with pytest.raises(ConcurrentChangeError) as info:
        raced.kit.delete_account(caller, current_password=PASSWORD)
    assert info.value.reason == "changed_meanwhile"
    assert raced.kit.get_user(member.user.user_id).is_live
    live = [
        m for m in raced.kit.directory.memberships_of(member.user.user_id) if m.deleted_at is None
    ]
    assert [m.organization_id for m in live] == [busy]  # the own organization was left already
    changing[0] = False
    deletion = raced.kit.delete_account(caller, current_password=PASSWORD)
    assert busy not in deletion.organization_ids
    assert not raced.kit.directory.get_user(member.user.user_id).is_live  # type: ignore[union-attr]


@pytest.mark.spec("ACC-7")
def test_an_account_forgotten_during_its_own_deletion_is_gone(raced: RacedWorld) -> None:
    session = raced.register()
    user_id = session.user.user_id
    own = raced.kit.default_organization_id(user_id)
    assert own is not None

    def forget() -> None:  # an operator forgets the account, and purges what it leaves
        raced.kit.forget_user(user_id)
        raced.kit.directory.purge_organizations()

    raced.meanwhile.before("get_organization", forget)
    deletion = raced.kit.delete_account(raced.caller(session), current_password=PASSWORD)
    assert raced.meanwhile.pending == []
    assert deletion.organization_ids == ()
    assert raced.kit.directory.get_user(user_id) is None
    assert raced.kit.directory.get_organization(own) is None


@pytest.mark.spec("ACC-4")
def test_an_account_without_an_address_is_deleted_too(world: World) -> None:
    """An account the application stored without an address (a Google subject only)."""
    user = UserAccount(
        user_id=str(uuid.uuid4()),
        email=None,
        google_subject=f"sub-{uuid.uuid4().hex}",
        created_at=world.clock.now(),
    )
    organization = Organization(
        organization_id=str(uuid.uuid4()), name="Imported", created_at=world.clock.now()
    )
    owner = Membership(
        user_id=user.user_id,
        organization_id=organization.organization_id,
        role=Role.OWNER,
        is_default=True,
    )
    world.kit.directory.create_account(user, organization=organization, owner=owner)
    session = world.kit.start_session(user, method="google")
    deletion = world.kit.delete_account(world.caller(session))  # a fresh login stands for it
    assert deletion.organization_ids == (organization.organization_id,)
    gone = world.kit.directory.get_user(user.user_id)
    assert gone is not None
    assert (gone.is_live, gone.google_subject) == (False, None)


@pytest.mark.spec("ACC-4")
def test_the_export_holds_every_event_the_user_acted_in(clock: FrozenClock) -> None:
    kit = Kit(memory_bundle(), policy=kit_policy(), keys=kit_keys(), clock=clock)
    user_id = kit.register("fay@example.eu", PASSWORD).user.user_id
    already = len(kit.export_user_data(user_id)["audit_events"])
    for _ in range(MAX_QUERY_LIMIT):  # a full page more, so that the export turns one
        kit.audit.record(SecurityEventType.LOGIN_FAILED, actor_id=user_id)
    events = kit.export_user_data(user_id)["audit_events"]
    assert len(events) == already + MAX_QUERY_LIMIT
    assert len({e["event_id"] for e in events}) == len(events)
