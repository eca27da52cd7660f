"""The account record: its fields are checked when it is made."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storno_security.accounts import UserAccount

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_user_id_must_be_a_short_text_without_nul() -> None:
    assert UserAccount(user_id="u" * 255, email=None, created_at=NOW).user_id == "u" * 255
    with pytest.raises(TypeError, match="user_id must be a str, not int"):
        UserAccount(user_id=7, email=None, created_at=NOW)  # type: ignore[arg-type]
    for bad in ("", "u" * 256, "u\x00"):
        with pytest.raises(ValueError, match="user_id must be 1 to 255 characters without NUL"):
            UserAccount(user_id=bad, email=None, created_at=NOW)
