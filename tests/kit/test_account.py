"""The caller's own account: profile, address, TOTP enrolment, Google link (ACC-5, ACC-6,
MFA-1)."""

from __future__ import annotations

import secrets

import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import (
    AccountStateError,
    ConcurrentChangeError,
    ReauthenticationRequiredError,
)
from storno_security.oidc import GoogleIdTokenPolicy, GoogleIdTokenVerifier
from tests.kit.conftest import PASSWORD, RacedWorld, World, WorldMaker
from tests.oidc.provider import CLIENT_ID, FakeGoogle


@pytest.mark.parametrize("name", ["n" * 201, "Ana\x00", 7, None])
def test_a_display_name_is_at_most_200_characters_of_text(world: World, name: object) -> None:
    session = world.register()
    caller = world.caller(session)
    assert world.kit.update_profile(caller, name="n" * 200).name == "n" * 200
    with pytest.raises(ValueError, match="name must be at most 200 characters"):
        world.kit.update_profile(caller, name=name)  # type: ignore[arg-type]
    assert world.kit.get_user(session.user.user_id).name == "n" * 200


def test_a_profile_change_of_an_account_deleted_meanwhile_is_refused(raced: RacedWorld) -> None:
    session = raced.register()
    caller = raced.caller(session)
    raced.meanwhile.before(
        "update_user", lambda: raced.kit.delete_account(caller, current_password=PASSWORD)
    )
    with pytest.raises(ConcurrentChangeError) as info:
        raced.kit.update_profile(caller, name="Ana")
    assert info.value.reason == "changed_meanwhile"
    user = raced.kit.directory.get_user(session.user.user_id)
    assert user is not None
    assert (user.is_live, user.name) == (False, "")


@pytest.mark.spec("ACC-5")
@pytest.mark.spec("ACC-6")
def test_changing_to_the_same_address_changes_nothing(world: World) -> None:
    session = world.register()
    caller = world.caller(session)
    email = session.user.email or ""
    sent = len(world.mail.sent)
    with pytest.raises(ReauthenticationRequiredError):
        world.kit.change_email(caller, email.upper())  # still re-authenticated first
    same = world.kit.change_email(caller, email.upper(), current_password=PASSWORD)
    assert (same.email, same.email_confirmed) == (email, True)
    assert len(world.mail.sent) == sent
    assert world.kit.get_user(session.user.user_id).email_confirmed


@pytest.mark.spec("MFA-1")
def test_an_enrolment_cannot_be_confirmed_once_mfa_is_on(world: World) -> None:
    session = world.register()
    secret = world.enable_mfa(session)
    with pytest.raises(AccountStateError) as info:
        world.kit.confirm_totp_enrolment(world.caller(session), world.totp(secret))
    assert info.value.reason == "mfa_enabled"
    assert len(world.events.of("mfa.enabled")) == 1


@pytest.mark.spec("ACC-6")
def test_linking_a_workspace_google_account_records_its_domain(
    make_world: WorldMaker, clock: FrozenClock
) -> None:
    google = FakeGoogle()
    verifier = GoogleIdTokenVerifier(
        GoogleIdTokenPolicy(client_ids=(CLIENT_ID,), hosted_domains=("example.eu",)),
        fetcher=google,
        clock=clock,
    )
    world = make_world(google=verifier)
    session = world.register()
    subject = str(secrets.randbelow(10**20))
    token = google.token(clock.now(), sub=subject, hd="example.eu")
    linked = world.kit.link_google(world.caller(session), token, current_password=PASSWORD)
    assert linked.google_subject == subject
    (event,) = world.events.of("account.google_linked")
    assert dict(event.details) == {"method": "google", "hosted_domain": "example.eu"}
