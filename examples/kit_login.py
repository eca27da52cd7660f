"""The kit in a few lines: register, turn MFA on, and sign in with the second factor.

Run: python examples/kit_login.py
"""

from __future__ import annotations

from collections.abc import Callable
from time import time

import pyotp

from storno_security.errors import InvalidPasswordError
from storno_security.kit import Kit, KitKeys, KitPolicy, MfaRequired
from storno_security.stores.memory import memory_bundle

PASSPHRASE = "a long passphrase"  # noqa: S105 - the example's own

# -- the README's first example ---------------------------------------------------------------
kit = Kit(
    memory_bundle(),
    keys=KitKeys.generate(),
    policy=KitPolicy.for_api(issuer="https://api.example.eu", audience="example-api"),
)


def sign_in(email: str, password: str, ask_code: Callable[[], str]) -> str:
    result = kit.login(email, password)  # one error for every wrong input
    if isinstance(result, MfaRequired):  # MFA on: a TOTP or a backup code
        result = kit.verify_mfa(result.token, method="totp", code=ask_code())
    return result.tokens.access_token  # kit.authenticate("Bearer " + it)


# ---------------------------------------------------------------------------------------------


def main() -> None:
    registration = kit.register("ana@example.eu", PASSPHRASE)
    assert registration.session is not None
    caller = kit.authenticate(f"Bearer {registration.session.tokens.access_token}")
    assert caller is not None
    enrolment = kit.begin_totp_enrolment(caller, current_password=PASSPHRASE)
    app = pyotp.TOTP(enrolment.secret)  # the user's authenticator app
    codes = kit.confirm_totp_enrolment(caller, app.now())
    print(f"MFA on; {len(codes.codes)} backup codes shown once")
    # the next code comes from the next 30-second step: a step is accepted once (MFA-2)
    access_token = sign_in("ana@example.eu", PASSPHRASE, lambda: app.at(time() + 30))
    signed_in = kit.authenticate(f"Bearer {access_token}")
    assert signed_in is not None
    print(f"signed in again with TOTP: {signed_in.user_id == caller.user_id}")
    try:
        kit.login("ana@example.eu", "not the passphrase")
    except InvalidPasswordError as exc:
        print(f"wrong password: {exc}")


if __name__ == "__main__":
    main()
