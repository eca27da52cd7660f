"""Passkeys (WebAuthn) over the ``webauthn`` package (PK-1..PK-4, MFA-5).

Typical wiring::

    policy = PasskeyPolicy(rp_id="example.eu", rp_name="Example",
                           allowed_origins=("https://app.example.eu",))
    clock = SystemClock()
    rp = PasskeyRelyingParty(policy, challenges=MemoryPasskeyChallengeStore(), clock=clock)
    passkeys = PasskeyManager(rp, credentials=MemoryPasskeyCredentialStore(), clock=clock)

    options = passkeys.start_registration("user-1", user_name="ana@example.eu")
    credential = passkeys.finish_registration(browser_response, user_id="user-1", name="Laptop")

    options = passkeys.start_login()              # usernameless
    login = passkeys.finish_login(browser_response)  # login.user_id, login.satisfies_mfa
"""

from storno_security.passkeys.ceremonies import (
    MFA_METHOD,
    USER_HANDLE_BYTES,
    PasskeyOptions,
    PasskeyRelyingParty,
    VerifiedPasskeyLogin,
    new_user_handle,
)
from storno_security.passkeys.manager import PasskeyManager
from storno_security.passkeys.policy import (
    MAX_CHALLENGE_LIFETIME,
    SUPPORTED_ALGORITHMS,
    PasskeyPolicy,
)
from storno_security.passkeys.storage import (
    ChallengePurpose,
    PasskeyChallenge,
    PasskeyChallengeStore,
    PasskeyCredential,
    PasskeyCredentialStore,
    UseOutcome,
    credential_key,
)

__all__ = [
    "MAX_CHALLENGE_LIFETIME",
    "MFA_METHOD",
    "SUPPORTED_ALGORITHMS",
    "USER_HANDLE_BYTES",
    "ChallengePurpose",
    "PasskeyChallenge",
    "PasskeyChallengeStore",
    "PasskeyCredential",
    "PasskeyCredentialStore",
    "PasskeyManager",
    "PasskeyOptions",
    "PasskeyPolicy",
    "PasskeyRelyingParty",
    "UseOutcome",
    "VerifiedPasskeyLogin",
    "credential_key",
    "new_user_handle",
]
