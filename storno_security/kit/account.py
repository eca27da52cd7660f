"""The caller's own account: profile, address, password, MFA, backup codes, passkeys, Google.

Every act that adds a way in, replaces one, or moves recovery is re-authenticated through the
one table (ACC-6). A password change and MFA disable end every session (REF-4) and answer with
a fresh one. Account changes are compare-and-set on what the decision read, so two concurrent
changes never both apply (:class:`~storno_security.errors.ConcurrentChangeError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storno_security.accounts.email import normalise_email
from storno_security.accounts.model import UserAccount
from storno_security.audit.capabilities import (
    event_from_backup_code_set,
    event_from_passkey_registration,
)
from storno_security.errors import (
    AccountExistsError,
    AccountStateError,
    ConcurrentChangeError,
    InvalidPasskeyError,
    InvalidPasswordError,
    MfaError,
    ReauthenticationRequiredError,
    UnsupportedHashError,
)
from storno_security.events import SecurityEventType
from storno_security.kit.policy import Proof, SensitiveAction
from storno_security.kit.reauth import ReauthFlows
from storno_security.kit.results import Caller, MfaStatus, Session, TotpEnrolment
from storno_security.mfa.backup_codes import BackupCodeSet
from storno_security.mfa.factors import MfaMethod
from storno_security.passkeys.ceremonies import PasskeyOptions
from storno_security.passkeys.storage import PasskeyCredential

__all__ = ["AccountFlows"]


def mfa_status_of(user: UserAccount, *, has_passkeys: bool, backup_codes_left: int) -> MfaStatus:
    """The account's second factors from what was read (one place for the rule)."""
    methods: list[MfaMethod] = []
    if user.mfa_enabled:
        methods += ["totp", "backup_code"]
    if has_passkeys:
        methods.append("passkey")
    return MfaStatus(
        enabled=user.mfa_enabled,
        methods=tuple(methods),
        backup_codes_left=backup_codes_left if user.mfa_enabled else 0,
        pending_enrolment=user.totp_pending_sealed is not None and not user.mfa_enabled,
        has_passkeys=has_passkeys,
    )


class AccountFlows(ReauthFlows):
    """Own-account flows (mixed into :class:`~storno_security.kit.Kit`)."""

    def _update(
        self, user: UserAccount, *, expected: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> UserAccount:
        updated = self.directory.update_user(
            user.user_id, expected={"deleted_at": None, **expected}, changes=changes
        )
        if updated is None:
            raise ConcurrentChangeError(reason="changed_meanwhile")
        return updated

    # --- profile -----------------------------------------------------------------------------

    def get_user(self, user_id: str) -> UserAccount:
        """The live account.

        Raises:
            AccountNotFoundError: unknown or deleted.
            StoreError: a store failed.
        """
        return self.live_user(user_id)

    def mfa_status(self, user: UserAccount) -> MfaStatus:
        """The account's second factors.

        Raises:
            StoreError: a store failed.
        """
        return mfa_status_of(
            user,
            has_passkeys=self.has_passkeys(user.user_id),
            backup_codes_left=self.backup_codes.remaining(user.user_id) if user.mfa_enabled else 0,
        )

    def update_profile(self, caller: Caller, *, name: str) -> UserAccount:
        """Change the display name (no re-authentication: it grants nothing).

        Raises:
            TypeError, ValueError: ``name`` is not a str of at most 200 characters.
            PermissionDeniedError: the caller is an API key.
            StoreError: a store failed.
        """
        if not isinstance(name, str) or len(name) > 200 or "\x00" in name:
            raise ValueError("name must be at most 200 characters")
        user = self._interactive(caller)
        return self._update(user, expected={}, changes={"name": name})

    def change_email(
        self,
        caller: Caller,
        new_email: str,
        *,
        step_up_token: str | None = None,
        current_password: str | None = None,
    ) -> UserAccount:
        """Change the address (re-authenticated, ACC-6): the new one is unconfirmed until its
        link is used (ACC-5); outstanding confirmation links of the old one die.

        Raises:
            InvalidEmailError: the address is not plausible.
            ReauthenticationRequiredError, InvalidStepUpTokenError, InvalidPasswordError: the
                proof is missing or wrong.
            AccountExistsError: another account holds the address.
            ConcurrentChangeError: the account changed meanwhile.
            StoreError: a store failed.
        """
        address = normalise_email(new_email)
        user = self._interactive(caller)
        self.reauthenticate(
            caller,
            SensitiveAction.EMAIL_CHANGE,
            step_up_token=step_up_token,
            current_password=current_password,
        )
        if user.email == address:
            return user
        updated = self._update(
            user,
            expected={"email": user.email},
            changes={"email": address, "email_confirmed_at": None},
        )
        self.confirmations.revoke_all(user.user_id)
        self.defer(lambda: self._send_confirmation(user.user_id))
        return updated

    # --- password ----------------------------------------------------------------------------

    def change_password(
        self,
        caller: Caller,
        *,
        new_password: str,
        current_password: str | None = None,
        step_up_token: str | None = None,
    ) -> Session:
        """Set a new password, end every session (REF-4) and start a fresh one.

        The current password is required whenever the account has one; with MFA on a step-up
        token for ``account.password_change`` is required too (ACC-6), so a stolen session
        plus a phished password cannot take the account over. An account without a password
        (Google or passkey only) sets its first one with the table's proof.

        Raises:
            PasswordPolicyError: the new password breaks the policy.
            ReauthenticationRequiredError: a required proof is missing.
            InvalidPasswordError: the current password is wrong.
            InvalidStepUpTokenError: the step-up token is not live for this act.
            ConcurrentChangeError: the password changed meanwhile.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        self.hasher.check_new_password(new_password)
        if user.has_password:
            if current_password is None:
                raise ReauthenticationRequiredError(
                    action=SensitiveAction.PASSWORD_CHANGE.value,
                    accepted=(Proof.PASSWORD.value,),
                    reason="missing",
                )
            try:
                self.hasher.verify(current_password, user.password_hash)
            except (InvalidPasswordError, UnsupportedHashError) as exc:
                self.emit(
                    SecurityEventType.PASSWORD_CHANGED,
                    actor_id=user.user_id,
                    details={"method": "password"},
                    error=exc,
                )
                raise InvalidPasswordError(reason=exc.reason) from None
        if user.mfa_enabled or not user.has_password:
            self.reauthenticate(
                caller, SensitiveAction.PASSWORD_CHANGE, step_up_token=step_up_token
            )
        new_hash = self.hasher.hash(new_password)
        updated = self._update(
            user,
            expected={"password_hash": user.password_hash},
            changes={"password_hash": new_hash, "password_changed_at": self.clock.now()},
        )
        revoked = self.sessions.revoke_all(user.user_id, reason="password_changed")
        self.emit(
            SecurityEventType.PASSWORD_CHANGED,
            actor_id=user.user_id,
            subject_id=user.user_id,
            details={"session_count": revoked},
        )
        return self.start_session(updated, method="password_change")

    # --- TOTP and backup codes ---------------------------------------------------------------

    def begin_totp_enrolment(
        self,
        caller: Caller,
        *,
        step_up_token: str | None = None,
        current_password: str | None = None,
    ) -> TotpEnrolment:
        """Start TOTP enrolment (MFA-1, re-authenticated): a new secret, shown once, kept
        sealed as pending until a code confirms it.

        Raises:
            AccountStateError: MFA is on already (``reason="mfa_enabled"``).
            ReauthenticationRequiredError, InvalidStepUpTokenError, InvalidPasswordError: the
                proof is missing or wrong.
            ConcurrentChangeError: the account changed meanwhile.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        if user.mfa_enabled:
            raise AccountStateError(reason="mfa_enabled")
        self.reauthenticate(
            caller,
            SensitiveAction.MFA_ENROL,
            step_up_token=step_up_token,
            current_password=current_password,
        )
        enrolment = self.totp.begin_enrolment(
            account_name=user.email or user.user_id, issuer=self.policy.totp_issuer
        )
        sealed = self.keys.vault.seal(
            enrolment.secret,
            associated_data=self.totp_associated_data(user.user_id, pending=True),
        )
        self._update(user, expected={"mfa_enabled": False}, changes={"totp_pending_sealed": sealed})
        return TotpEnrolment(secret=enrolment.secret, uri=enrolment.provisioning_uri)

    def confirm_totp_enrolment(self, caller: Caller, code: str) -> BackupCodeSet:
        """Turn MFA on with the first code of the new authenticator (MFA-1): the confirmed
        secret is sealed, 10 backup codes are made (MFA-3) and returned once.

        Raises:
            AccountStateError: MFA is on already, or no enrolment is pending.
            InvalidMfaCodeError: the code is wrong.
            MfaLockedError: too many wrong codes.
            ConcurrentChangeError: the account changed meanwhile.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        if user.mfa_enabled:
            raise AccountStateError(reason="mfa_enabled")
        pending = user.totp_pending_sealed
        if pending is None:
            raise AccountStateError(reason="no_pending_enrolment")
        secret = self.keys.vault.open(
            pending, associated_data=self.totp_associated_data(user.user_id, pending=True)
        ).decode("ascii")
        try:
            self.totp.confirm_enrolment(code, secret=secret, user_id=user.user_id)
        except MfaError as exc:
            self.emit(
                SecurityEventType.MFA_FAILED,
                actor_id=user.user_id,
                details={"method": "totp"},
                error=exc,
            )
            raise
        codes = self.backup_codes.generate(user.user_id)
        sealed = self.keys.vault.seal(
            secret, associated_data=self.totp_associated_data(user.user_id)
        )
        self._update(
            user,
            expected={"totp_pending_sealed": pending, "mfa_enabled": False},
            changes={
                "totp_secret_sealed": sealed,
                "totp_pending_sealed": None,
                "mfa_enabled": True,
            },
        )
        self.emit(
            SecurityEventType.MFA_ENABLED,
            actor_id=user.user_id,
            subject_id=user.user_id,
            details={"method": "totp", "backup_code_count": len(codes.codes)},
        )
        return codes

    def disable_mfa(self, caller: Caller, *, step_up_token: str | None = None) -> Session:
        """Turn MFA off (needs a step-up token for ``mfa.disable``, MFA-6), delete the TOTP
        secret and backup codes, end every session (REF-4) and start a fresh one.

        Raises:
            AccountStateError: MFA is off (``reason="mfa_not_enabled"``).
            ReauthenticationRequiredError, InvalidStepUpTokenError: the step-up is missing or
                not live.
            ConcurrentChangeError: the account changed meanwhile.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        if not user.mfa_enabled:
            raise AccountStateError(reason="mfa_not_enabled")
        self.reauthenticate(caller, SensitiveAction.MFA_DISABLE, step_up_token=step_up_token)
        updated = self._update(
            user,
            expected={"mfa_enabled": True},
            changes={"mfa_enabled": False, "totp_secret_sealed": None, "totp_pending_sealed": None},
        )
        self.backup_codes.delete(user.user_id)
        revoked = self.sessions.revoke_all(user.user_id, reason="mfa_disabled")
        self.emit(
            SecurityEventType.MFA_DISABLED,
            actor_id=user.user_id,
            subject_id=user.user_id,
            details={"method": "step_up", "backup_code_count": 0},
        )
        del revoked
        return self.start_session(updated, method="mfa_disable")

    def regenerate_backup_codes(
        self,
        caller: Caller,
        *,
        step_up_token: str | None = None,
        current_password: str | None = None,
    ) -> BackupCodeSet:
        """Replace the whole set of backup codes (MFA-3, re-authenticated).

        Raises:
            AccountStateError: MFA is off.
            ReauthenticationRequiredError, InvalidStepUpTokenError, InvalidPasswordError: the
                proof is missing or wrong.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        if not user.mfa_enabled:
            raise AccountStateError(reason="mfa_not_enabled")
        self.reauthenticate(
            caller,
            SensitiveAction.BACKUP_CODES_REGENERATE,
            step_up_token=step_up_token,
            current_password=current_password,
        )
        codes = self.backup_codes.generate(user.user_id)
        self.emit_event(event_from_backup_code_set(codes, at=self.clock.now()))
        return codes

    # --- passkeys ----------------------------------------------------------------------------

    def begin_passkey_registration(
        self,
        caller: Caller,
        *,
        step_up_token: str | None = None,
        current_password: str | None = None,
    ) -> PasskeyOptions:
        """WebAuthn creation options for a new passkey (PK-1), after re-authentication: the
        challenge inside is bound to this user and dies after 5 minutes (PK-2).

        Raises:
            AccountStateError: passkeys are off.
            ReauthenticationRequiredError, InvalidStepUpTokenError, InvalidPasswordError: the
                proof is missing or wrong.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        passkeys = self._require_passkeys()
        self.reauthenticate(
            caller,
            SensitiveAction.PASSKEY_REGISTER,
            step_up_token=step_up_token,
            current_password=current_password,
        )
        options: PasskeyOptions = passkeys.start_registration(
            user.user_id,
            user_name=user.email or user.user_id,
            user_display_name=user.name or None,
        )
        return options

    def finish_passkey_registration(
        self, caller: Caller, response: Mapping[str, Any] | str, *, name: str
    ) -> PasskeyCredential:
        """Verify the authenticator's answer (PK-1, PK-3) and store the passkey.

        Raises:
            ValueError: ``name`` is not acceptable.
            InvalidPasskeyError: the answer was refused (no live challenge of this user, wrong
                origin, no user verification, a credential registered already, ...).
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        passkeys = self._require_passkeys()
        try:
            credential: PasskeyCredential = passkeys.finish_registration(
                response, user_id=user.user_id, name=name
            )
        except InvalidPasskeyError as exc:
            self.emit(
                SecurityEventType.PASSKEY_REGISTERED,
                actor_id=user.user_id,
                details={"method": "passkey"},
                error=exc,
            )
            raise
        self.emit_event(event_from_passkey_registration(credential))
        return credential

    def list_passkeys(self, caller: Caller) -> list[PasskeyCredential]:
        """The caller's passkeys, oldest first.

        Raises:
            PermissionDeniedError: the caller is an API key.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        if self.passkeys is None:
            return []
        found: list[PasskeyCredential] = self.passkeys.list_passkeys(user.user_id)
        return found

    def rename_passkey(self, caller: Caller, credential_id: bytes, *, name: str) -> bool:
        """Rename one of the caller's passkeys; ``False`` when they have no such passkey.

        Raises:
            ValueError: ``name`` is not acceptable.
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        passkeys = self._require_passkeys()
        return bool(passkeys.rename_passkey(user.user_id, credential_id, name=name))

    def delete_passkey(self, caller: Caller, credential_id: bytes) -> bool:
        """Delete one of the caller's passkeys; ``False`` when they have no such passkey.

        Raises:
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        passkeys = self._require_passkeys()
        deleted = bool(passkeys.delete_passkey(user.user_id, credential_id))
        if deleted:
            self.emit(
                SecurityEventType.PASSKEY_REMOVED,
                actor_id=user.user_id,
                subject_id=user.user_id,
                details={"credential_id": _credential_label(credential_id)},
            )
        return deleted

    # --- Google ------------------------------------------------------------------------------

    def link_google(
        self,
        caller: Caller,
        id_token: str,
        *,
        nonce: str | None = None,
        step_up_token: str | None = None,
        current_password: str | None = None,
    ) -> UserAccount:
        """Link the Google account of ``id_token`` to the caller's account (re-authenticated:
        it adds a way in). Never by address alone; linking the linked one again changes nothing.

        Raises:
            AccountStateError: Google is off (``google_disabled``) or the account is linked
                to another Google account (``google_linked``).
            ReauthenticationRequiredError, InvalidStepUpTokenError, InvalidPasswordError: the
                proof is missing or wrong.
            InvalidIdTokenError, IdentityProviderUnavailableError: the token was refused.
            AccountExistsError: the Google account is another account's (``google_taken``).
            StoreError: a store failed.
        """
        user = self._interactive(caller)
        if self.google is None:
            raise AccountStateError(reason="google_disabled")
        self.reauthenticate(
            caller,
            SensitiveAction.GOOGLE_LINK,
            step_up_token=step_up_token,
            current_password=current_password,
        )
        identity = self.google.verify(id_token, expected_nonce=nonce)
        if user.google_subject == identity.subject:
            return user  # linked already: nothing changes
        try:
            if user.google_subject is not None:
                raise AccountStateError(reason="google_linked")
            updated = self._update(
                user,
                expected={"google_subject": None},
                changes={"google_subject": identity.subject},
            )
        except (AccountStateError, AccountExistsError) as exc:
            action = {"action": SensitiveAction.GOOGLE_LINK.value}
            self.emit(
                SecurityEventType.ACCESS_DENIED, actor_id=user.user_id, details=action, error=exc
            )
            raise
        details: dict[str, Any] = {"method": "google"}
        if identity.hosted_domain:
            details["hosted_domain"] = identity.hosted_domain
        self.emit(
            SecurityEventType.GOOGLE_LINKED,
            actor_id=user.user_id,
            subject_id=user.user_id,
            details=details,
        )
        return updated


def _credential_label(credential_id: bytes) -> str:
    import hashlib

    return hashlib.sha256(credential_id).hexdigest()
