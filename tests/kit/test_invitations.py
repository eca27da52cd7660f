"""RBAC-6 and ACC-5: invitations name an address; only its confirmed holder accepts, once,
and only while the inviter can still grant it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storno_security.errors import (
    DuplicateMembershipError,
    InvitationNotFoundError,
    InvitationVoidError,
    PermissionDeniedError,
)
from storno_security.kit import Session
from tests.kit.conftest import PASSWORD, World


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
