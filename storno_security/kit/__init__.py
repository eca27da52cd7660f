"""The kit: the flows that join capabilities, as library calls with typed results.

Registration and email confirmation, password login with the MFA challenge (TOTP, backup code,
passkey), passkey and Google login, refresh, logout, password change and reset,
re-authentication from one rule table, step-up, API keys, vault secrets, members and
invitations, account deletion, purge and export; each flow reports security events to one
sink with the request context.

A password login with MFA::

    from storno_security.kit import Kit, KitKeys, KitPolicy, MfaRequired
    from storno_security.stores.memory import memory_bundle
    from storno_security.tokens import TokenPolicy

    kit = Kit(memory_bundle(), keys=KitKeys.generate(),
              policy=KitPolicy(tokens=TokenPolicy(issuer="https://api.example.eu",
                                                  audience="example-api")))
    result = kit.login("ana@example.eu", "a long passphrase")
    if isinstance(result, MfaRequired):
        result = kit.verify_mfa(result.token, method="totp", code="123456")
    caller = kit.authenticate(f"Bearer {result.tokens.access_token}")
"""

from storno_security.kit._core import CompanyLookup, Mail, Mailer
from storno_security.kit.auth import parse_authorization
from storno_security.kit.deletion import AccountDeletion, Purge
from storno_security.kit.keys import KitKeys
from storno_security.kit.kit import Kit
from storno_security.kit.policy import REAUTH_TABLE, KitPolicy, Proof, ReauthRule, SensitiveAction
from storno_security.kit.results import (
    Caller,
    LoginResult,
    MfaRequired,
    MfaStatus,
    Reauthenticated,
    Registration,
    Session,
    TotpEnrolment,
)
from storno_security.kit.storage import DirectoryStore, ForgetsUsers, MemberRecord, StoreBundle
from storno_security.kit.tenancy import CallerView, MemberView

__all__ = [
    "REAUTH_TABLE",
    "AccountDeletion",
    "Caller",
    "CallerView",
    "CompanyLookup",
    "DirectoryStore",
    "ForgetsUsers",
    "Kit",
    "KitKeys",
    "KitPolicy",
    "LoginResult",
    "Mail",
    "Mailer",
    "MemberRecord",
    "MemberView",
    "MfaRequired",
    "MfaStatus",
    "Proof",
    "Purge",
    "ReauthRule",
    "Reauthenticated",
    "Registration",
    "SensitiveAction",
    "Session",
    "StoreBundle",
    "TotpEnrolment",
    "parse_authorization",
]
