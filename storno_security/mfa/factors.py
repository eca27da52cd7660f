"""The result of a verified second factor, which challenges and step-up tokens build on."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import attrs

__all__ = ["DEFAULT_METHODS", "MFA_METHODS", "MfaMethod", "VerifiedFactor"]

#: The second factors this library knows. ``passkey`` is verified by the passkeys capability.
MfaMethod = Literal["totp", "backup_code", "passkey"]

MFA_METHODS: Final = frozenset({"totp", "backup_code", "passkey"})

#: The methods of an MFA challenge for a user without a passkey (MFA-4).
DEFAULT_METHODS: Final[tuple[MfaMethod, ...]] = ("totp", "backup_code")


@attrs.frozen(kw_only=True)
class VerifiedFactor:
    """A second factor that has just passed.

    Verification returns one or raises; there is no ``False`` to forget to check.

    Attributes:
        user_id: whose factor it was.
        method: which factor passed.
        verified_at: when.
        totp_step: for ``totp``, the time step that was accepted (and can never be again).
        backup_codes_left: for ``backup_code``, how many unused codes the user has left.
    """

    user_id: str
    method: MfaMethod = attrs.field()
    verified_at: datetime
    totp_step: int | None = None
    backup_codes_left: int | None = None

    @method.validator
    def _check_method(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in MFA_METHODS:
            raise ValueError(f"method must be one of {sorted(MFA_METHODS)}")
