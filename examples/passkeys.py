"""Passkeys, the server side: the options the browser needs, and what happens to its answer.

A full registration and login needs an authenticator (a phone, a security key, the OS password
manager) to sign the challenge. This example has none, so it shows the server's half: building
the registration and login options, and refusing answers that do not fit them. The library's
own test suite runs the complete ceremonies with a software authenticator.

Run: python examples/passkeys.py
"""

from __future__ import annotations

import base64
import json

from storno_security import InvalidPasskeyError, SystemClock
from storno_security.passkeys import PasskeyManager, PasskeyPolicy, PasskeyRelyingParty
from storno_security.stores.memory import (
    MemoryPasskeyChallengeStore,
    MemoryPasskeyCredentialStore,
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def main() -> None:
    clock = SystemClock()
    # The relying party id is the registrable domain the passkey belongs to; the origins are
    # the exact pages allowed to use it (https only, except http://localhost for development).
    policy = PasskeyPolicy(
        rp_id="example.eu", rp_name="Example", allowed_origins=("https://app.example.eu",)
    )
    rp = PasskeyRelyingParty(policy, challenges=MemoryPasskeyChallengeStore(), clock=clock)
    passkeys = PasskeyManager(rp, credentials=MemoryPasskeyCredentialStore(), clock=clock)

    # 1. Registration (the user is logged in). Send options.options_json to the page.
    options = passkeys.start_registration("user-1", user_name="ana@example.eu")
    create = options.as_dict()
    print("registration options for", create["rp"]["id"], "/", create["user"]["name"])
    challenge = create["challenge"]  # base64url, like every binary field of the options
    raw = base64.urlsafe_b64decode(challenge + "=" * (-len(challenge) % 4))
    print("  challenge:", len(raw), "random bytes")
    print("  expires at:", f"{options.expires_at:%H:%M:%S} UTC (single use)")
    print("  algorithms (COSE):", [p["alg"] for p in create["pubKeyCredParams"]])
    print("  authenticator selection:", create["authenticatorSelection"])
    # In the browser, with @simplewebauthn/browser or by hand:
    #   const credential = await navigator.credentials.create({publicKey: options});
    # (binary fields base64url-decoded first). The authenticator asks for a fingerprint, face or
    # PIN (user verification is required), makes a key pair for example.eu, and returns the
    # public key signed together with clientDataJSON: {type, challenge, origin}. The page posts
    # credential.toJSON() back, and the server calls:
    #   passkeys.finish_registration(body, user_id="user-1", name="Laptop")

    # 2. A look-alike site relays our options to its victim and posts the answer back. The
    #    browser wrote the page's real origin into clientDataJSON, so it does not match.
    client_data = {
        "type": "webauthn.create",
        "challenge": create["challenge"],
        "origin": "https://app.examp1e.eu",
    }
    forged = {
        "id": b64url(b"credential-1"),
        "rawId": b64url(b"credential-1"),
        "type": "public-key",
        "response": {
            "clientDataJSON": b64url(json.dumps(client_data).encode()),
            "attestationObject": b64url(b"not an attestation"),
        },
    }
    try:
        passkeys.finish_registration(forged, user_id="user-1", name="Laptop")
    except InvalidPasskeyError as exc:
        print("answer from another origin:", exc, f"(reason: {exc.reason})")
    # Every answer, good or bad, uses its challenge up: the same answer again is a replay.
    try:
        passkeys.finish_registration(forged, user_id="user-1", name="Laptop")
    except InvalidPasskeyError as exc:
        print("the same answer again:", exc, f"(reason: {exc.reason})")

    # 3. Login without a user name: no allowCredentials, the authenticator offers the passkeys it
    #    holds for example.eu. In the browser:
    #   const assertion = await navigator.credentials.get({publicKey: options});
    # and the server calls passkeys.finish_login(body) -> login.user_id, login.satisfies_mfa.
    login = passkeys.start_login().as_dict()
    print(
        "login options:",
        {"rpId": login["rpId"], "userVerification": login["userVerification"]},
        "allowCredentials:",
        login.get("allowCredentials", []),
    )
    print("user-1 has passkeys:", passkeys.has_passkeys("user-1"))


if __name__ == "__main__":
    main()
