"""One contract for every RefreshFamilyStore and SessionStateStore implementation.

Ids and hashes are random per test, so the tests share each backend's schema without seeing
each other's rows.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.errors import StoreError
from storno_security.tokens.storage import (
    RefreshFamily,
    RefreshFamilyStore,
    RotationOutcome,
    SessionStateStore,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def new_hash() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def new_family(user_id: str | None = None, *, days: int = 30) -> RefreshFamily:
    return RefreshFamily(
        family_id=secrets.token_hex(16),
        user_id=user_id or f"user-{secrets.token_hex(6)}",
        created_at=NOW,
        expires_at=NOW + timedelta(days=days),
    )


def test_is_a_family_store(family_store: Any) -> None:
    assert isinstance(family_store, RefreshFamilyStore)


def test_is_a_state_store(state_store: Any) -> None:
    assert isinstance(state_store, SessionStateStore)


@pytest.mark.spec("REF-2")
def test_rotate_live_token(family_store: Any) -> None:
    family = new_family()
    first, second, third = new_hash(), new_hash(), new_hash()
    family_store.create_family(family, token_hash=first)
    result = family_store.rotate(presented_hash=first, new_hash=second, now=NOW)
    assert result.outcome is RotationOutcome.ROTATED
    assert result.family == family
    result = family_store.rotate(presented_hash=second, new_hash=third, now=NOW)
    assert result.outcome is RotationOutcome.ROTATED


def test_family_round_trips_times_as_aware_utc(family_store: Any) -> None:
    family = new_family()
    first = new_hash()
    family_store.create_family(family, token_hash=first)
    result = family_store.rotate(presented_hash=first, new_hash=new_hash(), now=NOW)
    assert result.family is not None
    assert result.family.created_at == family.created_at
    assert result.family.expires_at == family.expires_at
    assert result.family.expires_at.utcoffset() == timedelta(0)


def test_unknown_hash(family_store: Any) -> None:
    result = family_store.rotate(presented_hash=new_hash(), new_hash=new_hash(), now=NOW)
    assert result.outcome is RotationOutcome.UNKNOWN
    assert result.family is None


@pytest.mark.spec("REF-3")
def test_reuse_revokes_family(family_store: Any) -> None:
    family = new_family()
    first, second = new_hash(), new_hash()
    family_store.create_family(family, token_hash=first)
    assert family_store.rotate(presented_hash=first, new_hash=second, now=NOW).outcome is (
        RotationOutcome.ROTATED
    )
    reused = family_store.rotate(presented_hash=first, new_hash=new_hash(), now=NOW)
    assert reused.outcome is RotationOutcome.REUSED
    assert reused.family == family
    # the live token of the family is dead too
    after = family_store.rotate(presented_hash=second, new_hash=new_hash(), now=NOW)
    assert after.outcome is RotationOutcome.REVOKED
    # reusing again stays "reused" (idempotent)
    again = family_store.rotate(presented_hash=first, new_hash=new_hash(), now=NOW)
    assert again.outcome is RotationOutcome.REUSED


@pytest.mark.spec("REF-1")
def test_expired_family_changes_nothing(family_store: Any) -> None:
    family = new_family(days=30)
    first = new_hash()
    family_store.create_family(family, token_hash=first)
    late = family.expires_at
    assert family_store.rotate(presented_hash=first, new_hash=new_hash(), now=late).outcome is (
        RotationOutcome.EXPIRED
    )
    # still live just before the end: the expired attempt did not consume it
    just_before = late - timedelta(seconds=1)
    result = family_store.rotate(presented_hash=first, new_hash=new_hash(), now=just_before)
    assert result.outcome is RotationOutcome.ROTATED


def test_wrong_user_changes_nothing(family_store: Any) -> None:
    family = new_family()
    first = new_hash()
    family_store.create_family(family, token_hash=first)
    result = family_store.rotate(
        presented_hash=first, new_hash=new_hash(), now=NOW, expected_user_id="someone-else"
    )
    assert result.outcome is RotationOutcome.WRONG_USER
    assert result.family is None
    result = family_store.rotate(
        presented_hash=first, new_hash=new_hash(), now=NOW, expected_user_id=family.user_id
    )
    assert result.outcome is RotationOutcome.ROTATED


def test_duplicate_family_refused(family_store: Any) -> None:
    family = new_family()
    family_store.create_family(family, token_hash=new_hash())
    with pytest.raises(StoreError):
        family_store.create_family(family, token_hash=new_hash())


def test_duplicate_token_hash_refused(family_store: Any) -> None:
    shared = new_hash()
    family_store.create_family(new_family(), token_hash=shared)
    with pytest.raises(StoreError):
        family_store.create_family(new_family(), token_hash=shared)


def test_rotation_to_a_hash_in_use_is_refused_and_changes_nothing(family_store: Any) -> None:
    taken = new_hash()
    family_store.create_family(new_family(), token_hash=taken)
    family, first = new_family(), new_hash()
    family_store.create_family(family, token_hash=first)
    with pytest.raises(StoreError) as caught:
        family_store.rotate(presented_hash=first, new_hash=taken, now=NOW)
    assert caught.value.reason == "duplicate"
    # the presented token was not consumed: it rotates as it would have
    result = family_store.rotate(presented_hash=first, new_hash=new_hash(), now=NOW)
    assert result.outcome is RotationOutcome.ROTATED


@pytest.mark.spec("REF-4")
def test_logout_revokes_by_token(family_store: Any) -> None:
    family = new_family()
    first = new_hash()
    family_store.create_family(family, token_hash=first)
    assert family_store.revoke_by_token(first, now=NOW, expected_user_id="intruder") is None
    assert family_store.revoke_by_token(first, now=NOW, expected_user_id=family.user_id) == family
    result = family_store.rotate(presented_hash=first, new_hash=new_hash(), now=NOW)
    assert result.outcome is RotationOutcome.REVOKED
    # idempotent
    assert family_store.revoke_by_token(first, now=NOW, expected_user_id=family.user_id) == family
    assert family_store.revoke_by_token(new_hash(), now=NOW, expected_user_id="x") is None


def test_revoke_family(family_store: Any) -> None:
    family = new_family()
    first = new_hash()
    family_store.create_family(family, token_hash=first)
    assert family_store.revoke_family(family.family_id, now=NOW) is True
    assert family_store.revoke_family(family.family_id, now=NOW) is False
    assert family_store.revoke_family("no-such-family", now=NOW) is False
    result = family_store.rotate(presented_hash=first, new_hash=new_hash(), now=NOW)
    assert result.outcome is RotationOutcome.REVOKED


@pytest.mark.spec("REF-4")
def test_revoke_user_families(family_store: Any) -> None:
    user = f"user-{secrets.token_hex(6)}"
    mine = [new_family(user) for _ in range(3)]
    other = new_family()
    hashes = {}
    for family in [*mine, other]:
        hashes[family.family_id] = new_hash()
        family_store.create_family(family, token_hash=hashes[family.family_id])
    family_store.revoke_family(mine[0].family_id, now=NOW)
    revoked = family_store.revoke_user_families(user, now=NOW)
    assert sorted(revoked) == sorted(f.family_id for f in mine[1:])
    for family in mine:
        result = family_store.rotate(
            presented_hash=hashes[family.family_id], new_hash=new_hash(), now=NOW
        )
        assert result.outcome is RotationOutcome.REVOKED
    result = family_store.rotate(
        presented_hash=hashes[other.family_id], new_hash=new_hash(), now=NOW
    )
    assert result.outcome is RotationOutcome.ROTATED


def test_live_families_are_the_users_sessions(family_store: Any) -> None:
    user = f"user-{secrets.token_hex(6)}"
    later = RefreshFamily(
        family_id=secrets.token_hex(16),
        user_id=user,
        created_at=NOW + timedelta(seconds=5),
        expires_at=NOW + timedelta(days=30),
    )
    first = RefreshFamily(
        family_id=secrets.token_hex(16),
        user_id=user,
        created_at=NOW,
        expires_at=NOW + timedelta(days=30),
    )
    over = RefreshFamily(
        family_id=secrets.token_hex(16),
        user_id=user,
        created_at=NOW - timedelta(days=40),
        expires_at=NOW - timedelta(seconds=1),
    )
    revoked = new_family(user)
    for family in (later, first, over, revoked, new_family()):
        family_store.create_family(family, token_hash=new_hash())
    family_store.revoke_family(revoked.family_id, now=NOW)
    assert family_store.live_families(user, now=NOW) == [first, later]
    assert family_store.live_families("no-such-user", now=NOW) == []


def test_purge_expired(family_store: Any) -> None:
    old = RefreshFamily(
        family_id=secrets.token_hex(16),
        user_id="purge-user",
        created_at=NOW - timedelta(days=400),
        expires_at=NOW - timedelta(days=370),
    )
    live = new_family()
    old_hash, live_hash = new_hash(), new_hash()
    family_store.create_family(old, token_hash=old_hash)
    family_store.create_family(live, token_hash=live_hash)
    assert family_store.purge_expired(now=NOW - timedelta(days=300)) >= 1
    result = family_store.rotate(presented_hash=old_hash, new_hash=new_hash(), now=NOW)
    assert result.outcome is RotationOutcome.UNKNOWN
    result = family_store.rotate(presented_hash=live_hash, new_hash=new_hash(), now=NOW)
    assert result.outcome is RotationOutcome.ROTATED


# --- session state ---------------------------------------------------------------------------


@pytest.mark.spec("REF-4")
def test_epochs(state_store: Any) -> None:
    user = f"user-{secrets.token_hex(6)}"
    assert state_store.current_epoch(user) == 0
    assert state_store.bump_epoch(user) == 1
    assert state_store.bump_epoch(user) == 2
    assert state_store.current_epoch(user) == 2
    state = state_store.session_state(user_id=user, session_id=secrets.token_hex(16))
    assert state.epoch == 2
    assert state.revoked is False
    assert state_store.current_epoch(f"user-{secrets.token_hex(6)}") == 0


@pytest.mark.spec("REF-3")
def test_revoked_sessions(state_store: Any) -> None:
    user = f"user-{secrets.token_hex(6)}"
    sid, other = secrets.token_hex(16), secrets.token_hex(16)
    state_store.revoke_session(sid, now=NOW, until=NOW + timedelta(hours=1))
    assert state_store.session_state(user_id=user, session_id=sid).revoked is True
    assert state_store.session_state(user_id=user, session_id=other).revoked is False
    # idempotent, and an earlier "until" does not shorten the marker
    state_store.revoke_session(sid, now=NOW, until=NOW + timedelta(minutes=1))
    state_store.purge_expired(now=NOW + timedelta(minutes=30))
    assert state_store.session_state(user_id=user, session_id=sid).revoked is True


def test_purge_revoked_markers(state_store: Any) -> None:
    sid, keep = secrets.token_hex(16), secrets.token_hex(16)
    state_store.revoke_session(sid, now=NOW, until=NOW + timedelta(hours=1))
    state_store.revoke_session(keep, now=NOW, until=NOW + timedelta(hours=3))
    purged = state_store.purge_expired(now=NOW + timedelta(hours=2))
    assert state_store.session_state(user_id="u", session_id=keep).revoked is True
    if type(state_store).__name__.startswith("Redis"):
        # Redis forgets markers by itself through a time-to-live; purge has nothing to do.
        assert purged == 0
    else:
        assert purged >= 1
        assert state_store.session_state(user_id="u", session_id=sid).revoked is False
