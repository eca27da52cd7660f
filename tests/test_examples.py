"""Every example runs and says what it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_login_flow() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "login_flow.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "unknown user: invalid credentials" in result.stdout
    assert "reuse detected" in result.stdout
    assert "access token after reuse: session_revoked" in result.stdout
    assert "access token after password change: session_epoch" in result.stdout
