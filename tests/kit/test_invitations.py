"""RBAC-6 and ACC-5: invitations name an address; only its confirmed holder accepts, once,
and only while the inviter can still grant it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from storno_security.errors import (
    ConcurrentChangeError,
    DuplicateMembershipError,
    InvitationNotFoundError,
    InvitationVoidError,
    PermissionDeniedError,
)
from storno_security.kit import Session
from tests.kit.conftest import PASSWORD, RacedWorld, World, WorldMaker


def _owner(world: World) -> tuple[Session, str]:
    session = world.register()
    organization_id = world.kit.default_organization_id(session.user.user_id)
    assert organization_id is not None
    return session, organization_id


@pytest.mark.spec("RBAC-6")
@pytest.mark.spec("ACC-5")
def test_a_squatter_cannot_see_or_accept_until_the_address_is_confirmed(world: World) -> None:
    owner, organization_id = _owner(world)
    address = world.email()
    # the attacker registers the new hire's address first, and cannot confirm it
    squatter = world.register(address, confirm=False)
    invitation = world.kit.invite(world.caller(owner), address, role="admin")
    caller = world.caller(squatter)
    assert world.kit.my_invitations(caller) == []
    with pytest.raises(InvitationNotFoundError):
        world.kit.accept_invitation(caller, invitation.invitation_id)
    with pytest.raises(InvitationNotFoundError):
        world.kit.decline_invitation(caller, invitation.invitation_id)
    memberships = world.kit.directory.memberships_of(squatter.user.user_id)
    assert organization_id not in {m.organization_id for m in memberships}
    # once the mailbox is proven (here: by its real holder), the invitation can be accepted
    world.kit.confirm_email(world.mail.last("email_confirmation", address).token or "")
    assert [i.invitation_id for i in world.kit.my_invitations(caller)] == [invitation.invitation_id]
    membership = world.kit.accept_invitation(caller, invitation.invitation_id)
    assert (membership.organization_id, membership.role.value) == (organization_id, "admin")


@pytest.mark.spec("RBAC-6")
def test_an_invitation_is_accepted_at_most_once(world: World) -> None:
    owner, _ = _owner(world)
    address = world.email()
    invitation = world.kit.invite(world.caller(owner), address, role="viewer")
    member = world.register(address)
    caller = world.caller(member)
    world.kit.accept_invitation(caller, invitation.invitation_id)
    with pytest.raises(InvitationNotFoundError):
        world.kit.accept_invitation(caller, invitation.invitation_id)
    second = world.kit.invite(world.caller(owner), address, role="viewer")
    with pytest.raises(DuplicateMembershipError):
        world.kit.accept_invitation(caller, second.invitation_id)


@pytest.mark.spec("RBAC-6")
def test_acceptance_is_rechecked_against_the_inviter_now(world: World) -> None:
    owner, organization_id = _owner(world)
    admin_address = world.email()
    first = world.kit.invite(world.caller(owner), admin_address, role="admin")
    admin = world.register(admin_address)
    world.kit.accept_invitation(world.caller(admin), first.invitation_id)
    address = world.email()
    offered = world.kit.invite(
        world.caller(admin), address, role="accountant", organization=organization_id
    )
    # the inviter is demoted to viewer before the invitation is answered
    world.kit.update_member(world.caller(owner), admin.user.user_id, role="viewer")
    invitee = world.register(address)
    with pytest.raises(InvitationVoidError):
        world.kit.accept_invitation(world.caller(invitee), offered.invitation_id)
    memberships = world.kit.directory.memberships_of(invitee.user.user_id)
    assert organization_id not in {m.organization_id for m in memberships}


@pytest.mark.spec("RBAC-6")
def test_withdrawn_declined_and_expired_invitations_cannot_be_accepted(world: World) -> None:
    owner, _ = _owner(world)
    owner_caller = world.caller(owner)
    address = world.email()
    invitee = world.caller(world.register(address))
    withdrawn = world.kit.invite(owner_caller, address, role="viewer")
    world.kit.withdraw_invitation(owner_caller, withdrawn.invitation_id)
    declined = world.kit.invite(owner_caller, address, role="viewer")
    world.kit.decline_invitation(invitee, declined.invitation_id)
    expired = world.kit.invite(owner_caller, address, role="viewer")
    world.clock.advance(world.kit.policy.invitation_lifetime + timedelta(seconds=1))
    for invitation in (withdrawn, declined, expired):
        with pytest.raises(InvitationNotFoundError):
            world.kit.accept_invitation(invitee, invitation.invitation_id)


@pytest.mark.spec("RBAC-6")
def test_inviting_answers_the_same_for_every_address_and_mails_once_a_week(
    world: World,
) -> None:
    owner, _ = _owner(world)
    caller = world.caller(owner)
    known = world.register().user.email or ""
    for address in (known, "unregistered@example.eu"):
        before = len(world.mail.sent)
        world.kit.invite(caller, address, role="viewer")
        world.kit.invite(caller, address, role="viewer")
        assert len(world.mail.sent) == before + 1


@pytest.mark.spec("RBAC-5")
def test_nobody_invites_beyond_their_rights_or_as_an_owner(world: World) -> None:
    owner, _ = _owner(world)
    with pytest.raises(PermissionDeniedError):
        world.kit.invite(world.caller(owner), world.email(), role="owner")
    viewer_address = world.email()
    invitation = world.kit.invite(world.caller(owner), viewer_address, role="viewer")
    viewer = world.register(viewer_address)
    world.kit.accept_invitation(world.caller(viewer), invitation.invitation_id)
    with pytest.raises(PermissionDeniedError):
        world.kit.invite(
            world.caller(viewer),
            world.email(),
            role="viewer",
            organization=invitation.organization_id,
        )
    created = world.kit.create_api_key(
        world.caller(owner), name="k", scope="admin", current_password=PASSWORD
    )
    key = world.kit.authenticate(created.key)
    assert key is not None
    with pytest.raises(PermissionDeniedError):
        world.kit.invite(key, world.email(), role="viewer")


@pytest.mark.spec("RBAC-6")
def test_an_invitation_decided_on_an_older_organization_is_not_stored(
    raced: RacedWorld,
) -> None:
    owner, organization_id = _owner(raced)
    admin = raced.register()
    raced.join(owner, admin, role="admin")
    address = raced.email()
    # the inviting Admin is removed between the decision to invite and its write
    with _member_removed_before(raced, "add_invitation", owner, admin):
        raced.kit.invite(raced.caller(admin), address, role="viewer", organization=organization_id)
    assert raced.kit.directory.invitations(email=address) == []
    assert [m for m in raced.mail.sent if m.to == address] == []


@pytest.mark.spec("RBAC-6")
def test_an_invitation_answered_while_it_is_withdrawn_is_not_withdrawn_again(
    raced: RacedWorld,
) -> None:
    owner, _ = _owner(raced)
    address = raced.email()
    invitee = raced.caller(raced.register(address))
    invitation = raced.kit.invite(raced.caller(owner), address, role="viewer")
    raced.meanwhile.before(
        "close_invitation",
        lambda: raced.kit.decline_invitation(invitee, invitation.invitation_id),
    )
    with pytest.raises(InvitationNotFoundError) as info:
        raced.kit.withdraw_invitation(raced.caller(owner), invitation.invitation_id)
    assert info.value.reason == "not_open"
    stored = raced.kit.directory.get_invitation(invitation.invitation_id)
    assert stored is not None
    assert (stored.declined_at is not None, stored.withdrawn_at) == (True, None)
    assert raced.events.of("member.invitation_withdrawn") == []


@contextlib.contextmanager
def _member_removed_before(
    raced: RacedWorld, step: str, owner: Session, member: Session
) -> Iterator[None]:
    """The block's write ``step`` finds ``member`` removed after its decision: it must refuse
    with ``changed_meanwhile``, and the removal must have run."""
    raced.meanwhile.before(
        step, lambda: raced.kit.remove_member(raced.caller(owner), member.user.user_id)
    )
    with pytest.raises(ConcurrentChangeError) as info:
        yield
    assert info.value.reason == "changed_meanwhile"
    assert raced.meanwhile.pending == []


def _deferring(make_world: WorldMaker) -> tuple[World, list[Callable[[], None]]]:
    """A world whose kit defers its mail to a queue the test runs."""
    queue: list[Callable[[], None]] = []
    return make_world(defer=queue.append), queue


def _run(queue: list[Callable[[], None]]) -> None:
    while queue:
        queue.pop(0)()


@pytest.mark.spec("RBAC-6")
def test_no_invitation_mail_once_its_organization_is_gone(make_world: WorldMaker) -> None:
    world, queue = _deferring(make_world)
    owner = world.kit.register(world.email(), PASSWORD).session
    assert owner is not None
    _run(queue)
    invitation = world.kit.invite(world.caller(owner), world.email(), role="viewer")
    # the inviter deletes their account, and with it the organization, before the mail goes
    world.kit.delete_account(world.caller(owner), current_password=PASSWORD)
    organization = world.kit.directory.get_organization(invitation.organization_id)
    assert organization is not None
    assert organization.deleted_at is not None
    _run(queue)
    assert [m for m in world.mail.sent if m.kind == "invitation"] == []


@pytest.mark.spec("RBAC-6")
def test_no_invitation_mail_to_who_joined_before_it_went(make_world: WorldMaker) -> None:
    world, queue = _deferring(make_world)
    owner = world.kit.register(world.email(), PASSWORD).session
    address = world.email()
    world.kit.register(address, PASSWORD)
    _run(queue)
    assert owner is not None
    member = world.login(address)
    world.kit.confirm_email(world.mail.last("email_confirmation", address).token or "")
    invitation = world.kit.invite(world.caller(owner), address, role="viewer")
    world.kit.accept_invitation(world.caller(member), invitation.invitation_id)
    _run(queue)
    assert [m for m in world.mail.sent if m.kind == "invitation"] == []
    # an address that has not joined gets its mail
    other = world.email()
    world.kit.invite(world.caller(owner), other, role="viewer")
    _run(queue)
    assert world.mail.last("invitation", other).invitation_id is not None


@pytest.mark.spec("RBAC-6")
def test_an_acceptance_decided_on_an_older_organization_is_refused_and_can_be_retried(
    raced: RacedWorld,
) -> None:
    owner, organization_id = _owner(raced)
    viewer = raced.register()
    raced.join(owner, viewer)
    address = raced.email()
    invitation = raced.kit.invite(
        raced.caller(owner), address, role="viewer", organization=organization_id
    )
    invitee = raced.register(address)
    # a member is removed between the acceptance's decision and its write: the organization's
    # version moved, the invitation is still open
    with _member_removed_before(raced, "accept_invitation", owner, viewer):
        raced.kit.accept_invitation(raced.caller(invitee), invitation.invitation_id)
    joined = raced.kit.directory.memberships_of(invitee.user.user_id)
    assert all(m.organization_id != organization_id for m in joined)  # nothing was written
    membership = raced.kit.accept_invitation(raced.caller(invitee), invitation.invitation_id)
    assert membership.organization_id == organization_id
