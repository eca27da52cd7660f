"""``Kit.caller_view`` (what ``GET /me`` shows) decides and answers the same whether the user's
records come from the one-statement read (``StoreBundle.account_overview``, the SQL bundle) or
from one read per store (any bundle without it): issue 18."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from storno_security.errors import (
    AccountNotFoundError,
    InvalidAccessTokenError,
    OrganizationNotFoundError,
    OrganizationRequiredError,
)
from storno_security.kit import Caller, Kit
from tests.kit.conftest import PASSWORD, World, kit_keys, kit_policy


def _both(world: World, caller: Caller, **kwargs: Any) -> Any:
    """The view through the kit under test, through one without the overview store, and, for
    a token, through a caller authenticated with ``overview=True`` (read with the session
    state where the bundle can: the SQL bundles)."""
    store_by_store = Kit(
        attrs.evolve(world.kit.stores, account_overview=None),
        policy=kit_policy(),
        keys=kit_keys(),
        clock=world.clock,
        companies=world.companies.get,
    )
    callers = [(world.kit, caller), (store_by_store, caller)]
    if caller.claims is not None:
        token = world.tokens[caller.claims.token_id]
        try:
            prefetched = world.kit.authenticate(f"Bearer {token}", overview=True)
        except InvalidAccessTokenError:  # the account is gone: its sessions ended with it
            prefetched = None
        if prefetched is not None:
            assert prefetched == caller
            sql = world.kit.stores.account_overview is not None
            exists = world.kit.directory.get_user(caller.user_id) is not None
            assert (prefetched.overview is not None) is (sql and exists)
            callers.append((world.kit, prefetched))
    outcomes = []
    for kit, who in callers:
        try:
            outcomes.append(kit.caller_view(who, **kwargs))
        except (
            AccountNotFoundError,
            OrganizationNotFoundError,
            OrganizationRequiredError,
        ) as exc:
            outcomes.append((type(exc), exc.reason))
    assert all(outcome == outcomes[0] for outcome in outcomes), outcomes
    return outcomes[0]


def test_caller_view_is_the_same_with_or_without_the_one_read(world: World) -> None:
    owner = world.register()
    owner_caller = world.caller(owner)
    own_org = world.kit.default_organization_id(owner.user.user_id)
    view = _both(world, owner_caller)
    assert view.organization.organization_id == own_org
    assert view.authorization.role.value == "owner"
    assert not view.mfa.enabled
    assert view.user.user_id == owner.user.user_id

    # a second organization, MFA on, and a passkey-free account with backup codes
    member_address = world.email()
    invitation = world.kit.invite(owner_caller, member_address, role="viewer")
    member = world.register(member_address)
    member_caller = world.caller(member)
    world.enable_mfa(member)
    world.kit.accept_invitation(member_caller, invitation.invitation_id)
    theirs = _both(world, member_caller)
    assert theirs.mfa.enabled
    assert theirs.mfa.backup_codes_left == 10
    named = _both(world, member_caller, organization=own_org)
    assert named.organization.organization_id == own_org
    assert named.authorization.role.value == "viewer"
    # unknown and malformed organizations: the same refusal both ways
    assert _both(world, member_caller, organization="0" * 36)[0] is OrganizationNotFoundError
    assert _both(world, member_caller, organization="x" * 500)[0] is OrganizationNotFoundError

    # removed from the organization: it is no longer theirs to name
    world.kit.remove_member(owner_caller, member.user.user_id)
    assert _both(world, member_caller, organization=own_org)[0] is OrganizationNotFoundError


def test_an_api_key_sees_its_organization_the_same_way(world: World) -> None:
    owner = world.register()
    caller = world.caller(owner)
    created = world.kit.create_api_key(caller, name="ci", scope="read", current_password=PASSWORD)
    key_caller = world.kit.authenticate(created.key)
    assert key_caller is not None
    assert key_caller.is_api_key
    view = _both(world, key_caller)
    assert view.organization.organization_id == created.info.organization_id


def test_several_organizations_and_no_default_must_be_named(world: World) -> None:
    member, joined = world.without_default()
    caller = world.caller(member)
    assert _both(world, caller) == (OrganizationRequiredError, "no_default")
    for organization_id in joined:
        view = _both(world, caller, organization=organization_id)
        assert view.organization.organization_id == organization_id


@pytest.mark.parametrize("how", ["deleted", "forgotten"])
def test_an_account_gone_since_its_token_was_issued_sees_nothing(world: World, how: str) -> None:
    session = world.register()
    caller = world.caller(session)
    if how == "deleted":
        world.kit.delete_account(caller, current_password=PASSWORD)
    else:
        world.kit.forget_user(session.user.user_id)
    assert _both(world, caller) == (AccountNotFoundError, "unknown_or_deleted")


def test_an_organization_deleted_under_a_live_membership_is_not_found(world: World) -> None:
    owner = world.register()
    caller = world.caller(owner)
    organization = world.kit.organization(
        world.kit.default_organization_id(owner.user.user_id) or ""
    )
    # the application deletes the organization by its own hand; the membership stays
    assert world.kit.directory.update_organization(
        organization.organization_id,
        expected_version=organization.version,
        deleted_at=world.clock.now(),
    )
    assert _both(world, caller) == (OrganizationNotFoundError, "unknown")
    with pytest.raises(OrganizationNotFoundError):
        world.kit.organization(organization.organization_id)


def test_a_view_is_decided_once_per_state_of_the_users_records(
    world: World, request: pytest.FixtureRequest
) -> None:
    # The lean SQL overview reads (SQLite, PostgreSQL) hand out one overview object while the
    # rows are unchanged: the kit decides the view once for it (issue 18). Any change is in
    # the next view.
    session = world.register()
    token = f"Bearer {session.tokens.access_token}"

    def read() -> tuple[Any, Any]:
        caller = world.kit.authenticate(token, overview=True)
        assert caller is not None
        return caller.overview, world.kit.caller_view(caller)

    reads = [read() for _ in range(4)]
    assert all(view == reads[0][1] for _, view in reads)
    (older, older_view), (newer, newer_view) = reads[-2:]
    if newer is not None and newer is older:
        assert newer_view is older_view
    if request.node.callspec.id in ("sqlite", "postgresql", "postgresql+redis"):
        assert newer is older  # kept from the overview's second read on
    if newer is None:  # no overview store: nothing to key a view by, each decided afresh
        assert len(world.kit.caller_views) == 0
    world.kit.update_profile(world.caller(session), name="Someone Else")
    assert read()[1].user.name == "Someone Else"
    world.enable_mfa(session)
    after = read()[1]
    assert after.mfa.enabled
    assert after.mfa.backup_codes_left == 10


def test_an_api_keys_view_is_never_kept(world: World) -> None:
    owner = world.register()
    created = world.kit.create_api_key(
        world.caller(owner), name="ci", scope="read", current_password=PASSWORD
    )
    for _ in range(3):
        key_caller = world.kit.authenticate(created.key)
        assert key_caller is not None
        assert world.kit.caller_view(key_caller).organization is not None
    assert len(world.kit.caller_views) == 0
