"""ACC-6: re-authentication is one table; each row is tested for every account state."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storno_security.errors import (
    InvalidMfaCodeError,
    InvalidPasswordError,
    InvalidStepUpTokenError,
    PermissionDeniedError,
    ReauthenticationRequiredError,
)
from storno_security.kit import REAUTH_TABLE, Caller, Proof, SensitiveAction, Session
from tests.kit.conftest import PASSWORD, World, WorldMaker, kit_policy

ACTIONS = sorted(SensitiveAction, key=lambda a: a.value)


def _state(world: World, kind: str) -> tuple[Session, str | None]:
    """A signed-in account with MFA (``mfa``), with a password only (``password``), or with
    neither (``neither``: a Google- or passkey-only account); the TOTP secret for ``mfa``."""
    session = world.register()
    if kind == "mfa":
        secret = world.enable_mfa(session)
        result = world.kit.login(session.user.email or "", PASSWORD)
        session = world.kit.verify_mfa(result.token, method="totp", code=world.totp(secret))  # type: ignore[union-attr]
        world.clock.advance(timedelta(seconds=30))  # the next code is a new step (MFA-2)
        return session, secret
    if kind == "neither":
        user = world.kit.directory.update_user(
            session.user.user_id, expected={}, changes={"password_hash": None}
        )
        assert user is not None
        assert not user.has_password
    return session, None


@pytest.mark.spec("ACC-6")
def test_the_table_names_every_sensitive_act() -> None:
    assert set(REAUTH_TABLE) == set(SensitiveAction)
    for action, rule in REAUTH_TABLE.items():
        assert rule.action is action
        # whatever the account has, a proof is asked; MFA changes which, never whether
        for mfa in (True, False):
            for password in (True, False):
                accepted = rule.accepted(mfa_enabled=mfa, has_password=password)
                assert accepted, (action, mfa, password)
                assert Proof.STEP_UP in accepted
        assert rule.accepted(mfa_enabled=True, has_password=True) == (Proof.STEP_UP,)
        assert rule.accepted(mfa_enabled=False, has_password=True) == (
            Proof.STEP_UP,
            Proof.PASSWORD,
        )


@pytest.mark.spec("ACC-6")
@pytest.mark.parametrize("action", ACTIONS)
def test_mfa_account_needs_a_step_up_for_this_very_act(
    world: World, action: SensitiveAction
) -> None:
    session, secret = _state(world, "mfa")
    caller = world.caller(session)
    with pytest.raises(ReauthenticationRequiredError) as info:
        world.kit.reauthenticate(caller, action)
    assert info.value.accepted == ("step_up_token",)
    # the password is not a proof when MFA is on, even right after login
    with pytest.raises(ReauthenticationRequiredError):
        world.kit.reauthenticate(caller, action, current_password=PASSWORD)
    # a step-up token for another act does not do
    other = next(a for a in ACTIONS if a is not action)
    assert secret is not None
    wrong = world.kit.step_up(caller, other, method="totp", code=world.totp(secret))
    with pytest.raises(InvalidStepUpTokenError):
        world.kit.reauthenticate(caller, action, step_up_token=wrong.token)
    world.clock.advance(timedelta(seconds=30))
    grant = world.kit.step_up(caller, action, method="totp", code=world.totp(secret))
    done = world.kit.reauthenticate(caller, action, step_up_token=grant.token)
    assert (done.action, done.proof) == (action, Proof.STEP_UP)
    # single use
    with pytest.raises(InvalidStepUpTokenError):
        world.kit.reauthenticate(caller, action, step_up_token=grant.token)


@pytest.mark.spec("ACC-6")
@pytest.mark.parametrize("action", ACTIONS)
def test_password_account_needs_the_password_even_right_after_login(
    world: World, action: SensitiveAction
) -> None:
    session, _ = _state(world, "password")
    caller = world.caller(session)
    with pytest.raises(ReauthenticationRequiredError) as info:
        world.kit.reauthenticate(caller, action)
    assert info.value.accepted == ("step_up_token", "current_password")
    with pytest.raises(InvalidPasswordError):
        world.kit.reauthenticate(caller, action, current_password="not the password")
    done = world.kit.reauthenticate(caller, action, current_password=PASSWORD)
    assert done.proof is Proof.PASSWORD


@pytest.mark.spec("ACC-6")
@pytest.mark.parametrize("action", ACTIONS)
def test_account_without_password_or_factor_needs_a_recent_login(
    world: World, action: SensitiveAction
) -> None:
    session, _ = _state(world, "neither")
    caller = world.caller(session)
    rule = REAUTH_TABLE[action]
    if rule.fresh_login:
        assert world.kit.reauthenticate(caller, action).proof is Proof.FRESH_LOGIN
    else:
        with pytest.raises(ReauthenticationRequiredError):
            world.kit.reauthenticate(caller, action)
    world.clock.advance(world.kit.policy.fresh_login + timedelta(seconds=1))
    with pytest.raises(ReauthenticationRequiredError) as info:
        world.kit.reauthenticate(caller, action)
    assert "current_password" not in info.value.accepted


@pytest.mark.spec("ACC-6")
@pytest.mark.parametrize("action", ACTIONS)
def test_a_refreshed_token_is_never_a_fresh_login(world: World, action: SensitiveAction) -> None:
    session, _ = _state(world, "neither")
    pair = world.kit.refresh(session.tokens.refresh_token)
    caller = world.kit.authenticate(f"Bearer {pair.access_token}")
    assert caller is not None
    with pytest.raises(ReauthenticationRequiredError):
        world.kit.reauthenticate(caller, action)


@pytest.mark.spec("ACC-6")
@pytest.mark.parametrize("action", ACTIONS)
def test_an_api_key_never_reauthenticates(world: World, action: SensitiveAction) -> None:
    session, _ = _state(world, "password")
    created = world.kit.create_api_key(
        world.caller(session), name="ci", scope="admin", current_password=PASSWORD
    )
    key_caller = world.kit.authenticate(created.key)
    assert isinstance(key_caller, Caller)
    assert key_caller.is_api_key
    with pytest.raises(PermissionDeniedError):
        world.kit.reauthenticate(key_caller, action, current_password=PASSWORD)


@pytest.mark.spec("ACC-6")
def test_no_mfa_and_an_old_login_cannot_mint_a_key_or_read_the_vault_without_the_password(
    world: World,
) -> None:
    session = world.register()
    world.clock.advance(timedelta(minutes=6))
    caller = world.caller(session)
    with pytest.raises(ReauthenticationRequiredError):
        world.kit.create_api_key(caller, name="stolen", scope="admin")
    auth = world.kit.authorize(caller, "vault.manage")
    sealed = world.kit.seal_secret(
        caller,
        auth,
        b"s3cret",
        associated_data="c1",
        secret_name="s3",
        current_password=PASSWORD,
    )
    with pytest.raises(ReauthenticationRequiredError):
        world.kit.open_secret(caller, auth, sealed, associated_data="c1", secret_name="s3")
    created = world.kit.create_api_key(caller, name="mine", scope="read", current_password=PASSWORD)
    assert created.key.startswith("af_")
    assert (
        world.kit.open_secret(
            caller,
            auth,
            sealed,
            associated_data="c1",
            secret_name="s3",
            current_password=PASSWORD,
        )
        == b"s3cret"
    )


@pytest.mark.spec("ACC-6")
@pytest.mark.parametrize("kind", ["mfa", "password", "neither"])
def test_the_accepted_proofs_are_the_table_row_for_the_account(world: World, kind: str) -> None:
    session, _ = _state(world, kind)
    caller = world.caller(session)
    user = world.kit.get_user(session.user.user_id)
    for action in ACTIONS:
        accepted = world.kit.accepted_proofs(caller, action.value)
        assert accepted == REAUTH_TABLE[action].accepted(
            mfa_enabled=user.mfa_enabled, has_password=user.has_password
        )
        assert (Proof.PASSWORD in accepted) is (kind == "password")


def test_an_unknown_act_or_a_caller_that_is_no_caller_is_a_caller_error(world: World) -> None:
    session, secret = _state(world, "mfa")
    caller = world.caller(session)
    assert secret is not None
    with pytest.raises(ValueError, match=r"not a sensitive action: 'account\.steal'"):
        world.kit.accepted_proofs(caller, "account.steal")
    with pytest.raises(ValueError, match="not a sensitive action"):
        world.kit.step_up(caller, "account.steal", method="totp", code=world.totp(secret))
    with pytest.raises(TypeError, match="caller must be a Caller"):
        world.kit.accepted_proofs(session, ACTIONS[0])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"method": "sms", "code": "123456"}, "method must be totp, backup_code or passkey"),
        ({"method": "passkey"}, "a passkey answer needs the credential"),
        ({"method": "totp"}, "a code answer needs the code"),
        ({"method": "backup_code", "code": 12345678}, "a code answer needs the code"),
    ],
)
def test_a_step_up_without_its_method_or_answer_is_a_caller_error(
    world: World, arguments: dict[str, object], message: str
) -> None:
    session, _ = _state(world, "mfa")
    with pytest.raises(ValueError, match=message):
        world.kit.step_up(world.caller(session), ACTIONS[0], **arguments)  # type: ignore[arg-type]
    assert world.events.of("mfa.step_up_verified") == []


@pytest.mark.spec("MFA-6")
def test_without_passkeys_a_passkey_step_up_is_a_wrong_answer(make_world: WorldMaker) -> None:
    world = make_world(policy=kit_policy(passkeys=None))
    session, _ = _state(world, "mfa")
    with pytest.raises(InvalidMfaCodeError) as info:
        world.kit.step_up(
            world.caller(session), ACTIONS[0], method="passkey", credential={"id": "x"}
        )
    assert info.value.reason == "unsupported_method"
    (refused,) = world.events.of("mfa.step_up_verified")
    assert refused.details["reason"] == "unsupported_method"
