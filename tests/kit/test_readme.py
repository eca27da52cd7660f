"""The README's first example is the kit, and it runs: a password login with MFA in at most
ten lines of user code."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
PASSPHRASE = "a long passphrase"


def _first_python_block() -> str:
    found = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert found, "README.md has no python example"
    return found.group(1)


def test_the_first_example_is_the_kit_in_ten_lines() -> None:
    code = _first_python_block()
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 10
    assert "storno_security.kit" in code


@pytest.mark.spec("MFA-4")
def test_the_first_example_signs_in_with_a_second_factor() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(_first_python_block(), "README.md", "exec"), namespace)  # noqa: S102
    kit, sign_in = namespace["kit"], namespace["sign_in"]
    registration = kit.register("ana@example.eu", PASSPHRASE)
    caller = kit.authenticate(f"Bearer {registration.session.tokens.access_token}")
    enrolment = kit.begin_totp_enrolment(caller, current_password=PASSPHRASE)
    app = pyotp.TOTP(enrolment.secret)
    kit.confirm_totp_enrolment(caller, app.now())
    token = sign_in("ana@example.eu", PASSPHRASE, lambda: app.at(time.time() + 30))
    assert kit.authenticate(f"Bearer {token}").user_id == caller.user_id
