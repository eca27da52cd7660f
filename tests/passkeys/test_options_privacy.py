"""Regression tests for flaws found in review."""

from __future__ import annotations

import pytest

from storno_security.passkeys import PasskeyManager


@pytest.mark.finding("internal review of passkeys")
@pytest.mark.spec("PK-2")
def test_options_repr_shows_neither_challenge_nor_user(manager: PasskeyManager) -> None:
    registration = manager.start_registration("user-7", user_name="alice@example.eu")
    login = manager.start_login()
    for options in (registration, login):
        text = repr(options)
        challenge = options.as_dict()["challenge"]
        assert challenge not in text
        assert "alice@example.eu" not in text
        assert "expires_at" in text
    assert registration.as_dict()["user"]["id"] not in repr(registration)
