"""What the kit's flows return: frozen values, secrets kept out of ``repr``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import attrs

from storno_security.accounts.model import UserAccount
from storno_security.api_keys.principal import ApiKeyPrincipal
from storno_security.kit.policy import Proof, SensitiveAction
from storno_security.kit.storage import AccountOverview
from storno_security.mfa.factors import MfaMethod
from storno_security.passkeys.ceremonies import PasskeyOptions
from storno_security.rbac.authorize import Authorization
from storno_security.rbac.invitations import Organization
from storno_security.rbac.model import Principal
from storno_security.tokens.access import AccessTokenClaims
from storno_security.tokens.sessions import TokenPair

__all__ = [
    "Caller",
    "CallerView",
    "LoginResult",
    "MfaRequired",
    "MfaStatus",
    "Reauthenticated",
    "Registration",
    "Session",
    "TotpEnrolment",
]


@attrs.frozen(kw_only=True)
class Session:
    """A login that succeeded: the session's tokens and the account.

    Attributes:
        tokens: the access and refresh tokens (secrets).
        user: the account.
        method: how the person proved who they are (``password``, ``google``, ``passkey``,
            ``mfa_totp``, ``mfa_backup_code``, ``mfa_passkey``, ``registration``,
            ``password_change``, ``password_reset``).
        backup_codes_left: after a backup-code login, the unused codes left.
    """

    tokens: TokenPair
    user: UserAccount
    method: str
    backup_codes_left: int | None = None


@attrs.frozen(kw_only=True)
class MfaRequired:
    """The first factor passed; a second one is needed (MFA-4).

    Attributes:
        token: the challenge token (secret) to send back with the second factor.
        methods: the factors that may answer (``totp``, ``backup_code``, ``passkey``).
        expires_at: when the challenge dies.
        passkey_options: when ``passkey`` is offered, the WebAuthn request options for it.
    """

    token: str = attrs.field(repr=False)
    methods: tuple[MfaMethod, ...]
    expires_at: datetime
    passkey_options: PasskeyOptions | None = None

    def response(self) -> dict[str, Any]:
        """The MFA-4 body: ``{"mfa_required": true, "mfa_token": ..., "mfa_methods": [...]}``
        (plus ``passkey_options`` when a passkey may answer)."""
        body: dict[str, Any] = {
            "mfa_required": True,
            "mfa_token": self.token,
            "mfa_methods": list(self.methods),
        }
        if self.passkey_options is not None:
            body["passkey_options"] = self.passkey_options.as_dict()
        return body


#: A password or Google login: a session, or an MFA challenge to answer.
LoginResult = Session | MfaRequired


@attrs.frozen(kw_only=True)
class Registration:
    """A new account (ACC-1).

    Attributes:
        user: the account (its address not confirmed yet).
        organization_id: the organization created with it, of which the user is Owner.
        session: the first session, or ``None`` when the policy refuses login until the
            address is confirmed.
    """

    user: UserAccount
    organization_id: str
    session: Session | None


@attrs.frozen(kw_only=True)
class Caller:
    """Who sent a request: a user with an access token, or an API key acting for its user.

    Attributes:
        user_id: the user (for an API key: the key's user).
        kind: ``user`` or ``api_key``.
        claims: the verified access-token claims (``kind == "user"``).
        api_key: the verified key (``kind == "api_key"``).
        overview: the user's own records, read with the session state when
            :meth:`~storno_security.kit.Kit.authenticate` was asked for them (``None``
            otherwise, or when the backend cannot); :meth:`~storno_security.kit.Kit.caller_view`
            uses them instead of reading again.
    """

    user_id: str
    kind: Literal["user", "api_key"]
    claims: AccessTokenClaims | None = None
    api_key: ApiKeyPrincipal | None = None
    overview: AccountOverview | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def is_api_key(self) -> bool:
        return self.kind == "api_key"

    @property
    def session_id(self) -> str | None:
        """The refresh family of the access token (``sid``)."""
        return self.claims.session_id if self.claims is not None else None

    def principal(self, organization_id: str) -> Principal:
        """The RBAC principal acting in ``organization_id`` (KEY-4 for a key)."""
        if self.api_key is not None:
            return Principal.from_api_key(self.api_key)
        return Principal.user(self.user_id, organization_id=organization_id)


@attrs.frozen(kw_only=True)
class Reauthenticated:
    """A sensitive act was allowed (ACC-6).

    Attributes:
        action: the act.
        proof: the proof that stood for it.
    """

    action: SensitiveAction
    proof: Proof


@attrs.frozen(kw_only=True)
class TotpEnrolment:
    """A TOTP secret being enrolled (MFA-1): show it once, then confirm with a code.

    Attributes:
        secret: the base32 secret (secret).
        uri: the ``otpauth://`` URI for a QR code (secret).
    """

    secret: str = attrs.field(repr=False)
    uri: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class MfaStatus:
    """A user's second factors.

    Attributes:
        enabled: TOTP enrolled and logins challenged.
        methods: the factors that may answer a challenge.
        backup_codes_left: unused backup codes.
        pending_enrolment: a TOTP enrolment awaits its code.
        has_passkeys: a usable passkey exists.
    """

    enabled: bool
    methods: tuple[MfaMethod, ...]
    backup_codes_left: int
    pending_enrolment: bool
    has_passkeys: bool


@attrs.frozen(kw_only=True)
class CallerView:
    """What ``GET /me`` shows (see :meth:`~storno_security.kit.Kit.caller_view`).

    Attributes:
        user: the live account.
        authorization: the decision for ``org.view``; ``None`` when the user has no live
            membership.
        organization: the organization of that decision (``None`` with it).
        mfa: the account's second factors.
    """

    user: UserAccount
    authorization: Authorization | None
    organization: Organization | None
    mfa: MfaStatus
