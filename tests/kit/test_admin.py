"""Operator flows: finding an account, releasing an MFA lockout, turning MFA off for a user
who lost every factor (audited, every session ended), listing a user's sessions."""

from __future__ import annotations

import pyotp
import pytest

from storno_security.errors import (
    AccountNotFoundError,
    AccountStateError,
    InvalidAccessTokenError,
    InvalidMfaChallengeError,
    InvalidMfaCodeError,
    MfaLockedError,
)
from storno_security.kit import MfaRequired, Session
from tests.kit.conftest import PASSWORD, World

pytestmark = pytest.mark.parametrize("bundle_factory", ["memory", "sqlite"], indirect=True)


def _wrong(world: World, secret: str) -> str:
    right = world.totp(secret)
    return "000000" if right != "000000" else "111111"


def _lock(world: World, email: str, secret: str) -> None:
    for _ in range(50):
        challenge = world.kit.login(email, PASSWORD)
        assert isinstance(challenge, MfaRequired)
        try:
            world.kit.verify_mfa(challenge.token, method="totp", code=_wrong(world, secret))
        except MfaLockedError:
            return
        except (InvalidMfaCodeError, InvalidMfaChallengeError):
            continue
    raise AssertionError("never locked")


def test_find_account_by_email_or_id(world: World) -> None:
    session = world.register()
    user = session.user
    assert world.kit.find_account(user.email).user_id == user.user_id
    assert world.kit.find_account(user.email.upper()).user_id == user.user_id
    assert world.kit.find_account(user.user_id).user_id == user.user_id
    with pytest.raises(AccountNotFoundError):
        world.kit.find_account("nobody@example.eu")
    with pytest.raises(AccountNotFoundError):
        world.kit.find_account("no-such-id")


def test_an_operator_releases_an_mfa_lockout(world: World) -> None:
    session = world.register()
    secret = world.enable_mfa(session)
    email = session.user.email
    _lock(world, email, secret)
    world.kit.release_mfa_lockout(session.user.user_id)
    (cleared,) = world.events.of("mfa.lockout_cleared")
    assert cleared.subject_id == session.user.user_id
    assert cleared.actor_id is None
    assert cleared.details["method"] == "admin"
    challenge = world.kit.login(email, PASSWORD)
    assert isinstance(challenge, MfaRequired)
    code = str(pyotp.TOTP(secret).at(world.clock.now()))
    assert isinstance(world.kit.verify_mfa(challenge.token, method="totp", code=code), Session)


def test_an_operator_disables_mfa_and_every_session_ends(world: World) -> None:
    session = world.register()
    world.enable_mfa(session)
    user_id = session.user.user_id
    assert len(world.kit.list_sessions(user_id)) >= 1
    ended = world.kit.disable_mfa_by_admin(user_id)
    assert ended >= 1
    assert world.kit.list_sessions(user_id) == []
    assert not world.kit.get_user(user_id).mfa_enabled
    with pytest.raises(InvalidAccessTokenError):
        world.kit.authenticate(f"Bearer {session.tokens.access_token}")
    disabled = world.events.of("mfa.disabled")[-1]
    assert disabled.details == {"method": "admin", "backup_code_count": 0}
    assert disabled.subject_id == user_id
    # a password login needs no second factor now
    assert isinstance(world.kit.login(session.user.email, PASSWORD), Session)
    with pytest.raises(AccountStateError):
        world.kit.disable_mfa_by_admin(user_id)


def test_list_sessions(world: World) -> None:
    session = world.register()
    user_id = session.user.user_id
    second = world.login(session.user.email)
    sessions = world.kit.list_sessions(user_id)
    ids = [s.family_id for s in sessions]
    assert second.tokens.session_id in ids
    assert all(s.user_id == user_id for s in sessions)
    with pytest.raises(AccountNotFoundError):
        world.kit.list_sessions("no-such-user")
