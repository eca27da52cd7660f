"""The passkey policy refuses unsafe settings."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from storno_security.passkeys import PasskeyPolicy
from tests.passkeys.conftest import make_policy


@pytest.mark.spec("PK-2")
def test_defaults_follow_the_spec() -> None:
    policy = make_policy()
    assert policy.challenge_lifetime == timedelta(minutes=5)
    assert policy.challenge_bytes == 32
    assert policy.resident_key == "preferred"
    assert policy.passkey_satisfies_mfa is True


@pytest.mark.parametrize(
    "overrides",
    [
        {"rp_id": ""},
        {"rp_id": "https://storno.example"},
        {"rp_id": "Storno.Example"},
        {"rp_name": " "},
        {"allowed_origins": ()},
        {"allowed_origins": ["https://app.storno.example"]},
        {"allowed_origins": ("http://app.storno.example",)},
        {"allowed_origins": ("https://app.storno.example/login",)},
        {"challenge_lifetime": timedelta(minutes=6)},
        {"challenge_lifetime": timedelta(seconds=5)},
        {"challenge_bytes": 16},
        {"challenge_bytes": True},
        {"algorithms": (-65535,)},
        {"algorithms": ()},
        {"resident_key": "maybe"},
        {"passkey_satisfies_mfa": "yes"},
    ],
)
def test_unsafe_settings_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        make_policy(**overrides)


def test_localhost_may_use_http() -> None:
    policy = PasskeyPolicy(
        rp_id="localhost", rp_name="Dev", allowed_origins=("http://localhost:8000",)
    )
    assert policy.allowed_origins == ("http://localhost:8000",)


def test_policy_is_frozen() -> None:
    policy = make_policy()
    with pytest.raises(AttributeError):
        policy.rp_id = "evil.example"  # type: ignore[misc]


def test_an_origin_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(ValueError, match="allowed_origins must hold strings"):
        make_policy(allowed_origins=("https://app.storno.example", 443))
