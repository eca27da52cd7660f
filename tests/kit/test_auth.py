"""The sign-up and sign-in flows of the kit (ACC-1, ACC-2, ACC-5, PW-3, PW-4, MFA-4, MFA-5,
REF-2..4)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storno_security.errors import (
    AccountExistsError,
    AccountStateError,
    InvalidAccessTokenError,
    InvalidApiKeyError,
    InvalidConfirmationTokenError,
    InvalidMfaChallengeError,
    InvalidMfaCodeError,
    InvalidPasswordError,
    InvalidRefreshTokenError,
    InvalidResetTokenError,
    PasswordPolicyError,
    RefreshTokenReuseError,
)
from storno_security.kit import Kit, MfaRequired, Session
from storno_security.passwords import PasswordHasher, PasswordPolicy
from storno_security.stores.memory import memory_bundle
from tests.kit.conftest import PASSWORD, World, kit_keys, kit_policy


@pytest.mark.spec("ACC-1")
def test_registration_creates_user_organization_and_owner(world: World) -> None:
    address = world.email()
    registration = world.kit.register(address.upper(), PASSWORD, name="Ana")
    assert registration.user.email == address
    assert not registration.user.email_confirmed
    memberships = world.kit.directory.memberships_of(registration.user.user_id)
    assert [(m.organization_id, m.role.value, m.is_default) for m in memberships] == [
        (registration.organization_id, "owner", True)
    ]
    assert registration.session is not None
    with pytest.raises(AccountExistsError):
        world.kit.register(address, PASSWORD)


@pytest.mark.spec("ACC-5")
def test_confirmation_is_single_use_and_bound_to_the_address(world: World) -> None:
    email = world.email()
    world.kit.register(email, PASSWORD)
    token = world.mail.last("email_confirmation", email).token or ""
    user = world.kit.confirm_email(token)
    assert user.email_confirmed
    with pytest.raises(InvalidConfirmationTokenError):
        world.kit.confirm_email(token)


@pytest.mark.spec("ACC-5")
def test_confirmation_expires_after_24_hours(world: World) -> None:
    email = world.email()
    world.kit.register(email, PASSWORD)
    token = world.mail.last("email_confirmation", email).token or ""
    world.clock.advance(timedelta(hours=24, seconds=1))
    with pytest.raises(InvalidConfirmationTokenError):
        world.kit.confirm_email(token)


@pytest.mark.spec("ACC-5")
def test_resend_answers_the_same_for_every_address(world: World) -> None:
    email = world.email()
    world.kit.register(email, PASSWORD)
    before = len(world.mail.sent)
    assert world.kit.resend_confirmation(email) is None
    assert world.kit.resend_confirmation("nobody@example.eu") is None
    assert world.kit.resend_confirmation("not an address") is None
    assert len(world.mail.sent) == before + 1


@pytest.mark.spec("ACC-5")
def test_the_policy_may_refuse_login_until_confirmed(clock) -> None:  # type: ignore[no-untyped-def]
    from tests.kit.conftest import MailCatcher

    mail = MailCatcher()
    kit = Kit(
        memory_bundle(),
        policy=kit_policy(require_confirmed_email=True),
        keys=kit_keys(),
        clock=clock,
        mailer=mail,
    )
    registration = kit.register("bo@example.eu", PASSWORD)
    assert registration.session is None
    with pytest.raises(AccountStateError) as info:
        kit.login("bo@example.eu", PASSWORD)
    assert info.value.reason == "email_not_confirmed"
    with pytest.raises(InvalidPasswordError):  # a wrong password still says nothing more
        kit.login("bo@example.eu", "wrong password!")
    kit.confirm_email(mail.last("email_confirmation").token or "")
    assert isinstance(kit.login("bo@example.eu", PASSWORD), Session)


@pytest.mark.spec("ACC-1")
@pytest.mark.spec("PW-4")
def test_login_failures_are_one_error(world: World) -> None:
    email = world.email()
    world.register(email)
    for address, password in (
        (email, "wrong password!"),
        ("nobody@example.eu", PASSWORD),
        ("not an address", PASSWORD),
    ):
        with pytest.raises(InvalidPasswordError) as info:
            world.kit.login(address, password)
        assert str(info.value) == "invalid credentials"
    assert len(world.events.of("login.failed")) == 3


@pytest.mark.spec("PW-3")
def test_login_upgrades_a_hash_below_the_policy(clock) -> None:  # type: ignore[no-untyped-def]
    kit = Kit(
        memory_bundle(),
        policy=kit_policy(passwords=PasswordPolicy(cost=5, insecure_low_cost=True)),
        keys=kit_keys(),
        clock=clock,
    )
    registration = kit.register("cy@example.eu", PASSWORD)
    user_id = registration.user.user_id
    old = PasswordHasher(PasswordPolicy(cost=4, insecure_low_cost=True)).hash(PASSWORD)
    kit.directory.update_user(user_id, expected={}, changes={"password_hash": old})
    assert kit.hasher.needs_rehash(old)
    assert isinstance(kit.login("cy@example.eu", PASSWORD), Session)
    user = kit.directory.get_user(user_id)
    assert user is not None
    assert user.password_hash not in (None, old)
    assert not kit.hasher.needs_rehash(user.password_hash or "")
    assert isinstance(kit.login("cy@example.eu", PASSWORD), Session)


@pytest.mark.spec("MFA-4")
def test_mfa_login_challenge_then_session(world: World) -> None:
    session = world.register()
    secret = world.enable_mfa(session)
    email = session.user.email or ""
    result = world.kit.login(email, PASSWORD)
    assert isinstance(result, MfaRequired)
    assert result.response()["mfa_methods"] == ["totp", "backup_code"]
    with pytest.raises(InvalidMfaCodeError):
        world.kit.verify_mfa(result.token, method="totp", code="000000")
    done = world.kit.verify_mfa(result.token, method="totp", code=world.totp(secret))
    assert done.method == "mfa_totp"
    with pytest.raises(InvalidMfaChallengeError):
        world.kit.verify_mfa(result.token, method="totp", code=world.totp(secret))


@pytest.mark.spec("MFA-5")
def test_a_passkey_answers_the_challenge_and_logs_in_alone(world: World) -> None:
    session = world.register()
    secret = world.enable_mfa(session)
    caller = world.caller(session)
    grant = world.kit.step_up(caller, "passkey.register", method="totp", code=world.totp(secret))
    options = world.kit.begin_passkey_registration(caller, step_up_token=grant.token)
    response = world.authenticator.create(options.as_dict(), origin="https://app.example.eu")
    world.kit.finish_passkey_registration(caller, response, name="laptop")
    result = world.kit.login(session.user.email or "", PASSWORD)
    assert isinstance(result, MfaRequired)
    assert "passkey" in result.methods
    assert result.passkey_options is not None
    assertion = world.authenticator.get(
        result.passkey_options.as_dict(), origin="https://app.example.eu"
    )
    done = world.kit.verify_mfa(result.token, method="passkey", credential=assertion)
    assert done.method == "mfa_passkey"
    # usernameless passkey login needs no second factor
    options = world.kit.passkey_login_options()
    alone = world.kit.login_with_passkey(
        world.authenticator.get(options.as_dict(), origin="https://app.example.eu")
    )
    assert alone.user.user_id == session.user.user_id


@pytest.mark.spec("REF-2")
@pytest.mark.spec("REF-3")
def test_refresh_rotates_and_reuse_kills_the_family(world: World) -> None:
    session = world.register()
    pair = world.kit.refresh(session.tokens.refresh_token)
    newer = world.kit.refresh(pair.refresh_token)  # the successor was used
    with pytest.raises(RefreshTokenReuseError):
        world.kit.refresh(session.tokens.refresh_token)
    with pytest.raises(InvalidRefreshTokenError):
        world.kit.refresh(newer.refresh_token)
    with pytest.raises(InvalidAccessTokenError):
        world.kit.authenticate(f"Bearer {newer.access_token}")
    assert world.events.of("session.token_reuse_detected")


@pytest.mark.spec("REF-4")
def test_logout_and_logout_everywhere(world: World) -> None:
    session = world.register()
    other = world.login(session.user.email or "")
    world.kit.logout(session.tokens.refresh_token, user_id=session.user.user_id)
    with pytest.raises(InvalidAccessTokenError):
        world.kit.authenticate(f"Bearer {session.tokens.access_token}")
    assert world.kit.authenticate(f"Bearer {other.tokens.access_token}") is not None
    world.kit.logout_everywhere(session.user.user_id)
    with pytest.raises(InvalidAccessTokenError):
        world.kit.authenticate(f"Bearer {other.tokens.access_token}")


@pytest.mark.spec("ACC-2")
@pytest.mark.spec("REF-4")
def test_password_reset_ends_every_session(world: World) -> None:
    session = world.register()
    email = session.user.email or ""
    assert world.kit.request_password_reset("nobody@example.eu") is None
    world.kit.request_password_reset(email)
    token = world.mail.last("password_reset", email).token or ""
    with pytest.raises(PasswordPolicyError):
        world.kit.reset_password(token, "short")
    world.kit.reset_password(token, "another long passphrase")  # the link still worked
    with pytest.raises(InvalidResetTokenError):
        world.kit.reset_password(token, "yet another passphrase")
    with pytest.raises(InvalidAccessTokenError):
        world.kit.authenticate(f"Bearer {session.tokens.access_token}")
    assert isinstance(world.kit.login(email, "another long passphrase"), Session)


@pytest.mark.spec("REF-4")
def test_password_change_ends_every_session_and_starts_one(world: World) -> None:
    session = world.register()
    fresh = world.kit.change_password(
        world.caller(session), current_password=PASSWORD, new_password="a brand new passphrase"
    )
    with pytest.raises(InvalidAccessTokenError):
        world.kit.authenticate(f"Bearer {session.tokens.access_token}")
    assert world.kit.authenticate(f"Bearer {fresh.tokens.access_token}") is not None


@pytest.mark.spec("KEY-4")
def test_authenticate_keeps_keys_and_tokens_apart(world: World) -> None:
    session = world.register()
    created = world.kit.create_api_key(
        world.caller(session), name="ci", scope="read", current_password=PASSWORD
    )
    assert world.kit.authenticate(created.key) is not None
    with pytest.raises(InvalidApiKeyError):
        world.kit.authenticate(f"Bearer {created.key}")
    for header in ("Basic abc", "Bearer", "Bearer a b", "token"):
        with pytest.raises(InvalidAccessTokenError):
            world.kit.authenticate(header)
    assert world.kit.authenticate(None) is None


@pytest.mark.spec("REF-5")
def test_a_refresh_whose_reply_was_lost_can_be_retried(world: World) -> None:
    session = world.register()
    lost = world.kit.refresh(session.tokens.refresh_token)
    retried = world.kit.refresh(session.tokens.refresh_token)
    assert world.kit.authenticate(f"Bearer {retried.access_token}") is not None
    with pytest.raises(RefreshTokenReuseError):  # the lost successor came back: theft
        world.kit.refresh(lost.refresh_token)
