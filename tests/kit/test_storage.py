"""What the kit asks of its stores: a bundle of the right stores, and the argument checks every
directory store shares (shown here on the memory store; tests/contract runs the contract on
every backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from storno_security.accounts import UserAccount
from storno_security.kit import StoreBundle
from storno_security.rbac import Invitation, Membership, Organization, Role
from storno_security.stores.memory import MemoryDirectoryStore, memory_bundle

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _account() -> tuple[UserAccount, Organization, Membership]:
    user = UserAccount(user_id="u1", email="ana@example.eu", created_at=NOW)
    organization = Organization(organization_id="org-1", name="Acme", created_at=NOW)
    owner = Membership(user_id="u1", organization_id="org-1", role=Role.OWNER, is_default=True)
    return user, organization, owner


def test_a_new_account_is_made_of_its_three_records() -> None:
    store = MemoryDirectoryStore()
    user, organization, owner = _account()
    for wrong, message in (
        ({"organization": attrs.asdict(organization)}, "organization must be an Organization"),
        ({"owner": attrs.asdict(owner)}, "owner must be a Membership"),
    ):
        arguments: dict[str, Any] = {"organization": organization, "owner": owner, **wrong}
        with pytest.raises(TypeError, match=message):
            store.create_account(user, **arguments)
    assert store.get_user("u1") is None
    store.create_account(user, organization=organization, owner=owner)
    assert store.get_user("u1") == user


def test_an_invitation_and_its_membership_are_records() -> None:
    store = MemoryDirectoryStore()
    user, organization, owner = _account()
    store.create_account(user, organization=organization, owner=owner)
    invitation = Invitation(
        invitation_id="inv-1",
        organization_id="org-1",
        email="bo@example.eu",
        role=Role.VIEWER,
        invited_by="u1",
        created_at=NOW,
        expires_at=NOW + timedelta(days=7),
    )
    with pytest.raises(TypeError, match="invitation must be an Invitation"):
        store.add_invitation(attrs.asdict(invitation), expected_version=0)  # type: ignore[arg-type]
    assert store.add_invitation(invitation, expected_version=0)
    granted = invitation.membership_for("u2")
    with pytest.raises(TypeError, match="membership must be a Membership"):
        store.accept_invitation(
            "inv-1",
            expected_version=1,
            membership=attrs.asdict(granted),  # type: ignore[arg-type]
            now=NOW,
        )
    assert store.accept_invitation("inv-1", expected_version=1, membership=granted, now=NOW)


def test_a_bundle_refuses_a_store_that_lacks_a_verb() -> None:
    bundle = memory_bundle()

    class Partial:
        def get_user(self, user_id: str) -> None:
            return None

    with pytest.raises(TypeError, match=r"directory must implement DirectoryStore \(no "):
        attrs.evolve(bundle, directory=Partial())
    with pytest.raises(TypeError, match=r"audit must implement AuditStore"):
        StoreBundle(**{**attrs.asdict(bundle, recurse=False), "audit": object()})
