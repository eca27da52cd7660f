"""The caller's own account: profile, password, MFA, passkeys and API keys.

Everything here acts on the authenticated user. The user's own credentials (password, MFA,
passkeys, Google link) are authorized on the caller alone: an interactive user (an access
token, never an API key: KEY-5) whose account is live. No organization membership is involved,
so a user who has left every organization can still secure their account and no organization
can forbid it. API keys are an organization's and stay authorized by
:func:`~reference_server.context.authorize_request`.

Adding a way in (TOTP enrolment, a passkey, a Google link) or replacing backup codes demands
re-authentication (:func:`~reference_server.reauth.require_reauthentication`): a step-up token
when MFA is on (MFA-6), else the current password, else a login of the last five minutes. A
password change and MFA disable revoke every session of the user at once (REF-4) and answer
with a fresh one. Step-up tokens are issued by ``POST /api/v1/mfa/step-up``.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

import falcon
import sqlalchemy as sa

from reference_server import db, users
from reference_server.context import (
    Caller,
    Resource,
    audit_meta,
    authorize_request,
    memberships_of,
    require_interactive_user,
    require_user,
)
from reference_server.errors import ApiError
from reference_server.http import (
    Router,
    bad_request,
    body_bool,
    body_text,
    iso,
    required_text,
)
from reference_server.openapi import obj, operation
from reference_server.reauth import require_reauthentication, start_session
from reference_server.resources.auth import token_response
from reference_server.services import Services
from storno_security.api_keys import ApiKeyInfo, ApiKeyScope
from storno_security.audit import (
    Outcome,
    SecurityEventType,
    event_from_backup_code_set,
    event_from_error,
    event_from_passkey_registration,
    event_from_second_factor,
    event_from_step_up,
)
from storno_security.errors import (
    InvalidMfaCodeError,
    InvalidPasskeyError,
    InvalidPasswordError,
    InvalidStepUpTokenError,
    MfaError,
    OrganizationRequiredError,
    UnsupportedHashError,
)
from storno_security.mfa import (
    ACCOUNT_DELETE,
    API_KEY_CREATE,
    BACKUP_CODES_REGENERATE,
    GOOGLE_LINK,
    MFA_DISABLE,
    PASSKEY_REGISTER,
    VAULT_READ,
    VerifiedFactor,
    VerifiedStepUp,
    disable_mfa,
)
from storno_security.passkeys import PasskeyCredential, credential_key
from storno_security.ratelimit import LOGIN, MFA_VERIFY
from storno_security.rbac import Authorization, Permission, parse_permissions

__all__ = ["OPENAPI_PATHS", "STEP_UP_ACTIONS", "TOTP_SETUP", "register"]

#: The actions a client may ask a step-up token for.
STEP_UP_ACTIONS = (
    API_KEY_CREATE,
    VAULT_READ,
    MFA_DISABLE,
    ACCOUNT_DELETE,
    BACKUP_CODES_REGENERATE,
    PASSKEY_REGISTER,
    GOOGLE_LINK,
)

#: The act named in the audit trail when TOTP enrolment is refused for want of
#: re-authentication. Never a step-up action: with MFA on, set-up answers 409 first.
TOTP_SETUP = "mfa.totp.setup"

TOTP_ISSUER = "storno-security"
_NAME_MAX = 200
_KEY_ID_MAX = 128
_MAX_YEAR = 9000
_PASSKEY_NAME_MAX = 64  # the library's default PasskeyPolicy.max_name_length
# Names (display name, passkey and API-key labels): printable Latin, Greek and Cyrillic letters,
# digits, punctuation and spaces; at least one character that is not a space. One pattern for
# the server's check and the OpenAPI document, so both say exactly the same.
_NAME_CHARS = (
    "\\u0021-\\u007e\\u00a1-\\u00ac\\u00ae-\\u024f\\u0391-\\u03a1\\u03a3-\\u03ce\\u0400-\\u04ff"
)
NAME_PATTERN = f"^[ {_NAME_CHARS}]*[{_NAME_CHARS}][ {_NAME_CHARS}]*$"
_NAME_RE = re.compile(NAME_PATTERN)
_B64URL = re.compile(r"[A-Za-z0-9_-]{1,1366}")


def _pending_associated_data(user_id: str) -> str:
    """Binds a pending (unconfirmed) TOTP secret to its user and to the pending column, so it
    can never be opened as the confirmed secret, nor the other way round (VLT-2)."""
    return f"app_users:{user_id}:totp_pending"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _credential_id(text: str) -> bytes | None:
    """The raw credential id of a URL segment (base64url, no padding); ``None`` if malformed."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "Not found.")


def _live_user(services: Services, user_id: str) -> sa.RowMapping:
    user = users.get_user(services, user_id)
    if user is None:
        # A token of an account deleted meanwhile: deletion revokes sessions, so this is a race.
        raise ApiError(401, "invalid_token", "Invalid or expired access token.")
    return user


def _clean_name(body: dict[str, Any], field: str, *, max_length: int = _NAME_MAX) -> str:
    value = required_text(body, field, max_length=max_length)
    if not _NAME_RE.fullmatch(value):
        bad_request(
            f"'{field}' must hold letters, digits, punctuation or spaces, and not be blank.",
            field=field,
        )
    return value.strip()


class _Base(Resource):
    def authorize(self, req: falcon.Request, permission: Permission) -> Authorization:
        """An organization's decision, for API keys (KEY-5: never an API key's own act)."""
        auth = authorize_request(req, self.services, permission)
        require_interactive_user(req)
        return auth

    def own_account(self, req: falcon.Request) -> tuple[Caller, sa.RowMapping]:
        """The caller acting on their own account: an access token (KEY-5), a live account.

        No membership is consulted: a user's credentials are theirs, not an organization's.
        """
        caller = require_interactive_user(req)
        return caller, _live_user(self.services, caller.user_id)

    def reauthenticate(
        self,
        req: falcon.Request,
        body: dict[str, Any],
        *,
        caller: Caller,
        user: sa.RowMapping,
        action: str,
    ) -> str:
        """Demand re-authentication for ``action``; the fields are checked for type first."""
        _reauth_fields(body)
        return require_reauthentication(
            req, self.services, body, caller=caller, user=user, action=action
        )

    def optional_body(self, req: falcon.Request) -> dict[str, Any]:
        """The JSON body, or ``{}`` when the request has none."""
        return self.body(req) if req.content_length else {}

    def consume_step_up(
        self, req: falcon.Request, token: str, *, user_id: str, action: str
    ) -> VerifiedStepUp:
        """Spend a step-up token on ``action`` (MFA-6); records the event either way."""
        try:
            verified = self.services.step_up.consume(token, user_id=user_id, action=action)
        except InvalidStepUpTokenError as exc:
            self.services.audit.record_event(
                event_from_error(
                    SecurityEventType.STEP_UP_VERIFIED,
                    exc,
                    at=self.services.clock.now(),
                    actor_id=user_id,
                    **audit_meta(req),
                )
            )
            raise
        self.services.audit.record_event(event_from_step_up(verified, **audit_meta(req)))
        return verified


def _reauth_fields(body: dict[str, Any]) -> None:
    """400 for a re-authentication field of the wrong type or size, before any check."""
    body_text(body, "current_password", max_length=4096, required=False)
    body_text(body, "step_up_token", max_length=512, required=False)


def _step_up_token(body: dict[str, Any]) -> str:
    token = body_text(body, "step_up_token", max_length=512, required=False)
    if token is None:
        raise ApiError(
            403,
            "step_up_required",
            "A fresh second factor is required.",
            extra={"field": "step_up_token"},
        )
    return token


# --- profile ---------------------------------------------------------------------------------


def _mfa_status(services: Services, user: sa.RowMapping) -> dict[str, Any]:
    enabled = bool(user["mfa_enabled"])
    passkeys = services.passkeys.has_passkeys(user["id"])
    methods: list[str] = []
    if enabled:
        methods += ["totp", "backup_code"]
    if passkeys:
        methods.append("passkey")
    return {
        "enabled": enabled,
        "methods": methods,
        "backup_codes_left": services.backup_codes.remaining(user["id"]) if enabled else 0,
        "pending_enrolment": user["totp_pending_sealed"] is not None and not enabled,
        "has_passkeys": passkeys,
    }


class Me(_Base):
    """GET: who am I, in which organization, with which permissions. PATCH: my name.

    A user with no live membership (their organizations handed over, or left) still sees
    themselves: organization, role and permissions are then null and empty.
    """

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller = require_user(req)
        try:
            auth = authorize_request(req, self.services, Permission.ORG_VIEW)
        except OrganizationRequiredError:
            if caller.kind != "user" or any(
                m.deleted_at is None for m in memberships_of(self.services, caller.user_id)
            ):
                raise  # several memberships and no default: the client must choose one
            user = _live_user(self.services, caller.user_id)
            resp.media = {
                "user": users.user_json(user),
                "organization": None,
                "role": None,
                "permissions": [],
                "mfa": _mfa_status(self.services, user),
                "credential": {"kind": caller.kind},
            }
            return
        user = _live_user(self.services, caller.user_id)
        with self.services.db.read() as conn:
            org = (
                conn.execute(
                    sa.select(db.organizations.c.id, db.organizations.c.name).where(
                        db.organizations.c.id == auth.organization_id,
                        db.organizations.c.deleted_at.is_(None),
                    )
                )
                .mappings()
                .first()
            )
        if org is None:
            raise _not_found()
        credential: dict[str, Any] = {"kind": caller.kind}
        if caller.api_key is not None:
            credential["key_id"] = caller.api_key.key_id
            credential["scope"] = caller.api_key.scope.value
        resp.media = {
            "user": users.user_json(user),
            "organization": {"id": org["id"], "name": org["name"]},
            "role": auth.role.value,
            "permissions": sorted(p.value for p in auth.effective_permissions),
            "mfa": _mfa_status(self.services, user),
            "credential": credential,
        }

    def on_patch(self, req: falcon.Request, resp: falcon.Response) -> None:
        # The profile is the user's own, not an organization's: API keys may not change it.
        caller = require_interactive_user(req)
        body = self.body(req)
        name = _clean_name(body, "name")
        with self.services.db.transaction() as conn:
            conn.execute(
                db.users.update()
                .where(db.users.c.id == caller.user_id, db.users.c.deleted_at.is_(None))
                .values(name=name)
            )
        resp.media = {"user": users.user_json(_live_user(self.services, caller.user_id))}


class Password(_Base):
    """Change the password (PW-*), then kill every session (REF-4) and answer with a new one."""

    # The current password is verified here: limited like a login, so a stolen access token
    # is no faster an oracle for the password than the login form.
    rate_limits: ClassVar[dict[str, str]] = {"POST": LOGIN}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller, user = self.own_account(req)
        user_id = caller.user_id
        body = self.body(req)
        current = required_text(body, "current_password", max_length=4096)
        new = required_text(body, "new_password", max_length=4096)
        cookie = body_bool(body, "cookie")
        stored = user["password_hash"]
        try:
            # No password yet (Google or passkey only) costs a dummy check and fails the same.
            self.services.hasher.verify(current, stored)
        except (InvalidPasswordError, UnsupportedHashError) as exc:
            self.services.audit.record_event(
                event_from_error(
                    SecurityEventType.PASSWORD_CHANGED,
                    exc,
                    at=self.services.clock.now(),
                    method="password",
                    actor_id=user_id,
                    **audit_meta(req),
                )
            )
            # 403, not 401: the session is fine, the proof is not.
            raise ApiError(
                403,
                "invalid_credentials",
                "The current password is not correct.",
                extra={"field": "current_password"},
            ) from None
        self.services.hasher.check_new_password(new)
        new_hash = self.services.hasher.hash(new)
        with self.services.db.transaction() as conn:
            changed = conn.execute(
                db.users.update()
                .where(db.users.c.id == user_id, db.users.c.password_hash == stored)
                .values(password_hash=new_hash, password_changed_at=self.services.clock.now())
            ).rowcount
        if changed != 1:
            # Changed (or reset) by another request between the check and the write.
            raise ApiError(409, "conflict", "The password was changed meanwhile; try again.")
        revoked = self.services.sessions.revoke_all(user_id, reason="password_changed")
        self.services.audit.record(
            SecurityEventType.PASSWORD_CHANGED,
            actor_id=user_id,
            subject_id=user_id,
            details={"session_count": revoked},
            **audit_meta(req),
        )
        pair = start_session(self.services, user_id)
        token_response(req, resp, self.services, pair, cookie=cookie, user=user)


# --- MFA -------------------------------------------------------------------------------------


class MfaStatus(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _, user = self.own_account(req)
        resp.media = _mfa_status(self.services, user)


class TotpSetup(_Base):
    """MFA-1: a new secret, shown once; kept sealed as pending until a code confirms it.

    Enrolling a second factor changes who can log in: it needs re-authentication (the current
    password, or a fresh login for an account without one), so a stolen access token cannot
    enrol the thief's authenticator. The pending secret can only come from here, so confirming
    it needs nothing more than the code.
    """

    # The current password is verified here: limited like a login.
    rate_limits: ClassVar[dict[str, str]] = {"POST": LOGIN}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller, user = self.own_account(req)
        body = self.optional_body(req)
        if user["mfa_enabled"]:
            raise ApiError(409, "mfa_already_enabled", "MFA is already enabled.")
        self.reauthenticate(req, body, caller=caller, user=user, action=TOTP_SETUP)
        enrolment = self.services.totp.begin_enrolment(
            account_name=user["email"] or user["id"], issuer=TOTP_ISSUER
        )
        sealed = self.services.keys.vault.seal(
            enrolment.secret, associated_data=_pending_associated_data(user["id"])
        )
        with self.services.db.transaction() as conn:
            conn.execute(
                db.users.update()
                .where(db.users.c.id == user["id"], db.users.c.mfa_enabled.is_(False))
                .values(totp_pending_sealed=sealed)
            )
        resp.media = {
            "secret": enrolment.secret,
            "otpauth_uri": enrolment.provisioning_uri,
            "issuer": enrolment.issuer,
            "account_name": enrolment.account_name,
        }


class TotpConfirm(_Base):
    """MFA-1, MFA-3: one valid code turns MFA on; 10 backup codes are shown once."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller, user = self.own_account(req)
        user_id = caller.user_id
        body = self.body(req)
        code = required_text(body, "code", max_length=64)
        if user["mfa_enabled"]:
            raise ApiError(409, "mfa_already_enabled", "MFA is already enabled.")
        pending = user["totp_pending_sealed"]
        if pending is None:
            raise ApiError(409, "no_pending_enrolment", "Start with POST /api/v1/mfa/totp/setup.")
        secret = (
            self.services.keys.vault.open(
                pending, associated_data=_pending_associated_data(user_id)
            )
        ).decode("ascii")
        try:
            self.services.totp.confirm_enrolment(code, secret=secret, user_id=user_id)
        except InvalidMfaCodeError as exc:
            self.services.audit.record_event(
                event_from_error(
                    SecurityEventType.MFA_ENABLED,
                    exc,
                    at=self.services.clock.now(),
                    method="totp",
                    actor_id=user_id,
                    **audit_meta(req),
                )
            )
            raise
        with self.services.db.transaction() as conn:
            enabled = conn.execute(
                db.users.update()
                .where(
                    db.users.c.id == user_id,
                    db.users.c.mfa_enabled.is_(False),
                    db.users.c.totp_pending_sealed == pending,
                )
                .values(
                    totp_secret_sealed=users.seal_totp_secret(self.services, user_id, secret),
                    totp_pending_sealed=None,
                    mfa_enabled=True,
                )
            ).rowcount
        if enabled != 1:
            raise ApiError(409, "conflict", "The enrolment changed meanwhile; start again.")
        codes = self.services.backup_codes.generate(user_id)
        self.services.audit.record(
            SecurityEventType.MFA_ENABLED,
            actor_id=user_id,
            subject_id=user_id,
            details={"method": "totp", "backup_code_count": len(codes.codes)},
            **audit_meta(req),
        )
        resp.media = {"enabled": True, "backup_codes": list(codes.codes)}


class StepUpPasskeyOptions(_Base):
    """Options for a passkey step-up: the caller's own passkeys only."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller, _ = self.own_account(req)
        options = self.services.passkeys.start_login(caller.user_id)
        resp.media = {"options": options.as_dict(), "expires_at": iso(options.expires_at)}


class StepUp(_Base):
    """MFA-6: a fresh second factor buys a single-use token for one action (120 s)."""

    rate_limits: ClassVar[dict[str, str]] = {"POST": MFA_VERIFY}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        # KEY-5: an API key never satisfies MFA, so it can never step up.
        caller, _ = self.own_account(req)
        user_id = caller.user_id
        body = self.body(req)
        action = required_text(body, "action", max_length=64)
        if action not in STEP_UP_ACTIONS:
            bad_request(f"'action' must be one of {', '.join(STEP_UP_ACTIONS)}.", field="action")
        method = required_text(body, "method", max_length=32)
        if method not in ("totp", "backup_code", "passkey"):
            bad_request("'method' must be totp, backup_code or passkey.", field="method")
        credential = body.get("credential")
        code = None
        if method == "passkey":
            if not isinstance(credential, dict):
                bad_request(
                    "'credential' must be the WebAuthn assertion object.", field="credential"
                )
        else:
            code = required_text(body, "code", max_length=64)
        try:
            factor = self._verify(user_id, method, code, credential)
        except (MfaError, InvalidPasskeyError) as exc:
            self.services.audit.record_event(
                event_from_error(
                    SecurityEventType.MFA_FAILED,
                    exc,
                    at=self.services.clock.now(),
                    method=method,
                    actor_id=user_id,
                    **audit_meta(req),
                )
            )
            raise
        self.services.audit.record_event(event_from_second_factor(factor, **audit_meta(req)))
        grant = self.services.step_up.issue(factor, action=action)
        resp.media = {
            "step_up_token": grant.token,
            "action": grant.action,
            "method": grant.method,
            "expires_at": iso(grant.expires_at),
        }

    def _verify(
        self, user_id: str, method: str, code: str | None, credential: Any
    ) -> VerifiedFactor:
        if method == "passkey":
            login = self.services.passkeys.verify_second_factor(credential, user_id=user_id)
            return VerifiedFactor(user_id=user_id, method="passkey", verified_at=login.used_at)
        user = _live_user(self.services, user_id)
        assert code is not None
        return self.services.second_factor.verify(
            user_id,
            method=method,
            code=code,
            totp_secret=users.open_totp_secret(self.services, user),
        )


class BackupCodesResource(_Base):
    """MFA-3: a new set replaces the whole old one; needs re-authentication.

    MFA is on here, so that is always a step-up token for ``mfa.backup_codes.regenerate``
    (MFA-6): no password is checked, so the token bucket limits it.
    """

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller, user = self.own_account(req)
        user_id = caller.user_id
        body = self.body(req)
        if not user["mfa_enabled"]:
            raise ApiError(409, "mfa_not_enabled", "MFA is not enabled.")
        self.reauthenticate(req, body, caller=caller, user=user, action=BACKUP_CODES_REGENERATE)
        codes = self.services.backup_codes.generate(user_id)
        self.services.audit.record_event(
            event_from_backup_code_set(codes, at=self.services.clock.now(), **audit_meta(req))
        )
        resp.media = {"backup_codes": list(codes.codes)}


class MfaDisable(_Base):
    """Turn MFA off with a step-up; every session dies (REF-4); a fresh one is returned."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller, user = self.own_account(req)
        user_id = caller.user_id
        body = self.body(req)
        token = _step_up_token(body)
        cookie = body_bool(body, "cookie")
        if not user["mfa_enabled"]:
            raise ApiError(409, "mfa_not_enabled", "MFA is not enabled.")
        try:
            verified = disable_mfa(
                user_id,
                step_up_token=token,
                step_up=self.services.step_up,
                backup_codes=self.services.backup_codes,
            )
        except InvalidStepUpTokenError as exc:
            self.services.audit.record_event(
                event_from_error(
                    SecurityEventType.MFA_DISABLED,
                    exc,
                    at=self.services.clock.now(),
                    actor_id=user_id,
                    **audit_meta(req),
                )
            )
            raise
        self.services.audit.record_event(event_from_step_up(verified, **audit_meta(req)))
        with self.services.db.transaction() as conn:
            conn.execute(
                db.users.update()
                .where(db.users.c.id == user_id)
                .values(totp_secret_sealed=None, totp_pending_sealed=None, mfa_enabled=False)
            )
        revoked = self.services.sessions.revoke_all(user_id, reason="mfa_disabled")
        self.services.audit.record(
            SecurityEventType.MFA_DISABLED,
            actor_id=user_id,
            subject_id=user_id,
            details={"method": verified.method},
            **audit_meta(req),
        )
        pair = start_session(self.services, user_id)
        token_response(req, resp, self.services, pair, cookie=cookie)
        resp.media["sessions_revoked"] = revoked


# --- Google link -----------------------------------------------------------------------------


class GoogleLink(_Base):
    """Link a Google account to the caller's account.

    Google sign-in never adopts an existing account by email (a squatter may have registered
    the address with a password): the account's holder links Google here, proving it is them
    by re-authentication (``account.google_link``), with an ID token of the Google account.
    """

    # The current password may be verified here: limited like a login.
    rate_limits: ClassVar[dict[str, str]] = {"POST": LOGIN}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller, user = self.own_account(req)
        body = self.body(req)
        id_token = required_text(body, "id_token", max_length=8192)
        _reauth_fields(body)
        google = self.services.google
        if google is None:
            raise ApiError(404, "not_enabled", "Google sign-in is not configured.")
        identity = google.verify(id_token)
        proof = self.reauthenticate(req, body, caller=caller, user=user, action=GOOGLE_LINK)
        holder = users.find_by_google_subject(self.services, identity.subject)
        if holder is not None and holder["id"] != caller.user_id:
            self._refused(req, caller, "google_account_taken")
            raise ApiError(
                409,
                "google_account_taken",
                "This Google account is already linked to another account.",
            )
        if user["google_subject"] is not None and user["google_subject"] != identity.subject:
            self._refused(req, caller, "another_google_account_linked")
            raise ApiError(
                409,
                "google_already_linked",
                "Your account is already linked to another Google account.",
            )
        linked = users.link_google(self.services, caller.user_id, identity.subject)
        if linked is None:
            # Linked to someone else, or the caller linked another, between the read and the write.
            self._refused(req, caller, "conflict")
            raise ApiError(409, "conflict", "The Google link changed meanwhile; try again.")
        self.services.audit.record(
            SecurityEventType.STEP_UP_VERIFIED,
            actor_id=caller.user_id,
            subject_id=caller.user_id,
            details={"action": GOOGLE_LINK, "method": proof},
            **audit_meta(req),
        )
        resp.media = {"user": users.user_json(linked), "google_linked": True}

    def _refused(self, req: falcon.Request, caller: Caller, reason: str) -> None:
        self.services.audit.record(
            SecurityEventType.ACCESS_DENIED,
            outcome=Outcome.FAILURE,
            actor_id=caller.user_id,
            subject_id=caller.user_id,
            details={"action": GOOGLE_LINK, "reason": reason},
            **audit_meta(req),
        )


# --- passkeys --------------------------------------------------------------------------------


def _passkey_json(credential: PasskeyCredential) -> dict[str, Any]:
    return {
        "id": _b64url(credential.credential_id),
        "name": credential.name,
        "created_at": iso(credential.created_at),
        "last_used_at": iso(credential.last_used_at),
        "transports": list(credential.transports),
        "aaguid": credential.aaguid,
        "backup_eligible": credential.backup_eligible,
        "backed_up": credential.backed_up,
        "flagged": credential.flagged_at is not None,
    }


class PasskeyRegisterOptions(_Base):
    """PK-1: registration options with the user's stable handle; their passkeys excluded.

    A passkey logs in without a second factor (MFA-5) and survives a password change, so
    adding one needs re-authentication: a step-up token for ``passkey.register`` when MFA is
    on, else the current password, else a fresh login. This call is the gate: the library
    keeps the challenge it issues bound to this user, and ``POST /api/v1/passkeys/register``
    accepts only a credential made for such a challenge.
    """

    # The current password may be verified here: limited like a login.
    rate_limits: ClassVar[dict[str, str]] = {"POST": LOGIN}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller, user = self.own_account(req)
        body = self.optional_body(req)
        self.reauthenticate(req, body, caller=caller, user=user, action=PASSKEY_REGISTER)
        options = self.services.passkeys.start_registration(
            user["id"],
            user_name=user["email"] or user["id"],
            user_display_name=user["name"] or None,
        )
        resp.media = {"options": options.as_dict(), "expires_at": iso(options.expires_at)}


class PasskeyRegister(_Base):
    """Finish a registration begun (and re-authenticated) by the options call."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller, _ = self.own_account(req)
        user_id = caller.user_id
        body = self.body(req)
        credential = body.get("credential")
        if not isinstance(credential, dict):
            bad_request(
                "'credential' must be the WebAuthn registration object.", field="credential"
            )
        name = _clean_name(body, "name", max_length=_PASSKEY_NAME_MAX)
        try:
            stored = self.services.passkeys.finish_registration(
                credential, user_id=user_id, name=name
            )
        except ValueError:
            bad_request("'name' is not acceptable.", field="name")
        except InvalidPasskeyError as exc:
            self.services.audit.record_event(
                event_from_error(
                    SecurityEventType.PASSKEY_REGISTERED,
                    exc,
                    at=self.services.clock.now(),
                    method="passkey",
                    actor_id=user_id,
                    **audit_meta(req),
                )
            )
            raise
        self.services.audit.record_event(event_from_passkey_registration(stored, **audit_meta(req)))
        resp.status = falcon.HTTP_201
        resp.media = _passkey_json(stored)


class Passkeys(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        caller, _ = self.own_account(req)
        items = self.services.passkeys.list_passkeys(caller.user_id)
        resp.media = {"passkeys": [_passkey_json(c) for c in items]}


class PasskeyItem(_Base):
    @staticmethod
    def _raw_id(passkey_id: str) -> bytes:
        raw = _credential_id(passkey_id)
        if raw is None:
            raise _not_found()
        return raw

    def on_patch(self, req: falcon.Request, resp: falcon.Response, passkey_id: str) -> None:
        caller, _ = self.own_account(req)
        user_id = caller.user_id
        raw = self._raw_id(passkey_id)
        body = self.body(req)
        name = _clean_name(body, "name", max_length=_PASSKEY_NAME_MAX)
        try:
            renamed = self.services.passkeys.rename_passkey(user_id, raw, name=name)
        except ValueError:
            bad_request("'name' is not acceptable.", field="name")
        if not renamed:
            raise _not_found()
        found = next(
            (c for c in self.services.passkeys.list_passkeys(user_id) if c.credential_id == raw),
            None,
        )
        if found is None:  # deleted between the rename and the read
            raise _not_found()
        resp.media = _passkey_json(found)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, passkey_id: str) -> None:
        caller, _ = self.own_account(req)
        user_id = caller.user_id
        raw = self._raw_id(passkey_id)
        if not self.services.passkeys.delete_passkey(user_id, raw):
            raise _not_found()
        self.services.audit.record(
            SecurityEventType.PASSKEY_REMOVED,
            actor_id=user_id,
            subject_id=user_id,
            details={"method": "passkey", "credential_id": credential_key(raw)},
            **audit_meta(req),
        )
        resp.status = falcon.HTTP_204


# --- API keys --------------------------------------------------------------------------------


def _api_key_json(info: ApiKeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "name": info.name,
        "scope": info.scope.value,
        "permissions": None if info.permissions is None else list(info.permissions),
        "organization_id": info.organization_id,
        "created_at": iso(info.created_at),
        "expires_at": iso(info.expires_at),
        "revoked_at": iso(info.revoked_at),
        "last_used_at": iso(info.last_used_at),
    }


def _expires_at(body: dict[str, Any], now: datetime) -> datetime | None:
    text = body_text(body, "expires_at", max_length=64, required=False)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        bad_request("'expires_at' must be an RFC 3339 date-time.", field="expires_at")
    if value.tzinfo is None or value.utcoffset() is None:
        bad_request("'expires_at' must carry a time zone (e.g. Z).", field="expires_at")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        bad_request("'expires_at' is out of range.", field="expires_at")
    if value.year > _MAX_YEAR:
        bad_request("'expires_at' is out of range.", field="expires_at")
    if value <= now:
        raise ApiError(
            422,
            "invalid_expiry",
            "'expires_at' must be in the future.",
            extra={"field": "expires_at"},
        )
    return value


def _permissions(body: dict[str, Any]) -> list[str] | None:
    value = body.get("permissions")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        bad_request("'permissions' must be a list of permission names.", field="permissions")
    if not value or len(value) > 100:
        bad_request("'permissions' must hold 1 to 100 names.", field="permissions")
    try:
        return sorted(p.value for p in parse_permissions(value))
    except ValueError:
        raise ApiError(
            422, "unknown_permission", "Unknown permission name.", extra={"field": "permissions"}
        ) from None


class ApiKeys(_Base):
    """KEY-1..KEY-5: create (shown once), list (never the secret or hash)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = self.authorize(req, Permission.APIKEY_MANAGE)
        user_id = auth.principal.user_id
        body = self.body(req)
        name = _clean_name(body, "name")
        raw_scope = required_text(body, "scope", max_length=16)
        try:
            scope = ApiKeyScope.parse(raw_scope)
        except ValueError:
            bad_request("'scope' must be read, write or admin.", field="scope")
        expires_at = _expires_at(body, self.services.clock.now())
        permissions = _permissions(body)
        token = body_text(body, "step_up_token", max_length=512, required=False)
        user = _live_user(self.services, user_id)
        if user["mfa_enabled"]:
            # MFA-6: a fresh second factor for every new key of an MFA user.
            self.consume_step_up(req, _step_up_token(body), user_id=user_id, action=API_KEY_CREATE)
        elif token is not None:
            # Without MFA there is nothing to step up from: a token here is a client mistake.
            bad_request("'step_up_token' is only used when MFA is on.", field="step_up_token")
        try:
            created = self.services.api_keys.create(
                user_id,
                auth.organization_id,
                name=name,
                scope=scope,
                expires_at=expires_at,
                permissions=permissions,
                creator_permissions=[p.value for p in auth.effective_permissions],
            )
        except ValueError as exc:
            raise ApiError(422, "invalid_api_key_request", str(exc)) from None
        resp.status = falcon.HTTP_201
        resp.media = {"key": created.key, **_api_key_json(created.info)}

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        auth = self.authorize(req, Permission.APIKEY_MANAGE)
        keys = self.services.api_keys.list_keys(
            user_id=auth.principal.user_id, organization_id=auth.organization_id
        )
        resp.media = {"api_keys": [_api_key_json(k) for k in keys]}


class ApiKeyItem(_Base):
    def on_delete(self, req: falcon.Request, resp: falcon.Response, key_id: str) -> None:
        auth = self.authorize(req, Permission.APIKEY_MANAGE)
        if len(key_id) > _KEY_ID_MAX:
            raise _not_found()
        revoked = self.services.api_keys.revoke(
            key_id,
            expected_user_id=auth.principal.user_id,
            expected_organization_id=auth.organization_id,
        )
        if not revoked:
            raise _not_found()
        resp.status = falcon.HTTP_204


# --- OpenAPI ---------------------------------------------------------------------------------

_STR = {"type": "string"}
_NO_NUL = "^[^\\x00]*$"
_PASSWORD = {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": _NO_NUL}
_NULL_STR = {"type": ["string", "null"]}
_NULL_TIME = {"type": ["string", "null"], "format": "date-time"}
_TIME = {"type": "string", "format": "date-time"}
_NAME = {"type": "string", "minLength": 1, "maxLength": _NAME_MAX, "pattern": NAME_PATTERN}
_PASSKEY_NAME = {**_NAME, "maxLength": _PASSKEY_NAME_MAX}
_COOKIE = {"type": "boolean", "description": "Put the refresh token in an HttpOnly cookie."}
_STEP_UP = {
    "type": "string",
    "minLength": 1,
    "maxLength": 512,
    "pattern": _NO_NUL,
    "description": "From POST /api/v1/mfa/step-up.",
}
_CODE = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": _NO_NUL}
_CURRENT_PASSWORD = {
    **_PASSWORD,
    "description": "Re-authentication for an account with a password and without MFA.",
}
_REAUTH_STEP_UP = {
    **_STEP_UP,
    "description": "Re-authentication when MFA is on: from POST /api/v1/mfa/step-up.",
}
_REAUTH_PROPS: dict[str, Any] = {
    "current_password": _CURRENT_PASSWORD,
    "step_up_token": _REAUTH_STEP_UP,
}
_REAUTH_NOTE = (
    "Needs re-authentication: with MFA on a `step_up_token` for `{action}`, else the "
    "`current_password`, else (no password, no MFA) a login of the last 5 minutes. Without it: "
    "403 `reauthentication_required` with the `accepted` fields. Limited like a login."
)


def _body_optional(op: dict[str, Any]) -> dict[str, Any]:
    """The operation's JSON body may be left out (an account re-authenticated by a fresh login)."""
    op["requestBody"]["required"] = False
    return op


_USER = obj(
    {
        "id": _STR,
        "email": _NULL_STR,
        "name": _STR,
        "mfa_enabled": {"type": "boolean"},
        "has_password": {"type": "boolean"},
        "created_at": _TIME,
    },
    required=("id", "email", "name", "mfa_enabled", "has_password", "created_at"),
)
_MFA_STATUS = obj(
    {
        "enabled": {"type": "boolean"},
        "methods": {"type": "array", "items": {"enum": ["totp", "backup_code", "passkey"]}},
        "backup_codes_left": {"type": "integer", "minimum": 0},
        "pending_enrolment": {"type": "boolean"},
        "has_passkeys": {"type": "boolean"},
    },
    required=("enabled", "methods", "backup_codes_left", "pending_enrolment", "has_passkeys"),
)
_TOKENS = obj(
    {
        "access_token": _STR,
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "refresh_token": _STR,
        "refresh_expires_at": _TIME,
        "user": {"type": "object"},
        "sessions_revoked": {"type": "integer"},
    },
    required=("access_token", "token_type", "expires_in", "refresh_expires_at"),
)
_OPTIONS = obj(
    {"options": {"type": "object"}, "expires_at": _TIME}, required=("options", "expires_at")
)
_PASSKEY = obj(
    {
        "id": _STR,
        "name": _STR,
        "created_at": _TIME,
        "last_used_at": _NULL_TIME,
        "transports": {"type": "array", "items": _STR},
        "aaguid": _STR,
        "backup_eligible": {"type": "boolean"},
        "backed_up": {"type": "boolean"},
        "flagged": {"type": "boolean"},
    },
    required=("id", "name", "created_at", "last_used_at", "transports", "flagged"),
)
_API_KEY_PROPS: dict[str, Any] = {
    "key_id": _STR,
    "name": _STR,
    "scope": {"enum": ["read", "write", "admin"]},
    "permissions": {"type": ["array", "null"], "items": _STR},
    "organization_id": _STR,
    "created_at": _TIME,
    "expires_at": _NULL_TIME,
    "revoked_at": _NULL_TIME,
    "last_used_at": _NULL_TIME,
}
_API_KEY = obj(_API_KEY_PROPS, required=("key_id", "name", "scope", "created_at"))
_CREATED_KEY = obj(
    {"key": {"type": "string", "pattern": "^af_"}, **_API_KEY_PROPS},
    required=("key", "key_id", "name", "scope", "created_at"),
)
_CODES = {"type": "array", "items": _STR}
_PASSKEY_ID = [
    {
        "name": "passkey_id",
        "in": "path",
        "required": True,
        "schema": _STR,
        "description": "The credential id, base64url without padding.",
    }
]
_KEY_ID = [{"name": "key_id", "in": "path", "required": True, "schema": _STR}]

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/me": {
        "get": operation(
            "The caller: user, organization, role, effective permissions, MFA status",
            tag="account",
            description=(
                "A user with no live membership gets `organization` and `role` null and no "
                "`permissions`."
            ),
            organization=True,
            responses={
                200: obj(
                    {
                        "user": _USER,
                        "organization": {
                            **obj({"id": _STR, "name": _STR}, required=("id", "name")),
                            "type": ["object", "null"],
                        },
                        "role": {"enum": ["owner", "admin", "accountant", "viewer", None]},
                        "permissions": {"type": "array", "items": _STR},
                        "mfa": _MFA_STATUS,
                        "credential": obj(
                            {
                                "kind": {"enum": ["user", "api_key"]},
                                "key_id": _STR,
                                "scope": _STR,
                            },
                            required=("kind",),
                        ),
                    },
                    required=("user", "organization", "role", "permissions", "mfa", "credential"),
                )
            },
        ),
        "patch": operation(
            "Change the caller's display name",
            tag="account",
            auth="user",
            request=obj({"name": _NAME}, required=("name",)),
            responses={200: obj({"user": _USER}, required=("user",))},
        ),
    },
    "/api/v1/me/password": {
        "post": operation(
            "Change the password: every session ends, a new one is returned (REF-4)",
            tag="account",
            auth="user",
            request=obj(
                {
                    "current_password": _PASSWORD,
                    "new_password": _PASSWORD,
                    "cookie": _COOKIE,
                },
                required=("current_password", "new_password"),
            ),
            responses={200: _TOKENS},
        )
    },
    "/api/v1/me/google": {
        "post": operation(
            "Link a Google account to the caller's account; needs re-authentication",
            tag="account",
            auth="user",
            description=_REAUTH_NOTE.format(action="account.google_link")
            + " 409 `google_account_taken` when the Google account is linked to another "
            "account, `google_already_linked` when the caller holds another Google account; "
            "404 `not_enabled` without Google sign-in.",
            request=obj(
                {
                    "id_token": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 8192,
                        "pattern": _NO_NUL,
                        "description": "A Google ID token of the account to link.",
                    },
                    **_REAUTH_PROPS,
                },
                required=("id_token",),
            ),
            responses={
                200: obj(
                    {"user": _USER, "google_linked": {"const": True}},
                    required=("user", "google_linked"),
                )
            },
        )
    },
    "/api/v1/mfa": {
        "get": operation(
            "MFA status: enabled, methods, backup codes left",
            tag="mfa",
            auth="user",
            responses={200: _MFA_STATUS},
        )
    },
    "/api/v1/mfa/totp/setup": {
        "post": _body_optional(
            operation(
                "Start TOTP enrolment: the secret and otpauth URI, shown once (MFA-1)",
                tag="mfa",
                auth="user",
                description=(
                    "Needs re-authentication: the `current_password`, or (no password) a login of "
                    "the last 5 minutes. Without it: 403 `reauthentication_required`. Limited like "
                    "a login."
                ),
                request=obj({"current_password": _CURRENT_PASSWORD}),
                responses={
                    200: obj(
                        {
                            "secret": _STR,
                            "otpauth_uri": _STR,
                            "issuer": _STR,
                            "account_name": _STR,
                        },
                        required=("secret", "otpauth_uri"),
                    )
                },
            )
        )
    },
    "/api/v1/mfa/totp/confirm": {
        "post": operation(
            "Confirm TOTP with one code: MFA on, 10 backup codes shown once (MFA-1, MFA-3)",
            tag="mfa",
            auth="user",
            request=obj({"code": _CODE}, required=("code",)),
            responses={
                200: obj(
                    {"enabled": {"const": True}, "backup_codes": _CODES},
                    required=("enabled", "backup_codes"),
                )
            },
        )
    },
    "/api/v1/mfa/step-up": {
        "post": operation(
            "Verify a fresh second factor for one sensitive action (MFA-6)",
            tag="mfa",
            auth="user",
            request={
                "oneOf": [
                    obj(
                        {
                            "action": {"enum": list(STEP_UP_ACTIONS)},
                            "method": {"enum": ["totp", "backup_code"]},
                            "code": _CODE,
                        },
                        required=("action", "method", "code"),
                    ),
                    obj(
                        {
                            "action": {"enum": list(STEP_UP_ACTIONS)},
                            "method": {"const": "passkey"},
                            "credential": {"type": "object"},
                        },
                        required=("action", "method", "credential"),
                    ),
                ]
            },
            responses={
                200: obj(
                    {
                        "step_up_token": _STR,
                        "action": _STR,
                        "method": _STR,
                        "expires_at": _TIME,
                    },
                    required=("step_up_token", "action", "method", "expires_at"),
                )
            },
        )
    },
    "/api/v1/mfa/step-up/passkey-options": {
        "post": operation(
            "Options for a passkey step-up (the caller's passkeys)",
            tag="mfa",
            auth="user",
            responses={200: _OPTIONS},
        )
    },
    "/api/v1/mfa/backup-codes": {
        "post": operation(
            "Replace the backup codes with a new set, shown once (needs a step-up)",
            tag="mfa",
            auth="user",
            description=(
                "Needs a step-up token for `mfa.backup_codes.regenerate`; without one: 403 "
                "`reauthentication_required`."
            ),
            request=obj({"step_up_token": _STEP_UP}, required=("step_up_token",)),
            responses={200: obj({"backup_codes": _CODES}, required=("backup_codes",))},
        )
    },
    "/api/v1/mfa/disable": {
        "post": operation(
            "Turn MFA off (needs a step-up); every session ends, a new one is returned",
            tag="mfa",
            auth="user",
            request=obj(
                {"step_up_token": _STEP_UP, "cookie": _COOKIE}, required=("step_up_token",)
            ),
            responses={200: _TOKENS},
        )
    },
    "/api/v1/passkeys/register/options": {
        "post": _body_optional(
            operation(
                "Passkey registration options (PK-1); needs re-authentication",
                tag="passkeys",
                auth="user",
                description=_REAUTH_NOTE.format(action="passkey.register"),
                request=obj(_REAUTH_PROPS),
                responses={200: _OPTIONS},
            )
        )
    },
    "/api/v1/passkeys/register": {
        "post": operation(
            "Register a passkey (for options from the re-authenticated options call)",
            tag="passkeys",
            auth="user",
            request=obj(
                {"credential": {"type": "object"}, "name": _PASSKEY_NAME},
                required=("credential", "name"),
            ),
            responses={201: _PASSKEY},
        )
    },
    "/api/v1/passkeys": {
        "get": operation(
            "The caller's passkeys",
            tag="passkeys",
            auth="user",
            responses={
                200: obj({"passkeys": {"type": "array", "items": _PASSKEY}}, required=("passkeys",))
            },
        )
    },
    "/api/v1/passkeys/{passkey_id}": {
        "patch": operation(
            "Rename a passkey",
            tag="passkeys",
            auth="user",
            parameters=_PASSKEY_ID,
            request=obj({"name": _PASSKEY_NAME}, required=("name",)),
            responses={200: _PASSKEY},
        ),
        "delete": operation(
            "Remove a passkey",
            tag="passkeys",
            auth="user",
            parameters=_PASSKEY_ID,
            responses={204: None},
        ),
    },
    "/api/v1/api-keys": {
        "post": operation(
            "Create an API key; the key is shown once (KEY-1..KEY-5)",
            tag="api-keys",
            auth="user",
            organization=True,
            description=(
                "Users with MFA on need a step-up token for `apikey.create` (MFA-6). "
                "An explicit `permissions` list must be a subset of the caller's."
            ),
            request=obj(
                {
                    "name": _NAME,
                    "scope": {"enum": ["read", "write", "admin"]},
                    "expires_at": {"type": "string", "format": "date-time"},
                    "permissions": {
                        "type": "array",
                        "items": {"enum": sorted(p.value for p in Permission)},
                        "minItems": 1,
                        "maxItems": 100,
                    },
                    "step_up_token": _STEP_UP,
                },
                required=("name", "scope"),
            ),
            responses={201: _CREATED_KEY},
        ),
        "get": operation(
            "The caller's API keys in the organization (never a secret or hash)",
            tag="api-keys",
            auth="user",
            organization=True,
            responses={
                200: obj({"api_keys": {"type": "array", "items": _API_KEY}}, required=("api_keys",))
            },
        ),
    },
    "/api/v1/api-keys/{key_id}": {
        "delete": operation(
            "Revoke an API key: refused from the next request on (KEY-3)",
            tag="api-keys",
            auth="user",
            organization=True,
            parameters=_KEY_ID,
            responses={204: None},
        )
    },
}


def register(app: Router, services: Services) -> None:
    """Add this module's routes."""
    app.add_route("/api/v1/me", Me(services))
    app.add_route("/api/v1/me/password", Password(services))
    app.add_route("/api/v1/me/google", GoogleLink(services))
    app.add_route("/api/v1/mfa", MfaStatus(services))
    app.add_route("/api/v1/mfa/totp/setup", TotpSetup(services))
    app.add_route("/api/v1/mfa/totp/confirm", TotpConfirm(services))
    app.add_route("/api/v1/mfa/step-up", StepUp(services))
    app.add_route("/api/v1/mfa/step-up/passkey-options", StepUpPasskeyOptions(services))
    app.add_route("/api/v1/mfa/backup-codes", BackupCodesResource(services))
    app.add_route("/api/v1/mfa/disable", MfaDisable(services))
    app.add_route("/api/v1/passkeys/register/options", PasskeyRegisterOptions(services))
    app.add_route("/api/v1/passkeys/register", PasskeyRegister(services))
    app.add_route("/api/v1/passkeys", Passkeys(services))
    app.add_route("/api/v1/passkeys/{passkey_id}", PasskeyItem(services))
    app.add_route("/api/v1/api-keys", ApiKeys(services))
    app.add_route("/api/v1/api-keys/{key_id}", ApiKeyItem(services))
