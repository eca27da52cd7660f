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
    InvalidPasskeyError,
    InvalidPasswordError,
    InvalidRefreshTokenError,
    InvalidResetTokenError,
    PasswordPolicyError,
    RefreshTokenReuseError,
)
from storno_security.kit import Kit, MfaRequired, Session
from storno_security.passwords import PasswordHasher, PasswordPolicy
from storno_security.stores.memory import memory_bundle
from tests.kit.conftest import ORIGIN, PASSWORD, RacedWorld, World, kit_keys, kit_policy


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


# --- what changes between two steps, and malformed calls ---------------------------------------


@pytest.mark.spec("PW-4")
@pytest.mark.parametrize("address", [None, 7, b"ana@example.eu"])
def test_an_address_that_is_not_text_is_the_one_login_failure(
    world: World, address: object
) -> None:
    with pytest.raises(InvalidPasswordError) as info:
        world.kit.login(address, PASSWORD)  # type: ignore[arg-type]
    assert str(info.value) == "invalid credentials"
    assert world.kit.resend_confirmation(address) is None  # type: ignore[arg-type]
    assert world.kit.request_password_reset(address) is None  # type: ignore[arg-type]
    assert world.mail.sent == []


@pytest.mark.spec("ACC-5")
def test_a_confirmed_address_gets_no_new_link(world: World) -> None:
    session = world.register()
    sent = len(world.mail.sent)
    assert world.kit.resend_confirmation(session.user.email or "") is None
    assert len(world.mail.sent) == sent


@pytest.mark.spec("ACC-5")
def test_a_link_sent_while_the_address_was_being_confirmed_changes_nothing(
    raced: RacedWorld,
) -> None:
    email = raced.email()
    raced.kit.register(email, PASSWORD)
    first = raced.mail.last("email_confirmation", email).token or ""
    # a resend lands between the first link's use and the confirmation it writes
    raced.meanwhile.before("update_user", lambda: raced.kit.resend_confirmation(email))
    confirmed = raced.kit.confirm_email(first)
    second = raced.mail.last("email_confirmation", email).token or ""
    assert second != first
    assert raced.kit.confirm_email(second) == confirmed
    assert confirmed.email_confirmed
    assert len(raced.events.of("account.email_confirmed")) == 1


@pytest.mark.spec("ACC-5")
@pytest.mark.parametrize("step", ["get_user", "update_user"])
def test_a_link_used_while_the_address_changes_confirms_nothing(
    raced: RacedWorld, step: str
) -> None:
    email = raced.email()
    session = raced.register(email, confirm=False)
    token = raced.mail.last("email_confirmation", email).token or ""
    other = raced.email()
    raced.meanwhile.before(
        step,
        lambda: raced.kit.change_email(raced.caller(session), other, current_password=PASSWORD),
    )
    with pytest.raises(InvalidConfirmationTokenError) as info:
        raced.kit.confirm_email(token)
    assert info.value.reason == "address_changed"
    assert raced.meanwhile.pending == []
    user = raced.kit.get_user(session.user.user_id)
    assert (user.email, user.email_confirmed) == (other, False)
    assert raced.events.of("account.email_confirmed") == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"method": "sms", "code": "123456"}, "method must be totp, backup_code or passkey"),
        ({"method": "passkey"}, "a passkey answer needs the credential"),
        ({"method": "totp"}, "a code answer needs the code"),
        ({"method": "backup_code", "code": 123456}, "a code answer needs the code"),
    ],
)
def test_an_mfa_answer_without_its_method_or_proof_is_a_caller_error(
    world: World, arguments: dict[str, object], message: str
) -> None:
    session = world.register()
    world.enable_mfa(session)
    result = world.kit.login(session.user.email or "", PASSWORD)
    assert isinstance(result, MfaRequired)
    with pytest.raises(ValueError, match=message):
        world.kit.verify_mfa(result.token, **arguments)  # type: ignore[arg-type]
    assert world.events.of("mfa.failed") == []


@pytest.mark.spec("MFA-4")
def test_an_mfa_challenge_answered_after_the_admin_turned_mfa_off_is_refused(
    world: World,
) -> None:
    session = world.register()
    secret = world.enable_mfa(session)
    result = world.kit.login(session.user.email or "", PASSWORD)
    assert isinstance(result, MfaRequired)
    world.kit.disable_mfa_by_admin(session.user.user_id)  # the TOTP secret is gone
    with pytest.raises(InvalidMfaCodeError) as info:
        world.kit.verify_mfa(result.token, method="totp", code=world.totp(secret))
    assert info.value.reason == "not_enrolled"
    assert world.events.of("mfa.failed")[-1].details["reason"] == "not_enrolled"


@pytest.mark.spec("MFA-4")
def test_no_session_for_an_account_forgotten_while_its_code_was_checked(
    raced: RacedWorld,
) -> None:
    session = raced.register()
    secret = raced.enable_mfa(session)
    result = raced.kit.login(session.user.email or "", PASSWORD)
    assert isinstance(result, MfaRequired)
    user_id = session.user.user_id
    # the factor is checked on the first read of the account; it is forgotten before the second
    raced.meanwhile.before("get_user", lambda: raced.kit.forget_user(user_id), call=2)
    with pytest.raises(InvalidMfaChallengeError) as info:
        raced.kit.verify_mfa(result.token, method="totp", code=raced.totp(secret))
    assert info.value.reason == "account_gone"
    assert raced.meanwhile.pending == []
    assert raced.kit.directory.get_user(user_id) is None
    logins = raced.events.of("login.succeeded")
    assert [e for e in logins if e.details["method"] == "mfa_totp"] == []


@pytest.mark.spec("PK-4")
def test_no_session_for_an_account_forgotten_while_its_passkey_was_checked(
    raced: RacedWorld,
) -> None:
    session = raced.register()
    caller = raced.caller(session)
    options = raced.kit.begin_passkey_registration(caller, current_password=PASSWORD)
    response = raced.authenticator.create(options.as_dict(), origin=ORIGIN)
    raced.kit.finish_passkey_registration(caller, response, name="laptop")
    assertion = raced.authenticator.get(raced.kit.passkey_login_options().as_dict(), origin=ORIGIN)
    user_id = session.user.user_id
    raced.meanwhile.before("get_user", lambda: raced.kit.forget_user(user_id))
    with pytest.raises(InvalidPasskeyError) as info:
        raced.kit.login_with_passkey(assertion)
    assert info.value.reason == "unknown_user"
    assert raced.meanwhile.pending == []


@pytest.mark.spec("ACC-2")
def test_a_reset_link_of_an_account_deleted_meanwhile_sets_no_password(raced: RacedWorld) -> None:
    session = raced.register()
    email = session.user.email or ""
    raced.kit.request_password_reset(email)
    token = raced.mail.last("password_reset", email).token or ""
    caller = raced.caller(session)
    raced.meanwhile.before(
        "update_user", lambda: raced.kit.delete_account(caller, current_password=PASSWORD)
    )
    with pytest.raises(InvalidResetTokenError) as info:
        raced.kit.reset_password(token, "another long passphrase")
    assert info.value.reason == "account_gone"
    user = raced.kit.directory.get_user(session.user.user_id)
    assert user is not None
    assert (user.is_live, user.password_hash) == (False, None)
    assert raced.events.of("password.reset") == []


def test_without_passkeys_the_passkey_flows_are_refused(clock) -> None:  # type: ignore[no-untyped-def]
    kit = Kit(memory_bundle(), policy=kit_policy(passkeys=None), keys=kit_keys(), clock=clock)
    session = kit.register("di@example.eu", PASSWORD).session
    assert session is not None
    for call in (kit.passkey_login_options, lambda: kit.login_with_passkey({"id": "x"})):
        with pytest.raises(AccountStateError) as info:
            call()
        assert info.value.reason == "passkeys_disabled"
    caller = kit.authenticate(f"Bearer {session.tokens.access_token}")
    assert caller is not None
    assert kit.list_passkeys(caller) == []


@pytest.mark.spec("MFA-5")
def test_without_passkeys_a_passkey_answer_to_the_challenge_is_a_wrong_answer(clock) -> None:  # type: ignore[no-untyped-def]
    from tests.kit.conftest import EventCatcher

    events = EventCatcher()
    kit = Kit(
        memory_bundle(),
        policy=kit_policy(passkeys=None),
        keys=kit_keys(),
        clock=clock,
        events=events,
    )
    world = World(kit=kit, clock=clock, mail=None, events=events, companies={})  # type: ignore[arg-type]
    session = kit.register("ed@example.eu", PASSWORD).session
    assert session is not None
    world.enable_mfa(session)
    result = kit.login("ed@example.eu", PASSWORD)
    assert isinstance(result, MfaRequired)
    assert result.methods == ("totp", "backup_code")
    with pytest.raises(InvalidMfaCodeError) as info:
        kit.verify_mfa(result.token, method="passkey", credential={"id": "x"})
    assert info.value.reason == "unsupported_method"
    assert events.of("mfa.failed")[-1].details["reason"] == "unsupported_method"


@pytest.mark.spec("RBAC-3")
def test_a_member_who_lost_the_default_organization_signs_in_to_the_oldest_left(
    world: World,
) -> None:
    member, joined = world.without_default()
    member_id = member.user.user_id
    live = [m for m in world.kit.directory.memberships_of(member_id) if m.deleted_at is None]
    assert sorted(m.organization_id for m in live) == sorted(joined)
    assert not any(m.is_default for m in live)
    world.login(member.user.email or "")
    assert world.events.of("login.succeeded")[-1].organization_id == joined[0]
    assert world.kit.default_organization_id(member_id) == joined[0]
