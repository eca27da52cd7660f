"""Sign-up and sign-in: register, confirm the address, log in (password, Google, passkey) with
the MFA challenge, refresh, log out, reset a forgotten password, authenticate a request.

Every answer to a failed login is the same :class:`~storno_security.errors.InvalidPasswordError`
whatever the cause (ACC-1), and an unknown address costs the same bcrypt work as a wrong
password (PW-4). Flows that must answer the same for every address (forgotten password, resend
of the confirmation) do the account's work through ``defer``, after the answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from storno_security.accounts.email import normalise_email
from storno_security.accounts.model import UserAccount
from storno_security.audit.capabilities import (
    event_from_google_login,
    event_from_mfa_challenge,
    event_from_passkey_login,
    event_from_second_factor,
)
from storno_security.errors import (
    AccountExistsError,
    AccountStateError,
    InvalidAccessTokenError,
    InvalidApiKeyError,
    InvalidConfirmationTokenError,
    InvalidEmailError,
    InvalidMfaChallengeError,
    InvalidMfaCodeError,
    InvalidPasskeyError,
    InvalidPasswordError,
    InvalidResetTokenError,
    MfaError,
    PasskeyError,
    UnsupportedHashError,
)
from storno_security.events import SecurityEventType
from storno_security.kit._core import KitCore, Mail
from storno_security.kit.results import Caller, LoginResult, MfaRequired, Registration, Session
from storno_security.kit.storage import AccountOverview
from storno_security.mfa.challenges import PendingChallenge
from storno_security.mfa.factors import VerifiedFactor
from storno_security.passkeys.ceremonies import PasskeyOptions, VerifiedPasskeyLogin
from storno_security.rbac.invitations import Organization
from storno_security.rbac.model import Membership
from storno_security.rbac.permissions import Role
from storno_security.tokens.sessions import TokenPair
from storno_security.tokens.storage import SessionState

__all__ = ["AuthFlows", "parse_authorization"]


_MFA_METHODS = ("totp", "backup_code", "passkey")


def _new_id() -> str:
    return str(uuid.uuid4())


def _email_or_none(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    try:
        return normalise_email(raw)
    except InvalidEmailError:
        return None


def parse_authorization(
    authorization: str | None,
) -> tuple[Literal["api_key", "bearer"], str] | None:
    """The credential of an ``Authorization`` header: ``("bearer", token)`` for
    ``Bearer <access token>``, ``("api_key", key)`` for a bare ``af_...`` key, ``None`` when
    the header is absent or empty. Nothing is verified here; the one parse that
    :meth:`AuthFlows.authenticate` and the async verbs share.

    A key sent as ``Bearer af_...`` is refused: keys and tokens never share a scheme.

    Raises:
        InvalidAccessTokenError: a malformed header (``reason="malformed_header"``).
        InvalidApiKeyError: a key under the ``Bearer`` scheme (``reason="bearer_scheme"``).
    """
    if authorization is None or authorization == "":
        return None
    if authorization.startswith("af_"):
        return "api_key", authorization
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential or " " in credential:
        raise InvalidAccessTokenError(reason="malformed_header")
    if credential.startswith("af_"):
        raise InvalidApiKeyError(reason="bearer_scheme")
    return "bearer", credential


class AuthFlows(KitCore):
    """Registration and login flows (mixed into :class:`~storno_security.kit.Kit`)."""

    # --- sessions ----------------------------------------------------------------------------

    def start_session(self, user: UserAccount, *, method: str) -> Session:
        """A new login session for ``user``: its tokens carry the time of this authentication
        (``auth_time``), which no refresh renews.

        Raises:
            InvalidRefreshTokenError: every session of the user was revoked while this one was
                being started (a password change racing the login); log in again.
            StoreError: a store failed; no session exists.
        """
        pair = self.sessions.start(user.user_id, auth_time=self.clock.now())
        self.emit(
            SecurityEventType.LOGIN_SUCCEEDED,
            actor_id=user.user_id,
            subject_id=user.user_id,
            organization_id=self.default_organization_id(user.user_id),
            details={"method": method, "session_id": pair.session_id},
        )
        return Session(tokens=pair, user=user, method=method)

    def default_organization_id(self, user_id: str) -> str | None:
        """The organization of the user's default (else oldest) live membership."""
        live = [m for m in self.directory.memberships_of(user_id) if m.deleted_at is None]
        for membership in live:
            if membership.is_default:
                return membership.organization_id
        return live[0].organization_id if live else None

    def _challenge_or_session(self, user: UserAccount, *, method: str) -> LoginResult:
        """MFA-4: a challenge when MFA is on, else a session."""
        if not user.mfa_enabled:
            return self.start_session(user, method=method)
        has_passkey = self.has_passkeys(user.user_id)
        issued = self.challenges.issue(user.user_id, has_passkey=has_passkey)
        options = None
        if has_passkey and self.passkeys is not None:
            # MFA-5: the passkey ceremony's options come with the challenge.
            options = self.passkeys.start_login(user.user_id)
        return MfaRequired(
            token=issued.token,
            methods=issued.methods,
            expires_at=issued.expires_at,
            passkey_options=options,
        )

    # --- registration and confirmation -------------------------------------------------------

    def register(
        self,
        email: str,
        password: str,
        *,
        name: str = "",
        organization_name: str | None = None,
    ) -> Registration:
        """Create an account with its organization and Owner membership (ACC-1, RBAC-1), mail
        a confirmation link (ACC-5), and start a session unless the policy requires the address
        to be confirmed first.

        Raises:
            InvalidEmailError: the address is not plausible.
            PasswordPolicyError: the password breaks the policy (PW-5).
            AccountExistsError: the address is registered already (``reason="email_taken"``).
            StoreError: a store failed; nothing was created.
        """
        address = normalise_email(email)
        self.hasher.check_new_password(password)
        password_hash = self.hasher.hash(password)
        return self._create_account(
            email=address,
            name=name,
            password_hash=password_hash,
            organization_name=organization_name or name or address.split("@", 1)[0],
            method="password",
        )

    def _create_account(
        self,
        *,
        email: str,
        name: str,
        password_hash: str | None,
        organization_name: str,
        method: str,
        google_subject: str | None = None,
        email_confirmed: bool = False,
    ) -> Registration:
        now = self.clock.now()
        user = UserAccount(
            user_id=_new_id(),
            email=email,
            name=name,
            password_hash=password_hash,
            google_subject=google_subject,
            email_confirmed_at=now if email_confirmed else None,
            created_at=now,
        )
        organization = Organization(
            organization_id=_new_id(), name=organization_name[:200], created_at=now
        )
        owner = Membership(
            user_id=user.user_id,
            organization_id=organization.organization_id,
            role=Role.OWNER,
            is_default=True,
        )
        self.directory.create_account(user, organization=organization, owner=owner)
        self.emit(
            SecurityEventType.REGISTERED,
            actor_id=user.user_id,
            subject_id=user.user_id,
            organization_id=organization.organization_id,
            details={"method": method},
        )
        if not email_confirmed:
            self.defer(lambda: self._send_confirmation(user.user_id))
        session = None
        if email_confirmed or not self.policy.require_confirmed_email:
            session = self.start_session(user, method="registration")
        return Registration(
            user=user, organization_id=organization.organization_id, session=session
        )

    def _send_confirmation(self, user_id: str) -> None:
        user = self.directory.get_user(user_id)
        if user is None or not user.is_live or user.email is None or user.email_confirmed:
            return
        issued = self.confirmations.issue(user.user_id, email=user.email)
        self.mailer.send(
            Mail(kind="email_confirmation", to=user.email, token=issued.token, user_id=user_id)
        )

    def resend_confirmation(self, email: str) -> None:
        """Mail a new confirmation link if ``email`` belongs to a live, unconfirmed account.

        Answers the same (``None``, no error) for every address, registered or not, valid or
        not; the account's work runs through ``defer``.
        """
        address = _email_or_none(email)
        if address is None:
            return

        def work() -> None:
            user = self.directory.find_user(email=address)
            if user is not None:
                self._send_confirmation(user.user_id)

        self.defer(work)

    def confirm_email(self, token: str) -> UserAccount:
        """Prove the address with a confirmation token (ACC-5): single use, 24 hours, and only
        for the address it was sent to.

        Raises:
            InvalidConfirmationTokenError: malformed, unknown, used, expired, or the account's
                address changed since (``reason="address_changed"``), or the account is gone.
            StoreError: a store failed.
        """
        confirmed = self.confirmations.consume(token)
        user = self.directory.get_user(confirmed.user_id)
        if user is None or not user.is_live or user.email != confirmed.email:
            raise InvalidConfirmationTokenError(reason="address_changed")
        if user.email_confirmed:
            return user
        updated = self.directory.update_user(
            user.user_id,
            expected={"email": confirmed.email, "deleted_at": None},
            changes={"email_confirmed_at": self.clock.now()},
        )
        if updated is None:
            raise InvalidConfirmationTokenError(reason="address_changed")
        self.emit(SecurityEventType.EMAIL_CONFIRMED, actor_id=user.user_id, subject_id=user.user_id)
        return updated

    # --- password login and MFA --------------------------------------------------------------

    def login(self, email: str, password: str) -> LoginResult:
        """Log in with an address and password (PW-4, ACC-1, MFA-4): a session, or an MFA
        challenge when MFA is on. A hash below the policy is upgraded on success (PW-3).

        Raises:
            InvalidPasswordError: unknown address, no password, wrong password, or a malformed
                stored hash: one error for every case.
            PasswordPolicyError: the password is longer than the policy allows.
            AccountStateError: ``reason="email_not_confirmed"`` when the policy requires a
                confirmed address (raised only after the password was right).
            StoreError: a store failed.
        """
        address = _email_or_none(email)
        user = self.directory.find_user(email=address) if address is not None else None
        stored = user.password_hash if user is not None else None
        try:
            verified = self.hasher.verify(password, stored)
        except (InvalidPasswordError, UnsupportedHashError) as exc:
            self.emit(
                SecurityEventType.LOGIN_FAILED,
                actor_id=user.user_id if user is not None else None,
                details={"method": "password"},
                error=exc,
            )
            raise InvalidPasswordError(reason=exc.reason) from None
        if user is None or stored is None:  # pragma: no cover - verify raised for both
            raise InvalidPasswordError(reason="unknown_user")
        if verified.new_hash is not None:
            upgraded = self.directory.update_user(
                user.user_id,
                expected={"password_hash": stored},
                changes={"password_hash": verified.new_hash},
            )
            user = upgraded or user
        if self.policy.require_confirmed_email and not user.email_confirmed:
            raise AccountStateError(reason="email_not_confirmed")
        return self._challenge_or_session(user, method="password")

    def verify_mfa(
        self,
        mfa_token: str,
        *,
        method: str,
        code: str | None = None,
        credential: Mapping[str, Any] | str | None = None,
    ) -> Session:
        """Answer an MFA challenge (MFA-4, MFA-5) with a TOTP code, a backup code or a passkey
        assertion, and start the session.

        Raises:
            ValueError: ``method`` is not ``totp``, ``backup_code`` or ``passkey``, or the
                matching ``code``/``credential`` is missing.
            InvalidMfaChallengeError: the challenge is malformed, unknown, expired, used or dead.
            InvalidMfaCodeError: the code was wrong (``attempts_left`` says how many more).
            InvalidPasskeyError: the assertion was refused (counted as a wrong answer).
            MfaLockedError: too many wrong codes for this user.
            StoreError: a store failed.
        """
        if method not in _MFA_METHODS:
            raise ValueError("method must be totp, backup_code or passkey")
        if method == "passkey" and credential is None:
            raise ValueError("a passkey answer needs the credential")
        if method != "passkey" and not isinstance(code, str):
            raise ValueError("a code answer needs the code")
        passkey_logins: list[VerifiedPasskeyLogin] = []

        def verify_factor(pending: PendingChallenge) -> VerifiedFactor:
            if method == "passkey":
                if self.passkeys is None:
                    raise InvalidMfaCodeError(reason="unsupported_method")
                login = self.passkeys.verify_second_factor(
                    credential or {}, user_id=pending.user_id
                )
                passkey_logins.append(login)
                return VerifiedFactor(
                    user_id=pending.user_id, method="passkey", verified_at=login.used_at
                )
            user = self.directory.get_user(pending.user_id)
            secret = self.open_totp_secret(user) if user is not None else None
            return self.factors.verify(
                pending.user_id, method=method, code=code or "", totp_secret=secret
            )

        try:
            verified = self.challenges.complete(mfa_token, verify_factor)
        except (MfaError, PasskeyError) as exc:
            self.emit(SecurityEventType.MFA_FAILED, details={"method": method}, error=exc)
            raise
        if passkey_logins:
            self.emit_event(event_from_passkey_login(passkey_logins[0], second_factor=True))
        else:
            self.emit_event(event_from_mfa_challenge(verified))
            if method == "backup_code":
                self.emit_event(event_from_second_factor(verified.factor))
        user = self.directory.get_user(verified.user_id)
        if user is None or not user.is_live:
            raise InvalidMfaChallengeError(reason="account_gone")
        session = self.start_session(user, method=f"mfa_{method}")
        left = verified.factor.backup_codes_left
        if left is None:
            return session
        return Session(
            tokens=session.tokens, user=user, method=session.method, backup_codes_left=left
        )

    # --- passkey and Google login ------------------------------------------------------------

    def _require_passkeys(self) -> Any:
        if self.passkeys is None:
            raise AccountStateError(reason="passkeys_disabled")
        return self.passkeys

    def passkey_login_options(self, email: str | None = None) -> PasskeyOptions:
        """Options for a passkey login (PK-4): with the account's credentials for a known
        address, usernameless otherwise (an unknown address gets the same usernameless answer,
        so it reveals nothing).

        Raises:
            AccountStateError: passkeys are off (``reason="passkeys_disabled"``).
            StoreError: a store failed.
        """
        passkeys = self._require_passkeys()
        address = _email_or_none(email) if email is not None else None
        user = self.directory.find_user(email=address) if address is not None else None
        options: PasskeyOptions = passkeys.start_login(user.user_id if user else None)
        return options

    def login_with_passkey(self, credential: Mapping[str, Any] | str) -> Session:
        """Log in with a passkey assertion (PK-3, PK-4); it needs no second factor (MFA-5).

        Raises:
            AccountStateError: passkeys are off.
            InvalidPasskeyError: the assertion was refused (one error for every cause).
            PasskeyCloneSuspectedError: the sign count went back; the credential is flagged.
            StoreError: a store failed.
        """
        passkeys = self._require_passkeys()
        try:
            login: VerifiedPasskeyLogin = passkeys.finish_login(credential)
        except PasskeyError as exc:
            self.emit(SecurityEventType.LOGIN_FAILED, details={"method": "passkey"}, error=exc)
            raise
        user = self.directory.get_user(login.user_id)
        if user is None or not user.is_live:
            raise InvalidPasskeyError(reason="unknown_user")
        self.emit_event(event_from_passkey_login(login))
        return self.start_session(user, method="passkey")

    def login_with_google(self, id_token: str, *, nonce: str | None = None) -> LoginResult:
        """Sign in with a Google ID token: the linked account, or a new one (its address is
        confirmed by Google). An account that holds the address but is not linked is never
        adopted (it may be a squatter's): link Google from that account instead.

        Raises:
            AccountStateError: Google sign-in is not configured (``reason="google_disabled"``).
            InvalidIdTokenError: the token was refused.
            IdentityProviderUnavailableError: Google's keys could not be fetched.
            InvalidEmailError: the Google account's address is not usable.
            AccountExistsError: an unlinked account holds the address (``account_exists``).
            StoreError: a store failed.
        """
        if self.google is None:
            raise AccountStateError(reason="google_disabled")
        identity = self.google.verify(id_token, expected_nonce=nonce)
        user = self.directory.find_user(google_subject=identity.subject)
        if user is None:
            address = normalise_email(identity.email)
            holder = self.directory.find_user(email=address)
            if holder is not None:
                self.emit(
                    SecurityEventType.LOGIN_FAILED,
                    actor_id=holder.user_id,
                    subject_id=holder.user_id,
                    details={"method": "google"},
                    error=AccountExistsError(reason="account_exists"),
                )
                raise AccountExistsError(reason="account_exists")
            registration = self._create_account(
                email=address,
                name=identity.name or "",
                password_hash=None,
                organization_name=identity.name or address.split("@", 1)[0],
                method="google",
                google_subject=identity.subject,
                email_confirmed=True,
            )
            user = registration.user
        self.emit_event(
            event_from_google_login(identity, at=self.clock.now(), actor_id=user.user_id)
        )
        return self._challenge_or_session(user, method="google")

    # --- refresh, logout ---------------------------------------------------------------------

    def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token (REF-2): the new pair. Nothing that can fail runs after the
        rotation has committed (REF-5); a deleted account's families are revoked already.

        Raises:
            RefreshTokenReuseError: the token was rotated already: its family is revoked
                (REF-3).
            InvalidRefreshTokenError: malformed, unknown, expired or revoked.
            StoreError: a store failed.
        """
        return self.sessions.refresh(refresh_token)

    def logout(self, refresh_token: str, *, user_id: str) -> None:
        """End one session (REF-4): its refresh family and its access tokens die.

        Raises:
            InvalidRefreshTokenError: malformed, unknown, or another user's token.
            StoreError: a store failed.
        """
        self.sessions.logout(refresh_token, user_id=user_id)

    def logout_everywhere(self, user_id: str) -> int:
        """End every session of the user (REF-4); return how many were live.

        Raises:
            StoreError: a store failed; call again.
        """
        return self.sessions.revoke_all(user_id, reason="user")

    # --- forgotten password ------------------------------------------------------------------

    def request_password_reset(self, email: str) -> None:
        """Mail a reset link if ``email`` belongs to a live account with a password (ACC-2).

        Answers the same for every address; the account's work runs through ``defer``.
        """
        address = _email_or_none(email)
        if address is None:
            return

        def work() -> None:
            user = self.directory.find_user(email=address)
            if user is None or user.email is None:
                return
            issued = self.resets.issue(user.user_id)
            self.emit(
                SecurityEventType.PASSWORD_RESET_REQUESTED,
                actor_id=user.user_id,
                subject_id=user.user_id,
            )
            self.mailer.send(
                Mail(kind="password_reset", to=user.email, token=issued.token, user_id=user.user_id)
            )

        self.defer(work)

    def reset_password(self, token: str, new_password: str) -> UserAccount:
        """Set a new password with a reset token (ACC-2), then end every session (REF-4).

        The password is checked before the token is used, so a refused password leaves the
        link working.

        Raises:
            PasswordPolicyError: the new password breaks the policy.
            InvalidResetTokenError: malformed, unknown, used or expired, or the account is gone.
            StoreError: a store failed.
        """
        self.hasher.check_new_password(new_password)
        new_hash = self.hasher.hash(new_password)
        user_id = self.resets.consume(token)
        now = self.clock.now()
        updated = self.directory.update_user(
            user_id,
            expected={"deleted_at": None},
            changes={"password_hash": new_hash, "password_changed_at": now},
        )
        if updated is None:
            raise InvalidResetTokenError(reason="account_gone")
        revoked = self.sessions.revoke_all(user_id, reason="password_reset")
        self.emit(
            SecurityEventType.PASSWORD_RESET,
            actor_id=user_id,
            subject_id=user_id,
            details={"session_count": revoked},
        )
        return updated

    # --- request authentication --------------------------------------------------------------

    def authenticate(self, authorization: str | None, *, overview: bool = False) -> Caller | None:
        """The caller of a request from its ``Authorization`` header: ``Bearer <access token>``
        (JWT-2, REF-4) or a bare ``af_...`` API key (KEY-4). ``None`` when the header is absent.

        A key sent as ``Bearer af_...`` is refused: keys and tokens never share a scheme.

        Args:
            authorization: the header's value.
            overview: read the user's own records too (:attr:`Caller.overview`, for
                :meth:`caller_view`), in the same statement as the session state when the
                bundle's overview store can (:class:`~.storage.SessionOverviewStore`); else
                nothing more is read here.

        Raises:
            InvalidAccessTokenError: a malformed header, or a token that does not verify.
            InvalidApiKeyError: a key that does not verify.
            StoreError: a store failed.
        """
        parsed = parse_authorization(authorization)
        if parsed is None:
            return None
        kind, credential = parsed
        if kind == "api_key":
            principal = self.api_keys.verify(credential)
            return Caller(user_id=principal.user_id, kind="api_key", api_key=principal)
        store = self.session_overview
        if not overview or store is None:
            claims = self.verifier.verify(credential)
            return Caller(user_id=claims.subject, kind="user", claims=claims)
        read: list[AccountOverview | None] = []

        def session_state(*, user_id: str, session_id: str) -> SessionState:
            state, found = store.session_overview(user_id=user_id, session_id=session_id)
            read.append(found)
            return state

        claims = self.verifier.verify(credential, session_state=session_state)
        # the verifier reads the session state once, after every other check passed
        return Caller(user_id=claims.subject, kind="user", claims=claims, overview=read[0])

    def auth_time(self, caller: Caller) -> datetime | None:
        """When the caller's session was authenticated (``None`` for API keys and for tokens
        from a refresh, which never carry it)."""
        return caller.claims.auth_time if caller.claims is not None else None
