"""Every example runs, says what it should, and uses the public API only.

Each example is listed in ``EXPECTED`` with lines (or distinctive parts of lines) its output
must contain, in that order (two parts may share a line). A new file in ``examples/`` that is
not listed fails the test.

The example applications (a directory each, listed in ``APPS``) carry their own tests, through
the framework's test client and under a real server; they run here, in a pytest of their own.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"

EXPECTED: dict[str, tuple[str, ...]] = {
    "kit_login.py": (
        "MFA on; 10 backup codes shown once",
        "signed in again with TOTP: True",
        "wrong password: invalid credentials",
    ),
    "embed_server.py": (
        "registered: 201 ana@example.eu",
        "login: 200 token type Bearer",
        "me: role owner in ana",
        "refresh token reused: 401 refresh_token_reused",
        "wrong passwords: [401, 401, 401, 401, 429]",
        "limit: 5 per minute, rate_limited after that",
    ),
    "login_flow.py": (
        "unknown user: invalid credentials",
        "access token for ana@example.eu",
        "reuse detected",
        "access token after reuse: session_revoked",
        "access token after password change: session_epoch",
    ),
    "mfa_flow.py": (
        "scan this: otpauth://totp/Storno:ana%40example.eu?secret=",
        "TOTP enabled; backup codes issued: 10",
        "'mfa_required': True",
        "MFA passed for user-1 with totp",
        "same TOTP code again: replayed - attempts left: 4",
        "backup code accepted; codes left: 9",
        "step-up token for 'mfa.disable', valid until 09:03:00 UTC",
        "MFA disabled with a step-up token; backup codes left: 0",
        "step-up token used twice: not_live",
    ),
    "api_keys.py": (
        "new key (shown once): af_",
        "verified: acts for user-42 in org-7 scopes ['read']",
        "mistyped key: invalid API key (reason: malformed)",
        "read key, invoice.view: allowed",
        "read key, invoice.create: denied (not_in_scope)",
        "read key, apikey.manage: denied (key_forbidden)",
        "admin key of the owner, apikey.manage: denied (key_forbidden)",
        "revoked: True",
        "revoked key: invalid API key (reason: revoked)",
    ),
    "passkeys.py": (
        "registration options for example.eu / ana@example.eu",
        "challenge: 32 random bytes",
        "'userVerification': 'required'",
        "answer from another origin: passkey verification failed (reason: origin)",
        "the same answer again: passkey verification failed (reason: challenge)",
        "login options: {'rpId': 'example.eu', 'userVerification': 'required'}",
        "user-1 has passkeys: False",
    ),
    "vault.py": (
        "stored in the company row: v1.",
        "opened: True",
        "moved to another company: invalid sealed secret (reason: mac)",
        "needs rotation: True",
        "still opens: True",
        "needs rotation now: False",
        "old token after the old key is gone: unknown_key",
    ),
    "license.py": (
        "license for ACME SRL (org-42) until 2027-01-15",
        "today: valid, plan business",
        "after expiry: grace, plan business, renew before 2027-01-29",
        "after grace: expired, plan free",
        "clock set back: expired, plan free, clock_rollback=True",
        "org-99 presenting org-42's license: invalid license (reason: organization_mismatch)",
    ),
    "xml_sign.py": (
        "signed invoice:",
        "verified: signed by CN=ACME SRL e-invoicing - amount 1190.00",
        "tampered amount: invalid XML signature (reason: digest_mismatch)",
        "billion laughs: XML document refused (reason: entity)",
    ),
    "rate_limit.py": (
        "limiting by: 2001:db8:1234:5678::/64",
        "attempt 1: 200 RateLimit-Limit: 5  RateLimit-Remaining: 4",
        "attempt 5: 200 RateLimit-Limit: 5  RateLimit-Remaining: 0",
        'attempt 6: 429 "Too many requests. Please try again later."',
        "RateLimit-Remaining: 0  RateLimit-Reset: 55  Retry-After: 35",
        "a little later: 200",
    ),
    "audit.py": (
        "refresh token reuse detected",
        "refused detail: detail key 'new_password' names a secret",
        "events of the user: ['login.succeeded/success', "
        "'session.token_reuse_detected/failure', 'session.all_revoked/success']",
        "exported 3 JSON lines; newest: session.all_revoked",
        "pseudonymised 3 events; actor now pseudo-",
        "the old id finds: 0 events",
    ),
}

#: The example applications: a directory each, with its tests.
APPS = ("fastapi_app", "flask_app")

#: What an example may import from the library: the top-level package, a capability package
#: (its ``__init__`` exports), the store packages and the framework integrations. Nothing
#: private, nothing from the tests.
_PUBLIC_MODULES = re.compile(
    r"storno_security(\.[a-z][a-z_]*|\.stores\.(memory|sql|redis)"
    r"|\.integrations\.(fastapi|flask)|\.aio\.(sql|redis))?"
    r"|reference_server\.(app|settings)"
)


def _examples() -> list[str]:
    return sorted(path.name for path in EXAMPLES.glob("*.py"))


def _app_files() -> list[str]:
    return sorted(
        str(path.relative_to(EXAMPLES)) for app in APPS for path in (EXAMPLES / app).glob("*.py")
    )


def test_every_example_is_listed() -> None:
    assert _examples() == sorted(EXPECTED), "list each example's expected output in EXPECTED"


def test_every_example_app_is_listed() -> None:
    found = sorted(
        p.name for p in EXAMPLES.iterdir() if p.is_dir() and (p / "__init__.py").exists()
    )
    assert found == sorted(APPS), "list each example application in APPS"


@pytest.mark.parametrize("name", _examples() + _app_files())
def test_example_uses_public_api_only(name: str) -> None:
    tree = ast.parse((EXAMPLES / name).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            names: list[str] = []
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{name}: relative import"
            modules = [node.module or ""]
            names = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            assert module.split(".")[0] != "tests", f"{name} imports test code: {module}"
            if module.split(".")[0] in ("storno_security", "reference_server"):
                assert _PUBLIC_MODULES.fullmatch(module), f"{name}: not a public module: {module}"
                assert not any(n.startswith("_") for n in names), f"{name}: private name"


@pytest.mark.parametrize("name", _examples())
def test_example_runs(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # an example must not write next to itself
        check=False,
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 0, output
    assert list(tmp_path.iterdir()) == [], "an example left files behind"
    lines = result.stdout.splitlines()
    position = 0
    for expected in EXPECTED.get(name, ()):
        while position < len(lines) and expected not in lines[position]:
            position += 1
        assert position < len(lines), f"{name}: no line with {expected!r} (in order):\n{output}"


@pytest.mark.slow
@pytest.mark.parametrize("app", APPS)
def test_example_app_tests_pass(app: str) -> None:
    """The application's own tests: the framework's test client, then a real server."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(EXAMPLES / app), "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=EXAMPLES.parent,
        check=False,
    )
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    assert " passed" in result.stdout, output
    assert "skipped" not in result.stdout, output
