"""Accounts: email addresses in one normal form (ACC-1), password-reset tokens that are single
use, stored only as SHA-256 and dead after one hour (ACC-2), and email-confirmation tokens of
the same make, dead after 24 hours (ACC-5).

Typical wiring::

    email = normalise_email(form["email"])  # store and look up this form only
    resets = PasswordResetTokens(MemoryResetTokenStore(), clock=SystemClock())
    issued = resets.issue(user_id)           # mail issued.token, shown once
    user_id = resets.consume(token_from_link)

Registration, organizations and memberships are the application's (see
:mod:`storno_security.rbac`); login errors come from :mod:`storno_security.passwords`, which
never tells an unknown email from a wrong password.

The errors of the capability (:class:`~storno_security.errors.AccountError`,
:class:`~storno_security.errors.InvalidEmailError`,
:class:`~storno_security.errors.InvalidResetTokenError`) live in :mod:`storno_security.errors`
and are re-exported here for convenience.
"""

from storno_security.accounts.confirm import (
    CONFIRMATION_TOKEN_PREFIX,
    ConfirmedAddress,
    EmailConfirmationPolicy,
    EmailConfirmationTokens,
    IssuedConfirmationToken,
    hash_confirmation_token,
)
from storno_security.accounts.email import (
    MAX_DOMAIN_LENGTH,
    MAX_EMAIL_LENGTH,
    MAX_LOCAL_PART_LENGTH,
    normalise_email,
)
from storno_security.accounts.model import USER_FIELDS, UserAccount
from storno_security.accounts.reset import (
    RESET_TOKEN_PREFIX,
    IssuedResetToken,
    PasswordResetPolicy,
    PasswordResetTokens,
    hash_reset_token,
)
from storno_security.accounts.storage import (
    ConfirmationUse,
    EmailConfirmationStore,
    ResetTokenStore,
    ResetTokenUse,
)
from storno_security.errors import (
    AccountError,
    InvalidConfirmationTokenError,
    InvalidEmailError,
    InvalidResetTokenError,
)

__all__ = [
    "CONFIRMATION_TOKEN_PREFIX",
    "MAX_DOMAIN_LENGTH",
    "MAX_EMAIL_LENGTH",
    "MAX_LOCAL_PART_LENGTH",
    "RESET_TOKEN_PREFIX",
    "USER_FIELDS",
    "AccountError",
    "ConfirmationUse",
    "ConfirmedAddress",
    "EmailConfirmationPolicy",
    "EmailConfirmationStore",
    "EmailConfirmationTokens",
    "InvalidConfirmationTokenError",
    "InvalidEmailError",
    "InvalidResetTokenError",
    "IssuedConfirmationToken",
    "IssuedResetToken",
    "PasswordResetPolicy",
    "PasswordResetTokens",
    "ResetTokenStore",
    "ResetTokenUse",
    "UserAccount",
    "hash_confirmation_token",
    "hash_reset_token",
    "normalise_email",
]
