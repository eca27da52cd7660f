"""Re-authentication (ACC-6) and step-up (MFA-6): the proof a sensitive act needs beyond the
access token, decided in one place from :data:`~storno_security.kit.policy.REAUTH_TABLE`.

An access token proves a session, not a person: one stolen for a moment must not be enough to
mint an API key, read a sealed secret, add a way in, or delete the account. What is asked
depends on what the account has; whether something is asked never does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storno_security.accounts.model import UserAccount
from storno_security.audit.capabilities import event_from_step_up
from storno_security.errors import (
    InvalidMfaCodeError,
    InvalidPasswordError,
    InvalidStepUpTokenError,
    MfaError,
    PasskeyError,
    PermissionDeniedError,
    ReauthenticationRequiredError,
    UnsupportedHashError,
)
from storno_security.events import Outcome, SecurityEventType
from storno_security.kit.auth import AuthFlows
from storno_security.kit.policy import REAUTH_TABLE, Proof, SensitiveAction
from storno_security.kit.results import Caller, Reauthenticated
from storno_security.mfa.factors import VerifiedFactor
from storno_security.mfa.step_up import StepUpGrant
from storno_security.passkeys.ceremonies import PasskeyOptions

__all__ = ["ReauthFlows"]


def _action(action: SensitiveAction | str) -> SensitiveAction:
    try:
        return SensitiveAction(action)
    except ValueError:
        raise ValueError(f"not a sensitive action: {action!r}") from None


class ReauthFlows(AuthFlows):
    """Re-authentication and step-up (mixed into :class:`~storno_security.kit.Kit`)."""

    def _interactive(self, caller: Caller) -> UserAccount:
        """The caller's live account; an API key never re-authenticates (KEY-5)."""
        if not isinstance(caller, Caller):
            raise TypeError("caller must be a Caller")
        if caller.is_api_key:
            raise PermissionDeniedError(reason="key_forbidden")
        return self.live_user(caller.user_id)

    def accepted_proofs(self, caller: Caller, action: SensitiveAction | str) -> tuple[Proof, ...]:
        """What would re-authenticate ``caller`` for ``action`` now, strongest first.

        Raises:
            PermissionDeniedError: the caller is an API key.
            AccountNotFoundError: the account is gone.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        rule = REAUTH_TABLE[_action(action)]
        return rule.accepted(mfa_enabled=user.mfa_enabled, has_password=user.has_password)

    def reauthenticate(
        self,
        caller: Caller,
        action: SensitiveAction | str,
        *,
        step_up_token: str | None = None,
        current_password: str | None = None,
    ) -> Reauthenticated:
        """Check the proof ``caller`` offers for ``action`` (ACC-6). A step-up token is spent.

        The proof must be one the table accepts for the account as it is now: with MFA on, a
        step-up token for this very act; else a step-up token or the current password; else
        (no password) a step-up token or a login within ``policy.fresh_login``.

        Raises:
            ValueError: ``action`` is not a :class:`SensitiveAction`.
            PermissionDeniedError: the caller is an API key (``reason="key_forbidden"``).
            AccountNotFoundError: the account is gone.
            ReauthenticationRequiredError: no acceptable proof was offered (``accepted`` lists
                what would do; ``reason`` is ``missing`` or ``stale_login``).
            InvalidStepUpTokenError: the step-up token is not a live token of this user for
                this act.
            InvalidPasswordError: the current password is wrong.
            StoreError: a store failed.
        """
        act = _action(action)
        user = self._interactive(caller)
        accepted = REAUTH_TABLE[act].accepted(
            mfa_enabled=user.mfa_enabled, has_password=user.has_password
        )
        if step_up_token is not None and Proof.STEP_UP in accepted:
            try:
                verified = self.step_up_tokens.consume(
                    step_up_token, user_id=user.user_id, action=act.value
                )
            except InvalidStepUpTokenError as exc:
                self._reauth_failed(user, act, Proof.STEP_UP, exc)
                raise
            self.emit_event(event_from_step_up(verified))
            return self._reauthenticated(user, act, Proof.STEP_UP)
        if current_password is not None and Proof.PASSWORD in accepted:
            try:
                self.hasher.verify(current_password, user.password_hash)
            except (InvalidPasswordError, UnsupportedHashError) as exc:
                self._reauth_failed(user, act, Proof.PASSWORD, exc)
                raise InvalidPasswordError(reason=exc.reason) from None
            return self._reauthenticated(user, act, Proof.PASSWORD)
        if Proof.FRESH_LOGIN in accepted and self._fresh(caller):
            return self._reauthenticated(user, act, Proof.FRESH_LOGIN)
        stale = Proof.FRESH_LOGIN in accepted and step_up_token is None
        reason = "stale_login" if stale else "missing"
        self.emit(
            SecurityEventType.ACCESS_DENIED,
            outcome=Outcome.FAILURE,
            actor_id=user.user_id,
            subject_id=user.user_id,
            details={"action": act.value, "reason": reason},
        )
        raise ReauthenticationRequiredError(
            action=act.value, accepted=tuple(p.value for p in accepted), reason=reason
        )

    def _fresh(self, caller: Caller) -> bool:
        when = self.auth_time(caller)
        if when is None:
            return False
        age = self.clock.now() - when
        return -self.policy.tokens.leeway <= age <= self.policy.fresh_login

    def _reauthenticated(
        self, user: UserAccount, action: SensitiveAction, proof: Proof
    ) -> Reauthenticated:
        self.emit(
            SecurityEventType.REAUTHENTICATED,
            actor_id=user.user_id,
            subject_id=user.user_id,
            details={"action": action.value, "method": proof.value},
        )
        return Reauthenticated(action=action, proof=proof)

    def _reauth_failed(
        self, user: UserAccount, action: SensitiveAction, proof: Proof, exc: BaseException
    ) -> None:
        self.emit(
            SecurityEventType.REAUTHENTICATED,
            actor_id=user.user_id,
            subject_id=user.user_id,
            details={"action": action.value, "method": proof.value},
            error=exc,
        )

    # --- step-up -----------------------------------------------------------------------------

    def step_up(
        self,
        caller: Caller,
        action: SensitiveAction | str,
        *,
        method: str,
        code: str | None = None,
        credential: Mapping[str, Any] | str | None = None,
    ) -> StepUpGrant:
        """Buy a single-use step-up token for ``action`` with a fresh second factor (MFA-6):
        a TOTP or backup code (MFA on), or a passkey assertion (start it with
        :meth:`step_up_passkey_options`). Valid 120 seconds, for this user and act only.

        Raises:
            ValueError: an unknown action or method, or the matching answer is missing.
            PermissionDeniedError: the caller is an API key (KEY-5).
            AccountNotFoundError: the account is gone.
            InvalidMfaCodeError: the code is wrong (or the account has no such factor).
            InvalidPasskeyError: the assertion was refused.
            MfaLockedError: too many wrong codes.
            StoreError: a store failed.
        """
        act = _action(action)
        user = self._interactive(caller)
        if method not in ("totp", "backup_code", "passkey"):
            raise ValueError("method must be totp, backup_code or passkey")
        try:
            factor = self._step_up_factor(user, method, code, credential)
            grant = self.step_up_tokens.issue(factor, action=act.value)
        except (MfaError, PasskeyError) as exc:
            self.emit(
                SecurityEventType.STEP_UP_VERIFIED,
                actor_id=user.user_id,
                details={"action": act.value, "method": method},
                error=exc,
            )
            raise
        return grant

    def _step_up_factor(
        self,
        user: UserAccount,
        method: str,
        code: str | None,
        credential: Mapping[str, Any] | str | None,
    ) -> VerifiedFactor:
        if method == "passkey":
            if credential is None:
                raise ValueError("a passkey answer needs the credential")
            if self.passkeys is None:
                raise InvalidMfaCodeError(reason="unsupported_method")
            login = self.passkeys.verify_second_factor(credential, user_id=user.user_id)
            return VerifiedFactor(user_id=user.user_id, method="passkey", verified_at=login.used_at)
        if not isinstance(code, str):
            raise ValueError("a code answer needs the code")
        if not user.mfa_enabled:
            raise InvalidMfaCodeError(reason="mfa_not_enabled")
        return self.factors.verify(
            user.user_id, method=method, code=code, totp_secret=self.open_totp_secret(user)
        )

    def step_up_passkey_options(self, caller: Caller) -> PasskeyOptions:
        """WebAuthn options for a passkey step-up: the caller's own credentials only.

        Raises:
            PermissionDeniedError: the caller is an API key.
            AccountStateError: passkeys are off.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        passkeys = self._require_passkeys()
        options: PasskeyOptions = passkeys.start_login(user.user_id)
        return options
