"""What an operator does for a user who cannot help themselves: find the account, release an
MFA lockout, turn MFA off (a lost authenticator and lost backup codes), list the sessions.

These flows have no caller: they run from an operator's console (a CLI), never from a request,
and each leaves an audit event whose ``method`` is ``admin`` (with no actor: the operator is
not a user of the platform).
"""

from __future__ import annotations

from storno_security.accounts import UserAccount
from storno_security.errors import AccountNotFoundError, AccountStateError
from storno_security.events import SecurityEventType
from storno_security.kit.auth import _email_or_none
from storno_security.kit.deletion import DeletionFlows
from storno_security.tokens.storage import RefreshFamily

__all__ = ["AdminFlows"]


class AdminFlows(DeletionFlows):
    """Operator flows (mixed into :class:`~storno_security.kit.Kit`)."""

    def find_account(self, identifier: str) -> UserAccount:
        """The live account with this email address or user id.

        Raises:
            AccountNotFoundError: no live account has it.
            StoreError: a store failed.
        """
        address = _email_or_none(identifier) if "@" in identifier else None
        if address is not None:
            user = self.directory.find_user(email=address)
            if user is None:
                raise AccountNotFoundError(reason="unknown_or_deleted")
            return user
        return self.live_user(identifier)

    def release_mfa_lockout(self, user_id: str) -> None:
        """Forget the user's count of wrong second-factor codes, so codes are evaluated again
        before the lockout window ends; audited (``mfa.lockout_cleared``).

        Raises:
            AccountNotFoundError: unknown or deleted.
            StoreError: a store failed.
        """
        user = self.live_user(user_id)
        self.lockout.clear(user.user_id)
        self.emit(
            SecurityEventType.MFA_LOCKOUT_CLEARED,
            subject_id=user.user_id,
            details={"method": "admin"},
        )

    def disable_mfa_by_admin(self, user_id: str) -> int:
        """Turn the user's MFA off without a step-up (they lost every factor): the TOTP secret
        and backup codes are deleted and every session ends (REF-4). Passkeys stay. Audited
        (``mfa.disabled``, ``method=admin``). Returns how many sessions were ended.

        Raises:
            AccountNotFoundError: unknown or deleted.
            AccountStateError: MFA is off (``reason="mfa_not_enabled"``).
            ConcurrentChangeError: the account changed meanwhile.
            StoreError: a store failed.
        """
        user = self.live_user(user_id)
        if not user.mfa_enabled:
            raise AccountStateError(reason="mfa_not_enabled")
        self._update(
            user,
            expected={"mfa_enabled": True},
            changes={"mfa_enabled": False, "totp_secret_sealed": None, "totp_pending_sealed": None},
        )
        self.backup_codes.delete(user.user_id)
        self.lockout.clear(user.user_id)
        revoked = self.sessions.revoke_all(user.user_id, reason="admin")
        self.emit(
            SecurityEventType.MFA_DISABLED,
            subject_id=user.user_id,
            details={"method": "admin", "backup_code_count": 0},
        )
        return revoked

    def list_sessions(self, user_id: str) -> list[RefreshFamily]:
        """The user's live sessions (one per login: id, start, absolute end), oldest first.

        Raises:
            AccountNotFoundError: unknown or deleted.
            StoreError: a store failed.
        """
        user = self.live_user(user_id)
        return self.sessions.live_sessions(user.user_id)
