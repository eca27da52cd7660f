"""KEY-5: the action families no API key may ever perform."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storno_security.api_keys import API_KEY_FORBIDDEN_FAMILIES, is_forbidden_for_api_keys


@pytest.mark.spec("KEY-5")
def test_the_forbidden_families() -> None:
    assert frozenset({"apikey", "password", "mfa", "passkey"}) == API_KEY_FORBIDDEN_FAMILIES


@pytest.mark.spec("KEY-5")
@pytest.mark.parametrize(
    "action",
    [
        "apikey.manage",
        "apikey.create",
        "api_key.revoke",
        "api-keys:list",
        "ApiKeys.Manage",
        "password.change",
        "passwords.reset",
        "me.password",
        "user:password:change",
        "mfa.manage",
        "passkey.manage",
        "mfa.enable",
        "mfa.disable",
        "MFA.backup_codes",
        "totp.setup",
        "backup_codes.regenerate",
        "two_factor.disable",
        "2fa.disable",
        "passkey.register",
        "passkeys/delete",
        "webauthn.register",
        "account.mfa.disable",
        "",
        "   ",
    ],
)
def test_forbidden_actions(action: str) -> None:
    assert is_forbidden_for_api_keys(action)


@pytest.mark.spec("KEY-5")
@pytest.mark.parametrize(
    "action",
    [
        "invoice.view",
        "invoice.create",
        "invoice.issue",
        "company.manage",
        "member.manage",
        "settings.manage",
        "vault.manage",
        "audit.view",
        "billing.manage",
        "org.delete",
        "client.view",
        "passwordless_link.view",  # not the password family
    ],
)
def test_allowed_actions(action: str) -> None:
    assert not is_forbidden_for_api_keys(action)


@pytest.mark.spec("KEY-5")
@given(
    before=st.lists(st.sampled_from(["invoice", "org", "me", "settings"]), max_size=3),
    family=st.sampled_from(["apikey", "api_keys", "password", "mfa", "totp", "passkeys"]),
    after=st.lists(st.sampled_from(["view", "manage", "disable", "create"]), max_size=3),
    separator=st.sampled_from([".", ":", "/"]),
)
def test_a_forbidden_family_anywhere_in_the_name_forbids(
    before: list[str], family: str, after: list[str], separator: str
) -> None:
    assert is_forbidden_for_api_keys(separator.join([*before, family, *after]))
    assert is_forbidden_for_api_keys(separator.join([*before, family.upper(), *after]))


def test_non_strings_are_refused() -> None:
    with pytest.raises(TypeError):
        is_forbidden_for_api_keys(None)  # type: ignore[arg-type]
