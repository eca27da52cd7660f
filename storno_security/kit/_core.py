"""The kit's state: every capability built once, from one policy, one key set and one store
bundle, and the helpers every flow uses (events, account loading).

Built here by construction, so no application can wire them inconsistently:

* the access-token verifier and the session manager share the bundle's one session-state store
  and one token policy (a logout marker lives exactly as long as the tokens it kills);
* TOTP and backup codes share one lockout (one count of wrong codes per user);
* every capability reports to one event sink, whose events carry the request context.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import attrs

from storno_security._memo import IdentityMemo
from storno_security.accounts.confirm import EmailConfirmationPolicy, EmailConfirmationTokens
from storno_security.accounts.model import UserAccount
from storno_security.accounts.reset import PasswordResetTokens
from storno_security.api_keys.manager import ApiKeyEvent, ApiKeyManager
from storno_security.audit.capabilities import event_from_api_key_event
from storno_security.audit.log import AuditLog
from storno_security.audit.sessions import event_from_session
from storno_security.clock import Clock, SystemClock
from storno_security.errors import AccountNotFoundError, StornoSecurityError
from storno_security.events import (
    EventSink,
    FanOutSink,
    Outcome,
    SecurityEvent,
    SecurityEventType,
    current_request_context,
)
from storno_security.kit.keys import KitKeys
from storno_security.kit.policy import KitPolicy
from storno_security.kit.results import CallerView
from storno_security.kit.storage import AccountOverview, SessionOverviewStore, StoreBundle
from storno_security.mfa.backup_codes import BackupCodes
from storno_security.mfa.challenges import MfaChallenges
from storno_security.mfa.lockout import MfaLockout
from storno_security.mfa.step_up import StepUpTokens
from storno_security.mfa.totp import TotpAuthenticator
from storno_security.mfa.verifier import SecondFactorVerifier
from storno_security.oidc.google import GoogleIdTokenVerifier
from storno_security.passkeys.ceremonies import PasskeyRelyingParty
from storno_security.passkeys.manager import PasskeyManager
from storno_security.passwords.hasher import PasswordHasher
from storno_security.ratelimit.limiter import Policy, RateLimiter
from storno_security.rbac.model import Company
from storno_security.tokens.access import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    VerifiedTokenCache,
)
from storno_security.tokens.sessions import SessionEvent, SessionManager

__all__ = ["CompanyLookup", "Mail", "Mailer"]

#: Reads a company by id for ``X-Company`` resolution (RBAC-3): the application's table.
CompanyLookup = Callable[[str], Company | None]


@attrs.frozen(kw_only=True)
class Mail:
    """A message the kit asks the application to send. The application renders it (links on
    its own host) and delivers it; the kit never touches the network.

    Attributes:
        kind: ``email_confirmation``, ``password_reset`` or ``invitation``.
        to: the address.
        token: the secret to put in the link (confirmation, reset), or ``None``. Never log it.
        user_id: the account concerned, if there is one.
        organization_id: for an invitation, the inviting organization.
        organization_name: for an invitation, its name.
        invitation_id: for an invitation, its id.
    """

    kind: str
    to: str = attrs.field(repr=False)
    token: str | None = attrs.field(default=None, repr=False)
    user_id: str | None = None
    organization_id: str | None = None
    organization_name: str | None = attrs.field(default=None, repr=False)
    invitation_id: str | None = None


class Mailer(Protocol):
    """Delivers the kit's mail (:class:`Mail`). Must not log the token."""

    def send(self, mail: Mail) -> None: ...


class _NoMail:
    def send(self, mail: Mail) -> None:
        """Drops the mail (an application without mail)."""


def _run_now(task: Callable[[], None]) -> None:
    task()


_REASON_RE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")


def _plain_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and _REASON_RE.fullmatch(reason):
        return reason
    return "other"


class KitCore:
    """The capabilities and shared helpers behind :class:`~storno_security.kit.Kit`."""

    def __init__(
        self,
        stores: StoreBundle,
        *,
        policy: KitPolicy,
        keys: KitKeys,
        clock: Clock | None = None,
        events: EventSink | None = None,
        mailer: Mailer | None = None,
        defer: Callable[[Callable[[], None]], None] | None = None,
        google: GoogleIdTokenVerifier | None = None,
        companies: CompanyLookup | None = None,
        rate_limits: Mapping[str, Policy] | None = None,
    ) -> None:
        if not isinstance(stores, StoreBundle):
            raise TypeError("stores must be a StoreBundle (memory_bundle(), sql_bundle(...))")
        if not isinstance(policy, KitPolicy):
            raise TypeError("policy must be a KitPolicy")
        if not isinstance(keys, KitKeys):
            raise TypeError("keys must be KitKeys")
        if google is not None and not isinstance(google, GoogleIdTokenVerifier):
            raise TypeError("google must be a GoogleIdTokenVerifier")
        self.stores = stores
        self.policy = policy
        self.keys = keys
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.directory = stores.directory
        overview = stores.account_overview
        #: The overview store when it also reads the session state (one read for ``GET /me``):
        #: only when it reads the records of the bundle's own session-state store.
        self.session_overview = (
            overview
            if isinstance(overview, SessionOverviewStore)
            and overview.reads_session_state_of(stores.session_state)
            else None
        )
        self.mailer: Mailer = mailer if mailer is not None else _NoMail()
        self.defer = defer if defer is not None else _run_now
        self.google = google
        self.companies = companies
        #: ``GET /me``'s views of users by the account overview (and ``X-Organization``) they
        #: were decided from: an overview store hands out one overview object while the rows
        #: are unchanged, so a view is decided once per state, not per request.
        self.caller_views: IdentityMemo[AccountOverview, CallerView] = IdentityMemo()
        clock = self.clock

        self.audit = AuditLog(
            stores.audit, clock=clock, policy=policy.audit, pseudonym_key=keys.pseudonym
        )
        self.events: EventSink = self.audit if events is None else FanOutSink((self.audit, events))
        self.hasher = PasswordHasher(policy.passwords)

        tokens = policy.tokens
        self.issuer = AccessTokenIssuer(keys.jwt, tokens, clock=clock)
        self.verifier = AccessTokenVerifier(
            keys.jwt,
            tokens,
            clock=clock,
            sessions=stores.session_state,
            cache=VerifiedTokenCache(tokens.verified_cache_size)
            if tokens.verified_cache_size
            else None,
        )
        self.sessions = SessionManager(
            issuer=self.issuer,
            policy=tokens,
            families=stores.refresh_families,
            sessions=stores.session_state,
            clock=clock,
            on_event=self._session_event,
            reuse_grace=policy.refresh_reuse_grace,
        )

        mfa = policy.mfa
        self.lockout = MfaLockout(mfa, store=stores.mfa_failures, clock=clock)
        self.totp = TotpAuthenticator(
            mfa.totp, replay=stores.totp_replay, clock=clock, lockout=self.lockout
        )
        self.backup_codes = BackupCodes(
            mfa, store=stores.backup_codes, clock=clock, lockout=self.lockout
        )
        self.factors = SecondFactorVerifier(totp=self.totp, backup_codes=self.backup_codes)
        self.challenges = MfaChallenges(mfa, store=stores.mfa_challenges, clock=clock)
        self.step_up_tokens = StepUpTokens(mfa, store=stores.step_up, clock=clock)

        self.passkeys: PasskeyManager | None = None
        if policy.passkeys is not None:
            relying_party = PasskeyRelyingParty(
                policy.passkeys, challenges=stores.passkey_challenges, clock=clock
            )
            self.passkeys = PasskeyManager(
                relying_party, credentials=stores.passkey_credentials, clock=clock
            )

        self.api_keys = ApiKeyManager(
            stores.api_keys, clock=clock, policy=policy.api_keys, on_event=self._api_key_event
        )
        self.resets = PasswordResetTokens(stores.reset_tokens, clock=clock, policy=policy.reset)
        self.confirmations = EmailConfirmationTokens(
            stores.email_confirmations,
            clock=clock,
            policy=EmailConfirmationPolicy(lifetime=policy.confirmation_lifetime),
        )
        self.limiter = RateLimiter(
            stores.rate_limits,
            clock=clock,
            policies=None if rate_limits is None else tuple(rate_limits.values()),
        )

    # --- events ------------------------------------------------------------------------------

    def emit(
        self,
        event_type: SecurityEventType,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        actor_id: str | None = None,
        subject_id: str | None = None,
        organization_id: str | None = None,
        company_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> SecurityEvent:
        """Report one security event, stamped with the clock and the request context.

        With ``error``, the event is a failure whose ``reason`` detail is the error's
        non-secret reason (never its message).
        """
        found = dict(details or {})
        if error is not None:
            outcome = Outcome.FAILURE
            found["reason"] = _plain_reason(error)
        context = current_request_context()
        event = SecurityEvent(
            type=event_type,
            at=self.clock.now(),
            outcome=outcome,
            actor_id=actor_id,
            subject_id=subject_id,
            organization_id=organization_id,
            company_id=company_id,
            ip=context.ip,
            user_agent=context.user_agent,
            request_id=context.request_id,
            details=found,
        )
        self.events.emit(event)
        return event

    def emit_event(self, event: SecurityEvent) -> None:
        """Report an event made elsewhere, with the request context filled in."""
        context = current_request_context()
        self.events.emit(
            attrs.evolve(
                event,
                ip=event.ip or context.ip,
                user_agent=event.user_agent or context.user_agent,
                request_id=event.request_id or context.request_id,
            )
        )

    def _session_event(self, event: SessionEvent) -> None:
        self.emit_event(event_from_session(event))

    def _api_key_event(self, event: ApiKeyEvent) -> None:
        self.emit_event(event_from_api_key_event(event))

    # --- accounts ----------------------------------------------------------------------------

    def live_user(self, user_id: str) -> UserAccount:
        """The live account, or :class:`AccountNotFoundError`."""
        user = self.directory.get_user(user_id)
        if user is None or not user.is_live:
            raise AccountNotFoundError(reason="unknown_or_deleted")
        return user

    def totp_associated_data(self, user_id: str, *, pending: bool = False) -> str:
        """Binds a sealed TOTP secret to its user and its state (VLT-2): a secret moved to
        another account, or a pending one read as confirmed, fails to open."""
        return f"storno_users:{user_id}:totp_{'pending' if pending else 'secret'}"

    def open_totp_secret(self, user: UserAccount) -> str | None:
        sealed = user.totp_secret_sealed
        if sealed is None:
            return None
        return self.keys.vault.open(
            sealed, associated_data=self.totp_associated_data(user.user_id)
        ).decode("ascii")

    def has_passkeys(self, user_id: str) -> bool:
        return self.passkeys is not None and self.passkeys.has_passkeys(user_id)

    def reason_of(self, exc: StornoSecurityError) -> str:
        return _plain_reason(exc)
