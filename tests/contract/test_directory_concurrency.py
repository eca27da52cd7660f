"""RBAC-6 and ACC-1 across processes: the directory store's conditional writes under a volley.

The harness of ``tests/_concurrency.py``: 2 spawned processes x 25 threads, each thread on a
connection of its own, lined up by a multiprocessing barrier, then every outcome is counted
(the memory store: 50 threads of this process).

* one invitation accepted by 50 calls at once, each for another account, all decided on the
  same organization version: exactly one is accepted; a second volley whose callers each read
  the version just before calling also has exactly one winner;
* "an organization never ends without an Owner": the Owner's removal (what account deletion
  applies: the Owner membership's ``deleted_at`` set, decided on version v; one caller per
  process) races 48 acceptances of 24 other invitations decided on the same v: exactly one of
  the 50 applies, so never the removal *and* a new member (three rounds);
* 50 registrations of one address at once (then of one Google subject): exactly one account
  is created, every other call raises ``AccountExistsError`` and writes nothing.
"""

from __future__ import annotations

import functools
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from storno_security.accounts.model import UserAccount
from storno_security.errors import AccountExistsError
from storno_security.rbac.invitations import Invitation, Organization
from storno_security.rbac.model import Membership
from storno_security.rbac.permissions import Role
from storno_security.stores.memory import MemoryDirectoryStore
from tests._concurrency import StoreSpec, hammer, hammer_threads, per_round, store_spec

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PROCESSES = 2
THREADS = 25
CALLERS = PROCESSES * THREADS
BACKENDS = ["memory", "sqlite", "postgresql", "mariadb"]
pytestmark = pytest.mark.slow


@dataclass
class _Built:
    """What the threads of one process share: the store, and a stable index per thread."""

    store: Any
    indexes: Iterator[int] = field(default_factory=lambda: iter(range(10_000)))
    local: threading.local = field(default_factory=threading.local)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def thread_index(self) -> int:
        """0, 1, ... THREADS-1: the same for a thread in every round."""
        index = getattr(self.local, "index", None)
        if index is None:
            with self.lock:
                index = self.local.index = next(self.indexes)
        return int(index)


def _build(spec: StoreSpec, engine: Any) -> _Built:
    from storno_security.stores.sql import SqlDirectoryStore

    return _Built(SqlDirectoryStore(engine))


def _caller_id() -> str:
    return f"user-{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}"


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any, Any]]:
    """(name, spec or None, a store of this process) for each backend."""
    name = str(request.param)
    if name == "memory":
        yield name, None, MemoryDirectoryStore()
        return
    spec = store_spec(name, request, tmp_path)
    from storno_security.stores.sql import SqlDirectoryStore

    with spec.connected() as engine:
        yield name, spec, SqlDirectoryStore(engine)


def _volley(backend: tuple[str, Any, Any], call: Any, *, rounds: int) -> list[tuple[int, Any]]:
    """Every caller makes ``call`` at once, ``rounds`` times."""
    _, spec, store = backend
    if spec is None:
        return hammer_threads(_Built(store), call, threads=CALLERS, rounds=rounds)
    return hammer(spec, _build, call, processes=PROCESSES, threads=THREADS, rounds=rounds)


def _organization(store: Any) -> tuple[UserAccount, Organization, Membership]:
    owner = UserAccount(
        user_id=f"owner-{secrets.token_hex(6)}",
        email=f"o{secrets.token_hex(6)}@example.com",
        created_at=NOW,
    )
    organization = Organization(
        organization_id=f"org-{secrets.token_hex(6)}", name="Race", created_at=NOW
    )
    membership = Membership(
        user_id=owner.user_id,
        organization_id=organization.organization_id,
        role=Role.OWNER,
        is_default=True,
    )
    store.create_account(owner, organization=organization, owner=membership)
    return owner, organization, membership


def _invite(store: Any, organization_id: str, invited_by: str) -> Invitation:
    invitation = Invitation(
        invitation_id=f"inv-{secrets.token_hex(8)}",
        organization_id=organization_id,
        email=f"i{secrets.token_hex(6)}@example.com",
        role=Role.ACCOUNTANT,
        invited_by=invited_by,
        created_at=NOW,
        expires_at=NOW + timedelta(days=7),
    )
    version = store.get_organization(organization_id).version
    assert store.add_invitation(invitation, expected_version=version)
    return invitation


# --- one invitation, many acceptances --------------------------------------------------------


def _accept(
    invitations: tuple[Invitation, ...], version: int, built: _Built, round_no: int
) -> tuple[str, bool]:
    """Round 0: accept on the version read before the volley; round 1: on a fresh read."""
    invitation = invitations[round_no]
    store = built.store
    if round_no == 1:
        version = store.get_organization(invitation.organization_id).version
    user_id = _caller_id()
    accepted = store.accept_invitation(
        invitation.invitation_id,
        expected_version=version,
        membership=invitation.membership_for(user_id),
        now=NOW,
    )
    return user_id, bool(accepted)


@pytest.mark.spec("RBAC-6")
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_an_invitation_is_accepted_once_among_50(backend: tuple[str, Any, Any]) -> None:
    store = backend[2]
    owner, organization, _ = _organization(store)
    org_id = organization.organization_id
    invitations = tuple(_invite(store, org_id, owner.user_id) for _ in range(2))
    version = store.get_organization(org_id).version

    outcomes = _volley(
        backend, functools.partial(_accept, invitations, version), rounds=len(invitations)
    )

    for round_no, invitation in enumerate(invitations):
        assert per_round(outcomes, round_no, key=lambda o: o[1]) == {True: 1, False: CALLERS - 1}
        (winner,) = [user for n, (user, won) in outcomes if n == round_no and won]
        assert store.get_invitation(invitation.invitation_id).accepted_by == winner
    members = [r.membership.user_id for r in store.members_of(org_id)]
    winners = [user for _, (user, won) in outcomes if won]
    assert sorted(members) == sorted([owner.user_id, *winners])
    assert store.get_organization(org_id).version == version + 2


# --- the Owner's removal against acceptances -------------------------------------------------


@dataclass(frozen=True)
class _Race:
    """One round: the organization, the version every decision read, the Owner's removal,
    and an invitation per thread index but the first (whose thread removes the Owner)."""

    organization_id: str
    version: int
    removal: Membership
    invitations: tuple[Invitation, ...]


def _remove_or_accept(races: tuple[_Race, ...], built: _Built, round_no: int) -> tuple[str, bool]:
    race = races[round_no]
    store = built.store
    index = built.thread_index() % THREADS
    if index == 0:
        removed = store.apply_memberships(
            race.organization_id,
            expected_version=race.version,
            memberships=[race.removal],
            now=NOW,
        )
        return "remove", bool(removed)
    invitation = race.invitations[index - 1]
    accepted = store.accept_invitation(
        invitation.invitation_id,
        expected_version=race.version,
        membership=invitation.membership_for(_caller_id()),
        now=NOW,
    )
    return "accept", bool(accepted)


@pytest.mark.spec("RBAC-6")
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_the_owners_removal_and_an_acceptance_never_both_apply(
    backend: tuple[str, Any, Any],
) -> None:
    store = backend[2]
    rounds = 3
    races = []
    for _ in range(rounds):
        owner, organization, membership = _organization(store)
        org_id = organization.organization_id
        invitations = tuple(_invite(store, org_id, owner.user_id) for _ in range(THREADS - 1))
        races.append(
            _Race(
                organization_id=org_id,
                version=store.get_organization(org_id).version,
                removal=attrs.evolve(membership, deleted_at=NOW),
                invitations=invitations,
            )
        )

    outcomes = _volley(backend, functools.partial(_remove_or_accept, tuple(races)), rounds=rounds)

    for round_no, race in enumerate(races):
        tried = per_round(outcomes, round_no, key=lambda o: o[0])
        assert tried == {"remove": PROCESSES, "accept": CALLERS - PROCESSES}
        applied = [kind for n, (kind, won) in outcomes if n == round_no and won]
        assert len(applied) == 1, applied
        members = store.members_of(race.organization_id)
        owners = [
            r
            for r in members
            if r.membership.role is Role.OWNER and r.membership.deleted_at is None
        ]
        accepted = [
            i
            for i in race.invitations
            if store.get_invitation(i.invitation_id).accepted_at is not None
        ]
        if applied == ["remove"]:
            assert owners == []
            assert len(members) == 1  # the removed Owner; no one joined
            assert accepted == []
        else:
            assert len(owners) == 1  # the Owner stays, beside exactly one new member
            assert len(members) == 2
            assert len(accepted) == 1
        assert store.get_organization(race.organization_id).version == race.version + 1


# --- one address registered at once ----------------------------------------------------------


def _register(email: str, subject: str, built: _Built, round_no: int) -> tuple[str, str, str]:
    """Round 0: everyone registers ``email``; round 1: everyone links ``subject``."""
    user = UserAccount(
        user_id=_caller_id(),
        email=email if round_no == 0 else f"r{secrets.token_hex(8)}@example.com",
        google_subject=subject if round_no == 1 else None,
        created_at=NOW,
    )
    organization = Organization(
        organization_id=f"org-{secrets.token_hex(8)}", name="Mine", created_at=NOW
    )
    owner = Membership(
        user_id=user.user_id, organization_id=organization.organization_id, role=Role.OWNER
    )
    try:
        built.store.create_account(user, organization=organization, owner=owner)
    except AccountExistsError as exc:
        return user.user_id, organization.organization_id, f"taken:{exc.reason}"
    return user.user_id, organization.organization_id, "created"


@pytest.mark.spec("ACC-1")
@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_one_address_registers_once_among_50(backend: tuple[str, Any, Any]) -> None:
    store = backend[2]
    email = f"race{secrets.token_hex(6)}@example.com"
    subject = f"google-{secrets.token_hex(6)}"

    outcomes = _volley(backend, functools.partial(_register, email, subject), rounds=2)

    assert per_round(outcomes, 0, key=lambda o: o[2]) == {
        "created": 1,
        "taken:email_taken": CALLERS - 1,
    }
    assert per_round(outcomes, 1, key=lambda o: o[2]) == {
        "created": 1,
        "taken:google_taken": CALLERS - 1,
    }
    found = (store.find_user(email=email), store.find_user(google_subject=subject))
    for round_no, user in enumerate(found):
        (winner,) = [o for n, o in outcomes if n == round_no and o[2] == "created"]
        assert user is not None
        assert user.user_id == winner[0]
    # a refused registration wrote nothing: no user, no organization, no membership
    losers = [o for _, o in outcomes if o[2] != "created"]
    assert store.get_users([user_id for user_id, _, _ in losers]) == {}
    for user_id, organization_id, _ in losers:
        assert store.get_organization(organization_id) is None
        assert store.memberships_of(user_id) == []
