"""Step-up verification (MFA-6): a fresh second factor buys one sensitive action.

A sensitive action (creating an API key, reading a vault secret, disabling MFA, deleting the
account) asks for a second factor verified moments ago. :meth:`StepUpTokens.issue` turns such a
:class:`~storno_security.mfa.factors.VerifiedFactor` into a verification token: 256 random bits,
stored only as SHA-256, bound to the user and to one action, valid 120 seconds, usable once.
The action's endpoint calls :meth:`StepUpTokens.consume`, one atomic store operation.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

import attrs

from storno_security.errors import InvalidStepUpTokenError, StaleSecondFactorError
from storno_security.mfa._common import _PolicyStoreService
from storno_security.mfa._tokens import hash_token, new_token
from storno_security.mfa.backup_codes import BackupCodes
from storno_security.mfa.factors import MfaMethod, VerifiedFactor
from storno_security.mfa.storage import StepUpStore, StoredStepUp

__all__ = [
    "ACCOUNT_DELETE",
    "API_KEY_CREATE",
    "BACKUP_CODES_REGENERATE",
    "GOOGLE_LINK",
    "MFA_DISABLE",
    "PASSKEY_REGISTER",
    "VAULT_READ",
    "StepUpGrant",
    "StepUpTokens",
    "VerifiedStepUp",
    "disable_mfa",
]

#: Action names of the platform's sensitive actions (any name matching ``[a-z][a-z0-9_.:-]*``
#: of at most 64 characters works).
API_KEY_CREATE: Final = "apikey.create"
VAULT_READ: Final = "vault.read"
MFA_DISABLE: Final = "mfa.disable"
ACCOUNT_DELETE: Final = "account.delete"
PASSKEY_REGISTER: Final = "passkey.register"
BACKUP_CODES_REGENERATE: Final = "mfa.backup_codes.regenerate"
GOOGLE_LINK: Final = "account.google_link"

_ACTION_RE: Final = re.compile(r"[a-z][a-z0-9_.:-]{0,63}")


@attrs.frozen(kw_only=True)
class StepUpGrant:
    """A new step-up verification token, to send to the client.

    Attributes:
        token: the token (secret; only its SHA-256 is stored).
        user_id: whom it was issued to.
        action: the one action it allows.
        method: the second factor behind it.
        expires_at: when it dies.
    """

    token: str = attrs.field(repr=False)
    user_id: str
    action: str
    method: MfaMethod
    expires_at: datetime


@attrs.frozen(kw_only=True)
class VerifiedStepUp:
    """A step-up token used up: the action may go ahead.

    Attributes:
        user_id: who.
        action: what.
        method: the second factor behind it (for the audit trail).
        used_at: when.
    """

    user_id: str
    action: str
    method: str
    used_at: datetime


class StepUpTokens(_PolicyStoreService[StepUpStore]):
    """Issues and consumes step-up verification tokens.

    Args:
        policy: the MFA policy (token lifetime, factor age); defaults to ``MfaPolicy()``.
        store: where tokens live.
        clock: the time source.

    Thread-safe.
    """

    def __repr__(self) -> str:
        return f"StepUpTokens(lifetime={self.policy.step_up_lifetime})"

    def issue(self, factor: VerifiedFactor, *, action: str) -> StepUpGrant:
        """Turn a second factor verified just now into a token for ``action``.

        Raises:
            TypeError: ``factor`` is not a :class:`VerifiedFactor`, or ``action`` not a str.
            ValueError: ``action`` is not a valid action name.
            StaleSecondFactorError: the factor was verified more than
                ``policy.step_up_max_factor_age`` ago (or in the future).
            StoreError: the store failed; no token exists.
        """
        if not isinstance(factor, VerifiedFactor):
            raise TypeError("factor must be a VerifiedFactor")
        action = _check_action(action)
        now = self._clock.now()
        age = now - factor.verified_at
        if not (age.total_seconds() >= 0 and age <= self.policy.step_up_max_factor_age):
            raise StaleSecondFactorError(reason="stale_factor")
        token = new_token()
        expires_at = now + self.policy.step_up_lifetime
        self._store.create_grant(
            StoredStepUp(
                token_hash=hash_token(token, InvalidStepUpTokenError),
                user_id=factor.user_id,
                action=action,
                method=factor.method,
                created_at=now,
                expires_at=expires_at,
            )
        )
        return StepUpGrant(
            token=token,
            user_id=factor.user_id,
            action=action,
            method=factor.method,
            expires_at=expires_at,
        )

    def consume(self, token: str, *, user_id: str, action: str) -> VerifiedStepUp:
        """Use a step-up token for ``action`` by ``user_id``, atomically, once.

        Raises:
            TypeError: ``action`` is not a str.
            ValueError: ``action`` is not a valid action name, or ``user_id`` is empty.
            InvalidStepUpTokenError: malformed, unknown, expired, used, or issued to another
                user or for another action (a mismatched token is left as it was).
            StoreError: the store failed; the token was not used.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        action = _check_action(action)
        token_hash = hash_token(token, InvalidStepUpTokenError)
        now = self._clock.now()
        grant = self._store.consume_grant(token_hash, user_id=user_id, action=action, now=now)
        if grant is None:
            raise InvalidStepUpTokenError(reason="not_live")
        return VerifiedStepUp(
            user_id=grant.user_id, action=grant.action, method=grant.method, used_at=now
        )


def disable_mfa(
    user_id: str, *, step_up_token: str, step_up: StepUpTokens, backup_codes: BackupCodes
) -> VerifiedStepUp:
    """Turn MFA off for ``user_id``: needs a step-up token for ``mfa.disable`` (a fresh second
    factor). Deletes the user's backup codes.

    Afterwards the caller deletes the user's TOTP secret and revokes every session of the user
    (REF-4: ``SessionManager.revoke_all(user_id, reason="mfa_disabled")``).

    Raises:
        ValueError: ``user_id`` is empty.
        InvalidStepUpTokenError: the token is not a live ``mfa.disable`` token of this user;
            nothing changed.
        StoreError: a store failed. If it was the backup-code store, the token is spent and the
            codes remain: ask for a new step-up.
    """
    verified = step_up.consume(step_up_token, user_id=user_id, action=MFA_DISABLE)
    backup_codes.delete(user_id)
    return verified


def _check_action(action: object) -> str:
    if not isinstance(action, str):
        raise TypeError(f"action must be a str, not {type(action).__name__}")
    if _ACTION_RE.fullmatch(action) is None:
        raise ValueError("action must match [a-z][a-z0-9_.:-]* and have at most 64 characters")
    return action
