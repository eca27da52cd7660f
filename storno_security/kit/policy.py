"""The kit's policy: every capability's policy in one frozen object, plus the rules that only
exist where capabilities meet (re-authentication, email confirmation at login, invitations,
account deletion).

Re-authentication (ACC-6) is one table: :data:`REAUTH_TABLE` names each sensitive act and the
proofs that may stand for it. Which proof is *asked* depends on what the account has, never
whether one is asked:

* an account with MFA on must send a step-up token for the act (MFA-6);
* else an account with a password sends its current password (a step-up token, which a
  passkey can buy, is accepted too: it is stronger);
* else (Google- or passkey-only, no MFA) a login within ``fresh_login`` — the ``auth_time`` of
  the session, which a refresh never renews — or a step-up token.

An act whose row drops ``fresh_login`` (changing the address, linking Google) cannot be done by
an account that has neither a factor nor a password: it must add a password or a factor first.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Final

import attrs

from storno_security._validators import between
from storno_security.accounts.reset import PasswordResetPolicy
from storno_security.api_keys.policy import ApiKeyPolicy
from storno_security.audit.policy import AuditPolicy
from storno_security.mfa.policy import MfaPolicy
from storno_security.passkeys.policy import PasskeyPolicy
from storno_security.passwords.policy import PasswordPolicy
from storno_security.tokens.policy import TokenPolicy
from storno_security.tokens.sessions import DEFAULT_REUSE_GRACE

__all__ = [
    "REAUTH_TABLE",
    "KitPolicy",
    "Proof",
    "ReauthRule",
    "SensitiveAction",
]


class SensitiveAction(enum.StrEnum):
    """The acts that need proof beyond an access token (ACC-6). The values are the step-up
    action names (MFA-6): a step-up token is bought for exactly one of them."""

    API_KEY_CREATE = "apikey.create"
    VAULT_READ = "vault.read"
    VAULT_WRITE = "vault.write"
    MFA_ENROL = "mfa.enrol"
    MFA_DISABLE = "mfa.disable"
    PASSKEY_REGISTER = "passkey.register"
    BACKUP_CODES_REGENERATE = "mfa.backup_codes.regenerate"
    EMAIL_CHANGE = "account.email_change"
    PASSWORD_CHANGE = "account.password_change"  # noqa: S105 - an action name
    ACCOUNT_DELETE = "account.delete"
    GOOGLE_LINK = "account.google_link"


class Proof(enum.StrEnum):
    """A proof of presence, strongest first (the names are the request fields that carry
    them)."""

    STEP_UP = "step_up_token"
    PASSWORD = "current_password"  # noqa: S105 - a field name
    FRESH_LOGIN = "fresh_login"


@attrs.frozen
class ReauthRule:
    """One row of the re-authentication table.

    Attributes:
        action: the act.
        fresh_login: whether a recent login may stand for it when the account has neither a
            second factor nor a password.
    """

    action: SensitiveAction
    fresh_login: bool = True

    def accepted(self, *, mfa_enabled: bool, has_password: bool) -> tuple[Proof, ...]:
        """The proofs that suffice for an account in this state, strongest first (ACC-6).

        MFA on: a step-up token only. Else a step-up token (a passkey can buy one) or the
        current password if there is one, else a recent login if the row allows it. Never
        empty when the account can prove anything at all; an empty tuple means the act is out
        of reach until the account adds a password or a factor.
        """
        if mfa_enabled:
            return (Proof.STEP_UP,)
        if has_password:
            return (Proof.STEP_UP, Proof.PASSWORD)
        if self.fresh_login:
            return (Proof.STEP_UP, Proof.FRESH_LOGIN)
        return (Proof.STEP_UP,)


#: Changing the address moves account recovery: a recent login is not enough for it.
_NO_FRESH_LOGIN: Final = frozenset({SensitiveAction.EMAIL_CHANGE})

#: ACC-6: every sensitive act and what may stand for it.
REAUTH_TABLE: Final[Mapping[SensitiveAction, ReauthRule]] = MappingProxyType(
    {
        action: ReauthRule(action, fresh_login=action not in _NO_FRESH_LOGIN)
        for action in SensitiveAction
    }
)


@attrs.frozen(kw_only=True)
class KitPolicy:
    """Every policy the kit's flows use.

    Attributes:
        tokens: access and refresh tokens (issuer, audience, lifetimes, REF-5 grace).
        passwords: bcrypt cost and length rules.
        mfa: TOTP, backup codes, challenges, step-up, lockout.
        passkeys: the relying party (id, origins); ``None`` turns passkeys off.
        api_keys: API-key lifetime and legacy keys.
        reset: password-reset tokens.
        audit: audit retention.
        refresh_reuse_grace: how long the just-rotated refresh token may be presented once
            more, while its successor is unused, for a fresh pair (REF-5); 10 seconds by
            default, 0 to turn it off, at most 1 minute.
        fresh_login: how recent a login must be to stand as re-authentication (ACC-6);
            default 5 minutes, at most 1 hour.
        require_confirmed_email: refuse password login until the address is confirmed
            (ACC-5); default off (the address must still be confirmed to accept an invitation).
        confirmation_lifetime: how long an email-confirmation token lives (24 hours).
        invitation_lifetime: how long an invitation stays open (7 days).
        invitation_mail_interval: at most one invitation mail per organization and address in
            this interval, so withdraw-and-invite cannot flood a mailbox (7 days).
        deletion_grace: how long a deleted account waits, anonymised, before it is purged
            (30 days; at least the access-token lifetime, so old tokens die first).
        totp_issuer: the issuer shown in authenticator apps.
    """

    tokens: TokenPolicy = attrs.field(validator=attrs.validators.instance_of(TokenPolicy))
    passwords: PasswordPolicy = attrs.field(
        factory=PasswordPolicy, validator=attrs.validators.instance_of(PasswordPolicy)
    )
    mfa: MfaPolicy = attrs.field(
        factory=MfaPolicy, validator=attrs.validators.instance_of(MfaPolicy)
    )
    passkeys: PasskeyPolicy | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(PasskeyPolicy)),
    )
    api_keys: ApiKeyPolicy = attrs.field(
        factory=ApiKeyPolicy, validator=attrs.validators.instance_of(ApiKeyPolicy)
    )
    reset: PasswordResetPolicy = attrs.field(
        factory=PasswordResetPolicy, validator=attrs.validators.instance_of(PasswordResetPolicy)
    )
    audit: AuditPolicy = attrs.field(
        factory=AuditPolicy, validator=attrs.validators.instance_of(AuditPolicy)
    )
    refresh_reuse_grace: timedelta = attrs.field(
        default=DEFAULT_REUSE_GRACE, validator=between(timedelta(0), timedelta(minutes=1))
    )
    fresh_login: timedelta = attrs.field(
        default=timedelta(minutes=5), validator=between(timedelta(seconds=30), timedelta(hours=1))
    )
    require_confirmed_email: bool = attrs.field(
        default=False, validator=attrs.validators.instance_of(bool)
    )
    confirmation_lifetime: timedelta = attrs.field(
        default=timedelta(hours=24), validator=between(timedelta(minutes=5), timedelta(days=7))
    )
    invitation_lifetime: timedelta = attrs.field(
        default=timedelta(days=7), validator=between(timedelta(hours=1), timedelta(days=90))
    )
    invitation_mail_interval: timedelta = attrs.field(
        default=timedelta(days=7), validator=between(timedelta(0), timedelta(days=90))
    )
    deletion_grace: timedelta = attrs.field(
        default=timedelta(days=30), validator=between(timedelta(0), timedelta(days=3650))
    )
    totp_issuer: str = attrs.field(default="storno-security")

    @classmethod
    def for_api(cls, *, issuer: str, audience: str, **overrides: Any) -> KitPolicy:
        """The defaults for an API whose access tokens name ``issuer`` and ``audience``
        (every other policy as the spec says; ``overrides`` replace fields by name).

        Raises:
            TypeError, ValueError: a bad issuer, audience or override.
        """
        return cls(tokens=TokenPolicy(issuer=issuer, audience=audience), **overrides)

    @deletion_grace.validator
    def _check_grace(self, attribute: attrs.Attribute[timedelta], value: timedelta) -> None:
        if value < self.tokens.access_token_lifetime + self.tokens.leeway:
            raise ValueError(
                "deletion_grace must outlast the access tokens (lifetime + leeway): the purge "
                "forgets the session epoch that keeps them dead"
            )

    @totp_issuer.validator
    def _check_issuer(self, attribute: attrs.Attribute[str], value: str) -> None:
        if not isinstance(value, str) or not 1 <= len(value) <= 64 or ":" in value:
            raise ValueError("totp_issuer must be 1 to 64 characters without ':'")
