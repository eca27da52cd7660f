"""Passkey ceremonies with real ceremony data from the software authenticator (PK-1..PK-4,
MFA-5)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import attrs
import cbor2
import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import (
    InvalidPasskeyError,
    PasskeyCloneSuspectedError,
    StoreUnavailableError,
)
from storno_security.passkeys import (
    PasskeyCredential,
    PasskeyManager,
    PasskeyPolicy,
    PasskeyRelyingParty,
    VerifiedPasskeyLogin,
    ceremonies,
)
from storno_security.stores.memory import (
    MemoryPasskeyChallengeStore,
    MemoryPasskeyCredentialStore,
)
from tests.passkeys.authenticator import SoftAuthenticator, b64url, b64url_decode
from tests.passkeys.conftest import ORIGIN, RP_ID, make_policy

USER = "user-ana"
OTHER = "user-bob"


def register(
    manager: PasskeyManager,
    authenticator: SoftAuthenticator,
    user_id: str = USER,
    *,
    name: str = "Laptop",
) -> PasskeyCredential:
    options = manager.start_registration(user_id, user_name=f"{user_id}@example.eu")
    response = authenticator.create(options.as_dict(), origin=ORIGIN)
    return manager.finish_registration(response, user_id=user_id, name=name)


def reason_of(excinfo: pytest.ExceptionInfo[InvalidPasskeyError]) -> str:
    return excinfo.value.reason


# --- the happy paths -------------------------------------------------------------------------


@pytest.mark.spec("PK-1")
@pytest.mark.spec("PK-3")
@pytest.mark.parametrize("alg", ["ES256", "RS256"])
@pytest.mark.parametrize("attestation", ["none", "packed"])
def test_register_then_log_in(
    manager: PasskeyManager,
    credentials: MemoryPasskeyCredentialStore,
    clock: FrozenClock,
    alg: Any,
    attestation: Any,
) -> None:
    authenticator = SoftAuthenticator(alg=alg, attestation=attestation)
    credential = register(manager, authenticator)
    (key,) = authenticator.keys.values()
    assert credential.credential_id == key.credential_id
    assert credential.user_id == USER
    assert credential.user_handle == key.user_handle
    assert credential.public_key == key.cose_public_key()
    assert credential.sign_count == 0
    assert credential.transports == ("hybrid", "internal")
    assert credential.aaguid == str(uuid.UUID(bytes=authenticator.aaguid))
    assert (credential.backup_eligible, credential.backed_up) == (False, False)
    assert credential.name == "Laptop"
    assert credential.created_at == clock.now()
    assert credentials.get(credential.credential_id) == credential

    clock.advance(60)
    options = manager.start_login(USER)
    login = manager.finish_login(authenticator.get(options.as_dict(), origin=ORIGIN))
    assert login == VerifiedPasskeyLogin(
        user_id=USER,
        credential_id=credential.credential_id,
        sign_count=1,
        backed_up=False,
        used_at=clock.now(),
        satisfies_mfa=True,
    )
    stored = credentials.get(credential.credential_id)
    assert stored is not None
    assert (stored.sign_count, stored.last_used_at) == (1, clock.now())


@pytest.mark.spec("PK-3")
def test_backup_flags_are_stored(manager: PasskeyManager) -> None:
    authenticator = SoftAuthenticator(backup_eligible=True, backed_up=True, counter_step=0)
    credential = register(manager, authenticator)
    assert (credential.backup_eligible, credential.backed_up) == (True, True)
    # a synced passkey without a counter: 0 then 0 is accepted, not a regression
    for _ in range(2):
        login = manager.finish_login(
            authenticator.get(manager.start_login().as_dict(), origin=ORIGIN)
        )
        assert (login.sign_count, login.backed_up) == (0, True)


@pytest.mark.spec("PK-1")
def test_registration_options_follow_the_policy(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    first = register(manager, authenticator)
    options = manager.start_registration(USER, user_name="ana@example.eu").as_dict()
    assert options["rp"] == {"id": RP_ID, "name": "Storno"}
    assert options["user"]["name"] == "ana@example.eu"
    # the user handle is random, 32 bytes, and stable for the user
    assert b64url_decode(options["user"]["id"]) == first.user_handle
    assert len(first.user_handle) == 32
    assert first.user_handle != USER.encode()
    assert options["excludeCredentials"] == [
        {
            "id": b64url(first.credential_id),
            "type": "public-key",
            "transports": ["hybrid", "internal"],
        }
    ]
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert [p["alg"] for p in options["pubKeyCredParams"]] == [-8, -7, -257]
    assert options["timeout"] == 300_000
    other = manager.start_registration(OTHER, user_name="bob@example.eu").as_dict()
    assert other["user"]["id"] != options["user"]["id"]
    assert other["excludeCredentials"] == []


@pytest.mark.spec("PK-2")
def test_challenges_are_random_and_long(manager: PasskeyManager, clock: FrozenClock) -> None:
    seen = set()
    for _ in range(20):
        options = manager.start_login()
        challenge = b64url_decode(options.as_dict()["challenge"])
        assert len(challenge) >= 32
        seen.add(challenge)
        assert options.expires_at == clock.now() + timedelta(minutes=5)
    assert len(seen) == 20


@pytest.mark.spec("PK-4")
def test_login_by_email_lists_the_users_credentials(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    first = register(manager, authenticator)
    second = register(manager, authenticator, name="Phone")
    register(manager, SoftAuthenticator(), OTHER)
    options = manager.start_login(USER).as_dict()
    assert options["rpId"] == RP_ID
    assert options["userVerification"] == "required"
    assert {c["id"] for c in options["allowCredentials"]} == {
        b64url(first.credential_id),
        b64url(second.credential_id),
    }
    login = manager.finish_login(
        authenticator.get(options, origin=ORIGIN, credential_id=second.credential_id)
    )
    assert (login.user_id, login.credential_id) == (USER, second.credential_id)


@pytest.mark.spec("PK-4")
def test_usernameless_login(manager: PasskeyManager, authenticator: SoftAuthenticator) -> None:
    register(manager, SoftAuthenticator(), OTHER)
    credential = register(manager, authenticator)
    options = manager.start_login().as_dict()
    assert options["allowCredentials"] == []
    login = manager.finish_login(authenticator.get(options, origin=ORIGIN))
    assert (login.user_id, login.credential_id) == (USER, credential.credential_id)


# --- the ways a ceremony can be wrong --------------------------------------------------------


@pytest.mark.spec("PK-1")
def test_wrong_origin_is_refused(manager: PasskeyManager, authenticator: SoftAuthenticator) -> None:
    options = manager.start_registration(USER, user_name="ana").as_dict()
    response = authenticator.create(options, origin="https://evil.example")
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_registration(response, user_id=USER, name="x")
    assert reason_of(excinfo) == "origin"

    register(manager, authenticator)
    options = manager.start_login(USER).as_dict()
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(authenticator.get(options, origin="https://app.storno.example.evil"))
    assert reason_of(excinfo) == "origin"


@pytest.mark.spec("PK-1")
def test_cross_origin_frames_are_refused_unless_allowed(
    manager: PasskeyManager, authenticator: SoftAuthenticator, clock: FrozenClock
) -> None:
    register(manager, authenticator)
    authenticator.cross_origin = True
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(authenticator.get(manager.start_login().as_dict(), origin=ORIGIN))
    assert reason_of(excinfo) == "cross_origin"
    with pytest.raises(InvalidPasskeyError) as excinfo:
        register(manager, authenticator)
    assert reason_of(excinfo) == "cross_origin"

    rp = PasskeyRelyingParty(
        make_policy(allow_cross_origin=True), challenges=MemoryPasskeyChallengeStore(), clock=clock
    )
    permissive = PasskeyManager(rp, credentials=MemoryPasskeyCredentialStore(), clock=clock)
    framed = SoftAuthenticator(cross_origin=True)
    register(permissive, framed)
    assert permissive.finish_login(framed.get(permissive.start_login().as_dict(), origin=ORIGIN))


@pytest.mark.spec("PK-1")
def test_wrong_rp_id_is_refused(manager: PasskeyManager, authenticator: SoftAuthenticator) -> None:
    options = manager.start_registration(USER, user_name="ana").as_dict()
    response = authenticator.create(options, origin=ORIGIN, rp_id="evil.example")
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_registration(response, user_id=USER, name="x")
    assert reason_of(excinfo) == "rp_id"

    register(manager, authenticator)
    options = manager.start_login(USER).as_dict()
    credential_id = next(k for k, v in authenticator.keys.items() if v.rp_id == RP_ID)
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(
            authenticator.get(
                options, origin=ORIGIN, credential_id=credential_id, rp_id="x.example"
            )
        )
    assert reason_of(excinfo) == "rp_id"


@pytest.mark.spec("PK-2")
def test_replayed_challenge_is_refused(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    options = manager.start_registration(USER, user_name="ana").as_dict()
    response = authenticator.create(options, origin=ORIGIN)
    manager.finish_registration(response, user_id=USER, name="x")
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_registration(response, user_id=USER, name="x")
    assert reason_of(excinfo) == "challenge"

    options = manager.start_login().as_dict()
    response = authenticator.get(options, origin=ORIGIN)
    manager.finish_login(response)
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(response)
    assert reason_of(excinfo) == "challenge"


@pytest.mark.spec("PK-2")
def test_a_failed_attempt_burns_the_challenge(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    register(manager, authenticator)
    options = manager.start_login().as_dict()
    with pytest.raises(InvalidPasskeyError):
        manager.finish_login(authenticator.get(options, origin=ORIGIN, uv=False))
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(authenticator.get(options, origin=ORIGIN))
    assert reason_of(excinfo) == "challenge"


@pytest.mark.spec("PK-2")
@pytest.mark.parametrize("ceremony", ["registration", "login"])
def test_expired_challenge_is_refused(
    manager: PasskeyManager,
    authenticator: SoftAuthenticator,
    clock: FrozenClock,
    ceremony: str,
) -> None:
    def attempt(age: timedelta) -> None:
        if ceremony == "registration":
            options = manager.start_registration(USER, user_name="ana").as_dict()
            clock.advance(age)
            response = authenticator.create(options, origin=ORIGIN)
            manager.finish_registration(response, user_id=USER, name="x")
        else:
            options = manager.start_login().as_dict()
            clock.advance(age)
            manager.finish_login(authenticator.get(options, origin=ORIGIN))

    register(manager, authenticator)
    attempt(timedelta(minutes=5) - timedelta(seconds=1))  # just in time
    with pytest.raises(InvalidPasskeyError) as excinfo:
        attempt(timedelta(minutes=5))
    assert reason_of(excinfo) == "challenge_expired"


@pytest.mark.spec("PK-2")
def test_a_registration_challenge_does_not_log_in(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    register(manager, authenticator)
    options = manager.start_registration(USER, user_name="ana").as_dict()
    options["rpId"] = RP_ID
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(authenticator.get(options, origin=ORIGIN))
    assert reason_of(excinfo) == "challenge"


@pytest.mark.spec("PK-1")
def test_tampered_signature_is_refused(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    register(manager, authenticator)
    response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN)
    signature = bytearray(b64url_decode(response["response"]["signature"]))
    signature[-1] ^= 0x01
    response["response"]["signature"] = b64url(bytes(signature))
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(response)
    assert reason_of(excinfo) == "signature"


@pytest.mark.spec("PK-1")
def test_packed_attestation_with_a_bad_signature_is_refused(manager: PasskeyManager) -> None:
    authenticator = SoftAuthenticator(attestation="packed")
    options = manager.start_registration(USER, user_name="ana").as_dict()
    response = authenticator.create(options, origin=ORIGIN)
    other = SoftAuthenticator(attestation="packed").create(
        {**options, "challenge": options["challenge"]}, origin=ORIGIN
    )
    # the first authenticator's key with the second's attestation statement: no match
    mine = cbor2.loads(b64url_decode(response["response"]["attestationObject"]))
    theirs = cbor2.loads(b64url_decode(other["response"]["attestationObject"]))
    mine["attStmt"] = theirs["attStmt"]
    response["response"]["attestationObject"] = b64url(cbor2.dumps(mine))
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_registration(response, user_id=USER, name="x")
    assert reason_of(excinfo) == "signature"


@pytest.mark.spec("PK-3")
def test_user_verification_is_required(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    options = manager.start_registration(USER, user_name="ana").as_dict()
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_registration(
            authenticator.create(options, origin=ORIGIN, uv=False), user_id=USER, name="x"
        )
    assert reason_of(excinfo) == "user_verification"

    credential = register(manager, authenticator)
    options = manager.start_login().as_dict()
    credential_id = credential.credential_id
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(
            authenticator.get(options, origin=ORIGIN, credential_id=credential_id, uv=False)
        )
    assert reason_of(excinfo) == "user_verification"


@pytest.mark.spec("PK-3")
def test_user_presence_is_required(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    register(manager, authenticator)
    options = manager.start_login().as_dict()
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(authenticator.get(options, origin=ORIGIN, up=False))
    assert reason_of(excinfo) == "user_presence"


@pytest.mark.spec("PK-3")
def test_sign_count_regression_flags_the_credential(
    manager: PasskeyManager,
    authenticator: SoftAuthenticator,
    credentials: MemoryPasskeyCredentialStore,
    clock: FrozenClock,
) -> None:
    credential = register(manager, authenticator)
    for _ in range(3):
        manager.finish_login(authenticator.get(manager.start_login().as_dict(), origin=ORIGIN))
    stored = credentials.get(credential.credential_id)
    assert stored is not None
    assert stored.sign_count == 3
    # a clone that still counts from 3: a validly signed assertion that does not grow
    clone_response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN, sign_count=3)
    with pytest.raises(PasskeyCloneSuspectedError) as excinfo:
        manager.finish_login(clone_response)
    assert excinfo.value.reason == "sign_count"
    assert excinfo.value.credential_id == credential.credential_id
    assert excinfo.value.user_id == USER
    stored = credentials.get(credential.credential_id)
    assert stored is not None
    assert stored.flagged_at == clock.now()
    assert stored.sign_count == 3
    # the genuine authenticator is refused too until the user acts
    with pytest.raises(InvalidPasskeyError) as flagged:
        manager.finish_login(authenticator.get(manager.start_login().as_dict(), origin=ORIGIN))
    assert reason_of(flagged) == "flagged"
    assert manager.has_passkeys(USER) is False
    assert manager.start_login(USER).as_dict()["allowCredentials"] == []


@pytest.mark.spec("PK-3")
def test_a_forged_low_count_cannot_flag_a_credential(
    manager: PasskeyManager,
    authenticator: SoftAuthenticator,
    credentials: MemoryPasskeyCredentialStore,
) -> None:
    credential = register(manager, authenticator)
    manager.finish_login(authenticator.get(manager.start_login().as_dict(), origin=ORIGIN))
    response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN, sign_count=0)
    signature = bytearray(b64url_decode(response["response"]["signature"]))
    signature[-1] ^= 0xFF
    response["response"]["signature"] = b64url(bytes(signature))
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(response)
    assert reason_of(excinfo) == "signature"
    stored = credentials.get(credential.credential_id)
    assert stored is not None
    assert stored.flagged_at is None


@pytest.mark.spec("PK-4")
def test_credential_of_another_user_is_refused(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    register(manager, SoftAuthenticator(), USER)
    bobs = register(manager, authenticator, OTHER)
    # options for Ana (login by email), answered with Bob's credential
    options = manager.start_login(USER).as_dict()
    response = authenticator.get(options, origin=ORIGIN, credential_id=bobs.credential_id)
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(response)
    assert reason_of(excinfo) == "wrong_user"
    # Bob's passkey as the second factor of Ana's password login
    options = manager.start_login().as_dict()
    response = authenticator.get(options, origin=ORIGIN, credential_id=bobs.credential_id)
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.verify_second_factor(response, user_id=USER)
    assert reason_of(excinfo) == "wrong_user"


@pytest.mark.spec("PK-1")
def test_registration_is_bound_to_the_user_of_the_options(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    options = manager.start_registration(USER, user_name="ana").as_dict()
    response = authenticator.create(options, origin=ORIGIN)
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_registration(response, user_id=OTHER, name="x")
    assert reason_of(excinfo) == "wrong_user"


@pytest.mark.spec("PK-4")
def test_usernameless_login_needs_the_matching_user_handle(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    credential = register(manager, authenticator)
    options = manager.start_login().as_dict()
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(authenticator.get(options, origin=ORIGIN, include_user_handle=False))
    assert reason_of(excinfo) == "user_handle"

    authenticator.keys[credential.credential_id].user_handle = b"someone else's handle"
    options = manager.start_login().as_dict()
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(authenticator.get(options, origin=ORIGIN))
    assert reason_of(excinfo) == "user_handle"


def test_unknown_credential_is_refused_and_burns_the_challenge(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    register(manager, authenticator)
    stranger = SoftAuthenticator()
    stranger.create(
        manager.start_registration("ghost", user_name="ghost").as_dict(), origin=ORIGIN
    )  # never finished: the server does not know this credential
    options = manager.start_login().as_dict()
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(stranger.get(options, origin=ORIGIN))
    assert reason_of(excinfo) == "unknown_credential"
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(authenticator.get(options, origin=ORIGIN))
    assert reason_of(excinfo) == "challenge"


def test_duplicate_registration_is_refused(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    credential = register(manager, authenticator)
    # an authenticator that reuses a registered credential id (ignoring excludeCredentials)
    options = manager.start_registration(OTHER, user_name="bob").as_dict()
    response = SoftAuthenticator().create(
        options, origin=ORIGIN, credential_id=credential.credential_id
    )
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_registration(response, user_id=OTHER, name="x")
    assert reason_of(excinfo) == "duplicate"
    assert manager.list_passkeys(OTHER) == []


# --- MFA-5 -----------------------------------------------------------------------------------


@pytest.mark.spec("MFA-5")
def test_a_passkey_login_satisfies_mfa(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    register(manager, authenticator)
    login = manager.finish_login(authenticator.get(manager.start_login().as_dict(), origin=ORIGIN))
    assert login.satisfies_mfa is True
    assert login.method == "passkey"


@pytest.mark.spec("MFA-5")
def test_policy_can_require_a_second_factor_after_a_passkey(clock: FrozenClock) -> None:
    rp = PasskeyRelyingParty(
        make_policy(passkey_satisfies_mfa=False),
        challenges=MemoryPasskeyChallengeStore(),
        clock=clock,
    )
    manager = PasskeyManager(rp, credentials=MemoryPasskeyCredentialStore(), clock=clock)
    authenticator = SoftAuthenticator()
    register(manager, authenticator)
    login = manager.finish_login(authenticator.get(manager.start_login().as_dict(), origin=ORIGIN))
    assert login.satisfies_mfa is False


@pytest.mark.spec("MFA-5")
def test_a_passkey_as_the_second_factor_of_a_password_login(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    assert manager.has_passkeys(USER) is False
    credential = register(manager, authenticator)
    assert manager.has_passkeys(USER) is True  # so mfa_methods may include "passkey"
    options = manager.start_login(USER).as_dict()  # after the password step
    factor = manager.verify_second_factor(authenticator.get(options, origin=ORIGIN), user_id=USER)
    assert (factor.user_id, factor.method, factor.credential_id) == (
        USER,
        "passkey",
        credential.credential_id,
    )


# --- management ------------------------------------------------------------------------------


def test_list_rename_delete(manager: PasskeyManager, clock: FrozenClock) -> None:
    first = register(manager, SoftAuthenticator(), name="Laptop")
    clock.advance(1)
    second = register(manager, SoftAuthenticator(), name="Phone")
    bobs = register(manager, SoftAuthenticator(), OTHER)
    assert [c.credential_id for c in manager.list_passkeys(USER)] == [
        first.credential_id,
        second.credential_id,
    ]
    assert manager.rename_passkey(USER, first.credential_id, name="  Work laptop ") is True
    assert manager.list_passkeys(USER)[0].name == "Work laptop"
    assert manager.rename_passkey(USER, bobs.credential_id, name="mine now") is False
    assert manager.delete_passkey(USER, bobs.credential_id) is False
    assert manager.delete_passkey(USER, first.credential_id) is True
    assert manager.delete_passkey(USER, first.credential_id) is False
    assert [c.credential_id for c in manager.list_passkeys(USER)] == [second.credential_id]
    assert [c.name for c in manager.list_passkeys(OTHER)] == ["Laptop"]
    for bad in ("", "   ", "x" * 65, "tab\there"):
        with pytest.raises(ValueError, match="name"):
            manager.rename_passkey(USER, second.credential_id, name=bad)


def test_challenges_are_stored_hashed(
    manager: PasskeyManager, challenges: MemoryPasskeyChallengeStore, clock: FrozenClock
) -> None:
    options = manager.start_login(USER)
    challenge = b64url_decode(options.as_dict()["challenge"])
    record = challenges.consume(hashlib.sha256(challenge).hexdigest(), now=clock.now())
    assert record is not None
    assert record.user_id == USER


def test_unknown_stored_transports_are_left_out_of_options(
    manager: PasskeyManager,
    authenticator: SoftAuthenticator,
    credentials: MemoryPasskeyCredentialStore,
) -> None:
    credential = register(manager, authenticator)
    credentials.delete(credential.credential_id, user_id=USER)
    credentials.add(attrs.evolve(credential, transports=("carrier-pigeon", "usb")))
    (allowed,) = manager.start_login(USER).as_dict()["allowCredentials"]
    assert allowed["transports"] == ["usb"]


@pytest.mark.spec("PK-3")
def test_the_store_decides_a_race_on_the_count(
    rp: PasskeyRelyingParty, authenticator: SoftAuthenticator, clock: FrozenClock
) -> None:
    """Two logins verified against the same stored count: only the store's conditional update
    decides, so the one that loses the race is refused and the credential flagged."""

    class StaleReads(MemoryPasskeyCredentialStore):
        stale: PasskeyCredential | None = None

        def get(self, credential_id: bytes) -> PasskeyCredential | None:
            return self.stale or super().get(credential_id)

    store = StaleReads()
    manager = PasskeyManager(rp, credentials=store, clock=clock)
    credential = register(manager, authenticator)
    store.stale = credential  # every login now reads sign count 0
    first = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN, sign_count=7)
    second = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN, sign_count=7)
    assert manager.finish_login(first).sign_count == 7
    with pytest.raises(PasskeyCloneSuspectedError):
        manager.finish_login(second)
    store.stale = None
    stored = store.get(credential.credential_id)
    assert stored is not None
    assert stored.flagged_at == clock.now()


# --- refused arguments and responses -----------------------------------------------------------


@pytest.mark.spec("PK-1")
def test_an_oversized_response_is_refused_before_parsing(
    manager: PasskeyManager, authenticator: SoftAuthenticator, policy: PasskeyPolicy
) -> None:
    register(manager, authenticator)
    response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN)
    response["clientExtensionResults"] = {"padding": "x" * policy.max_response_bytes}
    for oversized in (response, json.dumps(response)):
        with pytest.raises(InvalidPasskeyError) as excinfo:
            manager.finish_login(oversized)
        assert reason_of(excinfo) == "too_large"
    options = manager.start_registration(USER, user_name="ana").as_dict()
    created = authenticator.create(options, origin=ORIGIN)
    created["clientExtensionResults"] = {"padding": "x" * policy.max_response_bytes}
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_registration(json.dumps(created), user_id=USER, name="x")
    assert reason_of(excinfo) == "too_large"


def test_a_mapping_that_is_not_json_is_malformed(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    register(manager, authenticator)
    response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN)
    response["clientExtensionResults"] = {"raw": b"\x00bytes"}
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(response)
    assert reason_of(excinfo) == "malformed"
    circular: dict[str, Any] = {}
    circular["self"] = circular
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(circular)
    assert reason_of(excinfo) == "malformed"


def test_a_response_that_is_neither_text_nor_a_mapping_is_a_type_error(
    manager: PasskeyManager,
) -> None:
    with pytest.raises(TypeError, match="not bytes"):
        manager.finish_login(b"{}")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not list"):
        manager.finish_registration([], user_id=USER, name="x")  # type: ignore[arg-type]


@pytest.mark.spec("PK-2")
@pytest.mark.parametrize("ceremony", ["registration", "login"])
def test_an_empty_challenge_is_malformed(
    manager: PasskeyManager, authenticator: SoftAuthenticator, ceremony: str
) -> None:
    register(manager, authenticator)
    if ceremony == "registration":
        options = manager.start_registration(USER, user_name="ana").as_dict()
        response = authenticator.create({**options, "challenge": ""}, origin=ORIGIN)
        with pytest.raises(InvalidPasskeyError) as excinfo:
            manager.finish_registration(response, user_id=USER, name="x")
    else:
        options = manager.start_login().as_dict()
        response = authenticator.get({**options, "challenge": ""}, origin=ORIGIN)
        with pytest.raises(InvalidPasskeyError) as excinfo:
            manager.finish_login(response)
    assert reason_of(excinfo) == "malformed"


def test_an_assertion_without_a_credential_id_is_malformed(
    manager: PasskeyManager, rp: PasskeyRelyingParty, authenticator: SoftAuthenticator
) -> None:
    register(manager, authenticator)
    response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN)
    response["id"] = response["rawId"] = ""
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(response)
    assert reason_of(excinfo) == "malformed"
    with pytest.raises(InvalidPasskeyError) as excinfo:
        rp.credential_id_of(response)
    assert reason_of(excinfo) == "malformed"


def test_the_credential_id_of_an_assertion_is_read_without_consuming_its_challenge(
    manager: PasskeyManager, rp: PasskeyRelyingParty, authenticator: SoftAuthenticator
) -> None:
    credential = register(manager, authenticator)
    response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN)
    assert rp.credential_id_of(json.dumps(response)) == credential.credential_id
    assert manager.finish_login(response).credential_id == credential.credential_id


@pytest.mark.spec("PK-4")
def test_verify_authentication_checks_the_assertion_against_the_given_credential(
    manager: PasskeyManager,
    rp: PasskeyRelyingParty,
    authenticator: SoftAuthenticator,
    clock: FrozenClock,
) -> None:
    credential = register(manager, authenticator)
    response = authenticator.get(manager.start_login(USER).as_dict(), origin=ORIGIN)
    login = rp.verify_authentication(response, credential=credential, expected_user_id=USER)
    assert login == VerifiedPasskeyLogin(
        user_id=USER,
        credential_id=credential.credential_id,
        sign_count=1,
        backed_up=False,
        used_at=clock.now(),
        satisfies_mfa=True,
    )


@pytest.mark.spec("PK-4")
def test_an_assertion_naming_another_credential_is_refused(
    manager: PasskeyManager, rp: PasskeyRelyingParty, authenticator: SoftAuthenticator
) -> None:
    first = register(manager, authenticator)
    second = register(manager, authenticator, name="Phone")
    options = manager.start_login(USER).as_dict()
    response = authenticator.get(options, origin=ORIGIN, credential_id=first.credential_id)
    with pytest.raises(InvalidPasskeyError) as excinfo:
        rp.verify_authentication(response, credential=second)
    assert reason_of(excinfo) == "credential_mismatch"
    with pytest.raises(InvalidPasskeyError) as replay:  # the challenge was burnt all the same
        rp.verify_authentication(response, credential=first)
    assert reason_of(replay) == "challenge"


@pytest.mark.spec("PK-4")
def test_a_login_by_email_needs_no_user_handle(
    manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    """A challenge bound to a user already names the user: an authenticator that returns no
    user handle (a non-discoverable credential) logs in."""
    credential = register(manager, authenticator)
    options = manager.start_login(USER).as_dict()
    login = manager.finish_login(
        authenticator.get(options, origin=ORIGIN, include_user_handle=False)
    )
    assert (login.user_id, login.credential_id) == (USER, credential.credential_id)


def test_verify_authentication_refuses_bad_arguments(
    manager: PasskeyManager, rp: PasskeyRelyingParty, authenticator: SoftAuthenticator
) -> None:
    credential = register(manager, authenticator)
    response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN)
    with pytest.raises(TypeError, match="credential must be a PasskeyCredential"):
        rp.verify_authentication(response, credential=credential.credential_id)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="user_id must not be empty"):
        rp.verify_authentication(response, credential=credential, expected_user_id="")
    with pytest.raises(TypeError, match="user_id must be a str, not int"):
        rp.verify_login(response, lookup=lambda _: credential, expected_user_id=7)  # type: ignore[arg-type]
    # none of these touched the challenge: the genuine login still goes through
    assert manager.finish_login(response).credential_id == credential.credential_id


def test_a_lookup_that_returns_something_else_is_a_type_error(
    manager: PasskeyManager, rp: PasskeyRelyingParty, authenticator: SoftAuthenticator
) -> None:
    credential = register(manager, authenticator)
    response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN)
    with pytest.raises(TypeError, match="lookup must return a PasskeyCredential or None"):
        rp.verify_login(response, lookup=lambda _: attrs.asdict(credential))  # type: ignore[arg-type,return-value]


def test_registration_options_refuse_bad_arguments(
    rp: PasskeyRelyingParty, manager: PasskeyManager, authenticator: SoftAuthenticator
) -> None:
    handle = bytes(32)
    with pytest.raises(ValueError, match="user_name must be a non-empty str"):
        rp.registration_options(USER, user_name="", user_handle=handle)
    for bad_handle in (b"", bytes(65), "handle"):
        with pytest.raises(ValueError, match="user_handle must be 1 to 64 bytes"):
            rp.registration_options(USER, user_name="ana", user_handle=bad_handle)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="credentials must be PasskeyCredential objects"):
        rp.registration_options(
            USER,
            user_name="ana",
            user_handle=handle,
            existing=[b"credential-id"],  # type: ignore[list-item]
        )
    with pytest.raises(ValueError, match="user_id must not be empty"):
        rp.registration_options("", user_name="ana", user_handle=handle)
    with pytest.raises(TypeError, match="user_id must be a str, not NoneType"):
        rp.registration_options(None, user_name="ana", user_handle=handle)  # type: ignore[arg-type]
    # the longest handle WebAuthn allows is accepted
    options = rp.registration_options(USER, user_name="ana", user_handle=bytes(64)).as_dict()
    assert b64url_decode(options["user"]["id"]) == bytes(64)


def test_verify_registration_refuses_a_handle_that_is_not_bytes(
    rp: PasskeyRelyingParty, authenticator: SoftAuthenticator
) -> None:
    options = rp.registration_options(USER, user_name="ana", user_handle=bytes(32)).as_dict()
    response = authenticator.create(options, origin=ORIGIN)
    with pytest.raises(TypeError, match="user_handle must be bytes"):
        rp.verify_registration(response, user_id=USER, user_handle="AAAA", name="x")  # type: ignore[arg-type]
    credential = rp.verify_registration(response, user_id=USER, user_handle=bytes(32), name="x")
    assert credential.user_handle == bytes(32)


def test_a_passkey_name_must_be_text(rp: PasskeyRelyingParty) -> None:
    with pytest.raises(TypeError, match="name must be a str"):
        rp.check_name(b"Laptop")
    assert rp.check_name(" Laptop ") == "Laptop"


@pytest.mark.spec("PK-4")
def test_authentication_options_refuse_credentials_of_another_user(
    manager: PasskeyManager, rp: PasskeyRelyingParty, authenticator: SoftAuthenticator
) -> None:
    anas = register(manager, authenticator)
    with pytest.raises(ValueError, match="every credential must belong to user_id"):
        rp.authentication_options(user_id=OTHER, credentials=[anas])
    with pytest.raises(ValueError, match="every credential must belong to user_id"):
        rp.authentication_options(credentials=[anas])  # usernameless lists no credential
    with pytest.raises(TypeError, match="credentials must be PasskeyCredential objects"):
        rp.authentication_options(user_id=USER, credentials=[anas.credential_id])  # type: ignore[list-item]


def test_the_relying_party_and_manager_check_their_parts(
    rp: PasskeyRelyingParty,
    policy: PasskeyPolicy,
    challenges: MemoryPasskeyChallengeStore,
    credentials: MemoryPasskeyCredentialStore,
    clock: FrozenClock,
) -> None:
    with pytest.raises(TypeError, match="policy must be a PasskeyPolicy"):
        PasskeyRelyingParty(attrs.asdict(policy), challenges=challenges, clock=clock)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="relying_party must be a PasskeyRelyingParty"):
        PasskeyManager(policy, credentials=credentials, clock=clock)  # type: ignore[arg-type]
    assert rp.policy is policy
    manager = PasskeyManager(rp, credentials=credentials, clock=clock)
    assert repr(rp) == "PasskeyRelyingParty(rp_id='storno.example')"
    assert repr(manager) == "PasskeyManager(PasskeyRelyingParty(rp_id='storno.example'))"


@pytest.mark.spec("PK-3")
def test_user_verification_is_checked_again_after_webauthn(
    manager: PasskeyManager,
    authenticator: SoftAuthenticator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A webauthn that let an unverified user through would still be refused."""
    credential = register(manager, authenticator)
    real_registration = ceremonies.verify_registration_response
    real_authentication = ceremonies.verify_authentication_response

    def lax_registration(**kwargs: Any) -> Any:
        return real_registration(**{**kwargs, "require_user_verification": False})

    def lax_authentication(**kwargs: Any) -> Any:
        return real_authentication(**{**kwargs, "require_user_verification": False})

    monkeypatch.setattr(ceremonies, "verify_registration_response", lax_registration)
    monkeypatch.setattr(ceremonies, "verify_authentication_response", lax_authentication)
    options = manager.start_registration(USER, user_name="ana").as_dict()
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_registration(
            authenticator.create(options, origin=ORIGIN, uv=False), user_id=USER, name="x"
        )
    assert reason_of(excinfo) == "user_verification"
    options = manager.start_login().as_dict()
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(
            authenticator.get(
                options, origin=ORIGIN, credential_id=credential.credential_id, uv=False
            )
        )
    assert reason_of(excinfo) == "user_verification"
    assert [c.credential_id for c in manager.list_passkeys(USER)] == [credential.credential_id]


# --- the manager and its store -----------------------------------------------------------------


def test_a_failing_store_is_not_mistaken_for_a_duplicate(
    rp: PasskeyRelyingParty, authenticator: SoftAuthenticator, clock: FrozenClock
) -> None:
    class Unavailable(MemoryPasskeyCredentialStore):
        def add(self, credential: PasskeyCredential) -> None:
            raise StoreUnavailableError()

    manager = PasskeyManager(rp, credentials=Unavailable(), clock=clock)
    options = manager.start_registration(USER, user_name="ana").as_dict()
    with pytest.raises(StoreUnavailableError) as excinfo:
        manager.finish_registration(
            authenticator.create(options, origin=ORIGIN), user_id=USER, name="x"
        )
    assert excinfo.value.reason == "error"


@pytest.mark.spec("PK-3")
@pytest.mark.parametrize("meanwhile", ["flagged", "unknown"])
def test_a_passkey_flagged_or_deleted_during_the_login_is_refused(
    rp: PasskeyRelyingParty, authenticator: SoftAuthenticator, clock: FrozenClock, meanwhile: str
) -> None:
    """The login read the credential before another request flagged or deleted it: the store's
    conditional update refuses to record the use."""

    class StaleReads(MemoryPasskeyCredentialStore):
        stale: PasskeyCredential | None = None

        def get(self, credential_id: bytes) -> PasskeyCredential | None:
            return self.stale or super().get(credential_id)

    store = StaleReads()
    manager = PasskeyManager(rp, credentials=store, clock=clock)
    credential = register(manager, authenticator)
    store.stale = credential
    if meanwhile == "flagged":
        store.flag(credential.credential_id, now=clock.now())
    else:
        assert manager.delete_passkey(USER, credential.credential_id) is True
    response = authenticator.get(manager.start_login().as_dict(), origin=ORIGIN)
    with pytest.raises(InvalidPasskeyError) as excinfo:
        manager.finish_login(response)
    assert reason_of(excinfo) == meanwhile
    store.stale = None
    stored = store.get(credential.credential_id)
    if meanwhile == "flagged":
        assert stored is not None
        assert stored.sign_count == 0
    else:
        assert stored is None
