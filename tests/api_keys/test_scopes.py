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
        # an alias of two words at the very end, or alone
        "account.two.factor",
        "regenerate.backup.codes",
        "create.api.key",
        "api key",
        "mfa",
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


# --- issue 14: compound names in snake, kebab and camel case -----------------------------------


@pytest.mark.spec("KEY-5")
@pytest.mark.parametrize(
    ("action", "forbidden"),
    [
        # the API-key family, every spelling
        ("apiKeys.create", True),
        ("api-key.create", True),
        ("apiKey_manage", True),
        ("API_KEY.CREATE", True),
        ("APIKey.create", True),
        ("APIKeys", True),
        ("manageApiKeys", True),
        ("create-api-key", True),
        ("api_keys-manage", True),
        ("ApiKeyRevoke", True),
        ("org:apiKeys/create", True),
        # passwords
        ("passwordReset", True),
        ("change_password", True),
        ("me.changePassword", True),
        ("PASSWORDS-RESET", True),
        # MFA and its aliases
        ("mfaDisable", True),
        ("disable_mfa", True),
        ("totpEnroll", True),
        ("regenerateBackupCodes", True),
        ("backup-codes-regenerate", True),
        ("disableTwoFactor", True),
        ("disable2FA", True),
        ("two-factor.enable", True),
        # passkeys
        ("passkeyRegister", True),
        ("register_passkeys", True),
        ("webAuthnRegister", True),
        ("WEBAUTHN_REGISTER", True),
        # look-alike letters spelling a family: fail closed
        ("p\u0430ssword.change", True),  # Cyrillic a
        ("\uff50assword.change", True),  # fullwidth p
        ("api\u212aey.create", True),  # Kelvin sign
        # not a family: a word that merely starts like one, or unrelated names
        ("passwordless_link.view", False),
        ("passwordlessLink.view", False),
        ("invoice.view", False),
        ("invoiceCreate", False),
        ("companyManage", False),
        ("member_manage", False),
        ("apiUsage.view", False),  # "api" alone is not the family
        ("keyboard.shortcuts", False),
        ("pass.through", False),
        ("mfaq.view", False),  # one word, not "mfa"
    ],
)
def test_compound_names_are_normalised(action: str, forbidden: bool) -> None:
    assert is_forbidden_for_api_keys(action) is forbidden


@pytest.mark.spec("KEY-5")
@given(
    family=st.sampled_from(
        [
            ["api", "key"],
            ["api", "keys"],
            ["password"],
            ["mfa"],
            ["totp"],
            ["backup", "codes"],
            ["two", "factor"],
            ["passkey"],
            ["web", "authn"],
        ]
    ),
    verb=st.sampled_from(["create", "manage", "disable", "reset", "view"]),
    style=st.sampled_from(["snake", "kebab", "camel", "pascal", "upper", "dots"]),
    verb_first=st.booleans(),
)
def test_every_case_style_of_a_family_forbids(
    family: list[str], verb: str, style: str, verb_first: bool
) -> None:
    words = [verb, *family] if verb_first else [*family, verb]
    if style == "snake":
        action = "_".join(words)
    elif style == "kebab":
        action = "-".join(words)
    elif style == "camel":
        action = words[0] + "".join(w.capitalize() for w in words[1:])
    elif style == "pascal":
        action = "".join(w.capitalize() for w in words)
    elif style == "upper":
        action = "_".join(w.upper() for w in words)
    else:
        action = ".".join(words)
    assert is_forbidden_for_api_keys(action), action
