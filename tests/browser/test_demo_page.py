"""The demo page in headless Chromium against live servers (issue 16).

Every flow of the page, as a user clicks it, on SQLite and on PostgreSQL + Redis: register,
confirm the address from the mailed link, log in, add a passkey, log in with it without an
email, turn TOTP on, log in with a code, a backup code and a passkey as second factor, create
and use an API key, log out. Then what must fail: the same page from another origin fails the
ceremony; a cloned authenticator (its sign count gone back) is refused and flagged; CORS lets
only a listed origin read an answer.
"""

from __future__ import annotations

import time

import pytest

from tests.browser.conftest import Browser, LiveServer, Totp
from tests.server.api import fresh_email

PASSWORD = "correct horse battery staple"


def register_and_confirm(page: Browser, server: LiveServer, email: str) -> None:
    page.open(server.url + "/demo")
    page.fill("register-email", email)
    page.fill("register-password", PASSWORD)
    page.fill("register-name", "Ada Demo")
    page.act("register", "Registered as " + email)
    server.wait_for_mail(email)  # the server mails after answering
    page.act("read-mail", "Found the confirmation link")
    page.click("confirm-link")  # the mailed link opens the page, which confirms the address
    page.wait_text("status", f"Address confirmed: {email}.")
    assert page.driver.current_url == server.url + "/demo"  # the token left the address bar


def log_in(page: Browser, email: str, *, expect: str = "Signed in as") -> None:
    page.new_address()
    page.fill("login-email", email)
    page.fill("login-password", PASSWORD)
    page.act("login", expect)


def add_passkey(page: Browser, name: str) -> None:
    page.new_address()
    page.fill("passkey-name", name)
    page.act("passkey-register", "Passkey added: " + name)
    assert name in page.text("passkeys")


def log_out(page: Browser) -> None:
    page.act("logout", "Signed out.")


@pytest.mark.spec("PK-4")
@pytest.mark.spec("MFA-5")
@pytest.mark.parametrize("backend", ["sqlite", "pg-redis"])
def test_every_flow_of_the_page(
    backend: str, browser: Browser, request: pytest.FixtureRequest
) -> None:
    started = time.monotonic()
    server: LiveServer = request.getfixturevalue(backend.replace("-", "_") + "_server")
    page, email = browser, fresh_email("browser")

    register_and_confirm(page, server, email)
    log_in(page, email)
    page.fill("proof-password", PASSWORD)
    add_passkey(page, "Virtual key")
    log_out(page)

    # Usernameless: the authenticator offers its resident credential, no email is typed.
    page.act("passkey-login", "Signed in as " + email)
    log_out(page)

    # TOTP on (re-authenticated with the password), its backup codes shown once.
    log_in(page, email)
    page.fill("proof-password", PASSWORD)
    page.act("totp-setup", "Add the secret")
    totp = Totp(page.text("totp-secret"))
    page.fill("totp-code", totp.next_code())
    page.act("totp-confirm", "MFA is on")
    backup_codes = page.text("backup-codes").split()
    assert len(backup_codes) == 10
    log_out(page)

    # Password + TOTP; then an API key, bought with a step-up code, used once.
    log_in(page, email, expect="a second factor is needed")
    assert page.text("mfa-methods") == "totp, backup_code, passkey"
    page.fill("mfa-code", totp.next_code())
    page.act("mfa-totp", "Signed in as " + email)
    page.fill("proof-code", totp.next_code())
    page.act("apikey-create", "API key created")
    assert page.text("apikey").startswith("af_")
    page.click("apikey-try")
    page.wait_text("apikey-result", f"answered for {email} as api_key")
    log_out(page)

    # Password + backup code.
    log_in(page, email, expect="a second factor is needed")
    page.fill("mfa-code", backup_codes[0])
    page.act("mfa-backup", "Signed in as " + email)
    log_out(page)

    # Password + passkey as the second factor (MFA-5).
    log_in(page, email, expect="a second factor is needed")
    page.act("mfa-passkey", "Signed in as " + email)
    log_out(page)

    # Logged out means logged out: a reload finds no session.
    page.open(server.url + "/demo")
    assert page.text("status") == "Not signed in."
    print(f"\n[browser timing] every flow on {backend}: {time.monotonic() - started:.1f} s")


@pytest.mark.spec("PK-1")
def test_the_page_from_another_origin_fails_the_ceremony(
    browser: Browser, sqlite_server: LiveServer, mirror_server: LiveServer
) -> None:
    page, email = browser, fresh_email("origin")
    register_and_confirm(page, sqlite_server, email)
    log_in(page, email)
    page.fill("proof-password", PASSWORD)
    add_passkey(page, "Real origin")
    log_out(page)

    # The same page, database and keys, served at another origin: the browser signs that
    # origin into the ceremony, and the server (whose origin is the public URL) refuses it.
    page.open(mirror_server.url + "/demo")
    page.new_address()
    page.act_failing("passkey-login", "401 invalid_passkey")
    assert page.text("status") != "Signed in as " + email
    # Registration there fails too (a new account: this authenticator holds the first one's).
    page.fill("register-email", fresh_email("origin"))
    page.fill("register-password", PASSWORD)
    page.act("register", "Registered as")
    page.fill("proof-password", PASSWORD)
    page.act_failing("passkey-register", "401 invalid_passkey")

    # The mirror said so at start-up, in one line.
    lines = [
        line for line in mirror_server.err_path.read_text().splitlines() if "public URL" in line
    ]
    mismatch = [line for line in lines if "is not the listening address" in line]
    assert len(mismatch) == 1, lines
    assert f"public URL {sqlite_server.url} is not the listening address" in mismatch[0]


@pytest.mark.spec("PK-3")
def test_a_cloned_authenticator_is_refused_and_flagged(
    browser: Browser, sqlite_server: LiveServer
) -> None:
    page, email = browser, fresh_email("clone")
    register_and_confirm(page, sqlite_server, email)
    log_in(page, email)
    page.fill("proof-password", PASSWORD)
    add_passkey(page, "Original")
    log_out(page)
    page.act("passkey-login", "Signed in as " + email)
    log_out(page)

    # Copy the key (WebAuthn.getCredentials exports it) into a second authenticator whose
    # counter is back at zero, and throw the first one away.
    (exported,) = page.credentials()
    assert exported["signCount"] >= 1
    page.driver.execute_cdp_cmd(
        "WebAuthn.removeVirtualAuthenticator", {"authenticatorId": page.authenticator}
    )
    clone = {**exported, "signCount": 0}
    page.driver.execute_cdp_cmd(
        "WebAuthn.addCredential", {"authenticatorId": page.add_authenticator(), "credential": clone}
    )
    page.new_address()
    page.act_failing("passkey-login", "401 invalid_passkey")

    log_in(page, email)
    page.wait_text("passkeys", "Original (flagged: cloned?)")


_FETCH = """
const done = arguments[arguments.length - 1];
fetch(arguments[0] + "/api/auth", {
  method: "POST", credentials: "include", headers: {"Content-Type": "application/json"},
  body: JSON.stringify({email: "nobody@example.eu", password: "not the password"}),
}).then(async (r) => done("read " + r.status + " " + (await r.json()).code))
  .catch((e) => done("refused " + e.name));
"""


def test_cors_lets_only_a_listed_origin_read_an_answer(
    browser: Browser, sqlite_server: LiveServer, mirror_server: LiveServer
) -> None:
    page = browser
    page.new_address("")  # no extra header: the request needs the preflight of a JSON POST only
    for origin, expected in (
        (mirror_server.url, "read 401 invalid_credentials"),  # listed in STORNO_CORS_ORIGINS
        (f"http://127.0.0.1:{mirror_server.port}", "refused TypeError"),  # another origin
    ):
        page.open(origin + "/demo")
        # The page's own CSP allows no other origin: lifted here, so CORS alone decides.
        page.driver.execute_cdp_cmd("Page.setBypassCSP", {"enabled": True})
        page.open(origin + "/demo")
        assert page.driver.execute_async_script(_FETCH, sqlite_server.url) == expected, origin
