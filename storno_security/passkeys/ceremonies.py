"""Registration and authentication ceremonies over the ``webauthn`` package (PK-1..PK-4, MFA-5).

:class:`PasskeyRelyingParty` is stateless about credentials (house rule 1): verification takes
the stored credential as a keyword argument and returns a frozen result that the caller persists.
Its only state is the challenge store, because a challenge must be consumed exactly once (PK-2).

The challenge is read from the response's ``clientDataJSON`` and consumed *first*, before any
other check: every response, good or bad, burns its challenge, so a challenge can never be tried
twice. Only then does ``webauthn`` check type, challenge, origin, relying-party id hash, user
presence and verification, and the signature. The sign count is compared by this module *after*
the signature is verified, so an unsigned response can never get a credential flagged.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

import attrs
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from storno_security._compare import constant_time_equal
from storno_security.clock import Clock
from storno_security.errors import InvalidPasskeyError, PasskeyCloneSuspectedError
from storno_security.passkeys.policy import PasskeyPolicy
from storno_security.passkeys.storage import (
    ChallengePurpose,
    PasskeyChallenge,
    PasskeyChallengeStore,
    PasskeyCredential,
)

__all__ = [
    "MFA_METHOD",
    "USER_HANDLE_BYTES",
    "PasskeyOptions",
    "PasskeyRelyingParty",
    "VerifiedPasskeyLogin",
    "new_user_handle",
]

#: The method name a passkey login reports to the MFA flow (MFA-5).
MFA_METHOD: Final = "passkey"
#: Random bytes in a user handle (WebAuthn allows at most 64).
USER_HANDLE_BYTES: Final = 32

_KNOWN_TRANSPORTS: Final = frozenset(t.value for t in AuthenticatorTransport)

# webauthn reports every failure as one exception class; its message tells which check failed.
# The reason is for logs only: the error the caller sees is the same for all of them.
_REASONS: Final = (
    ("challenge", "challenge"),
    ("origin", "origin"),
    ("RP ID", "rp_id"),
    ("verification is required", "user_verification"),
    ("not present", "user_presence"),
    ("presence was required", "user_presence"),
    ("signature", "signature"),
    ("alg", "algorithm"),
    ("client data type", "type"),
)


def new_user_handle() -> bytes:
    """A fresh random WebAuthn user handle (32 bytes); store it once per user."""
    return secrets.token_bytes(USER_HANDLE_BYTES)


def _reject(reason: str) -> InvalidPasskeyError:
    return InvalidPasskeyError(reason=reason)


def _reason_of(exc: BaseException) -> str:
    message = str(exc)
    for marker, reason in _REASONS:
        if marker in message:
            return reason
    return "invalid"


@attrs.frozen
class PasskeyOptions:
    """Options for ``navigator.credentials.create()`` or ``.get()``, ready to send.

    Attributes:
        options_json: the ``publicKey`` options as JSON (bytes in base64url), for the browser.
        expires_at: when the challenge inside expires (PK-2).

    The options carry the challenge and, for registration, the user handle and name: they are
    left out of ``repr`` so that a logged object shows neither.
    """

    options_json: str = attrs.field(repr=False)
    expires_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """The options as a fresh JSON-ready dictionary."""
        value = json.loads(self.options_json)
        if not isinstance(value, dict):  # pragma: no cover - we wrote it
            raise TypeError("options are not an object")
        return value


@attrs.frozen
class VerifiedPasskeyLogin:
    """A verified passkey assertion: persist ``sign_count``/``backed_up``/``used_at``.

    It is also what the MFA challenge flow accepts as a second factor (MFA-5): ``user_id`` and
    ``method == "passkey"``.

    Attributes:
        user_id: the credential's owner.
        credential_id: the credential used.
        sign_count: the new sign count to store.
        backed_up: the backup state reported by the authenticator.
        used_at: when it was verified.
        satisfies_mfa: the login needs no second factor (policy, MFA-5).
        method: always ``"passkey"``.
    """

    user_id: str
    credential_id: bytes
    sign_count: int
    backed_up: bool
    used_at: datetime
    satisfies_mfa: bool
    method: Literal["passkey"] = MFA_METHOD


def _size_checked(response: object, limit: int) -> str | dict[str, Any]:
    if isinstance(response, str):
        if len(response) > limit:
            raise _reject("too_large")
        return response
    if isinstance(response, Mapping):
        try:
            encoded = json.dumps(response)
        except (TypeError, ValueError, RecursionError):
            raise _reject("malformed") from None
        if len(encoded) > limit:
            raise _reject("too_large")
        return dict(response)
    raise TypeError(f"response must be a JSON str or a mapping, not {type(response).__name__}")


def _descriptors(credentials: Iterable[PasskeyCredential]) -> list[PublicKeyCredentialDescriptor]:
    descriptors = []
    for credential in credentials:
        if not isinstance(credential, PasskeyCredential):
            raise TypeError("credentials must be PasskeyCredential objects")
        transports = [
            AuthenticatorTransport(t) for t in credential.transports if t in _KNOWN_TRANSPORTS
        ]
        descriptors.append(
            PublicKeyCredentialDescriptor(
                id=credential.credential_id, transports=transports or None
            )
        )
    return descriptors


class PasskeyRelyingParty:
    """The relying party of the passkey ceremonies.

    Args:
        policy: relying-party id and name, allowed origins, challenge lifetime (PK-1, PK-2).
        challenges: where challenges wait to be consumed, exactly once.
        clock: the time source.
    """

    def __init__(
        self, policy: PasskeyPolicy, *, challenges: PasskeyChallengeStore, clock: Clock
    ) -> None:
        if not isinstance(policy, PasskeyPolicy):
            raise TypeError("policy must be a PasskeyPolicy")
        self._policy = policy
        self._challenges = challenges
        self._clock = clock

    @property
    def policy(self) -> PasskeyPolicy:
        """The policy."""
        return self._policy

    def __repr__(self) -> str:
        return f"PasskeyRelyingParty(rp_id={self._policy.rp_id!r})"

    # --- challenges --------------------------------------------------------------------------

    def _new_challenge(
        self, purpose: ChallengePurpose, user_id: str | None
    ) -> tuple[bytes, datetime]:
        challenge = secrets.token_bytes(self._policy.challenge_bytes)
        now = self._clock.now()
        expires_at = now + self._policy.challenge_lifetime
        self._challenges.put(
            PasskeyChallenge(
                challenge_hash=hashlib.sha256(challenge).hexdigest(),
                purpose=purpose,
                user_id=user_id,
                expires_at=expires_at,
            ),
            now=now,
        )
        return challenge, expires_at

    def _consume(
        self, client_data_json: bytes, purpose: ChallengePurpose, now: datetime
    ) -> tuple[bytes, PasskeyChallenge]:
        try:
            client_data = parse_client_data_json(client_data_json)
        except Exception:  # any parse failure is a malformed response, never an acceptance
            raise _reject("malformed") from None
        challenge = client_data.challenge
        if not isinstance(challenge, bytes) or not challenge:
            raise _reject("malformed")
        record = self._challenges.consume(hashlib.sha256(challenge).hexdigest(), now=now)
        if record is None:
            raise _reject("challenge")
        if record.purpose is not purpose:
            raise _reject("challenge")
        if record.expires_at <= now:
            raise _reject("challenge_expired")
        if client_data.cross_origin and not self._policy.allow_cross_origin:
            raise _reject("cross_origin")  # the ceremony ran in a frame of another origin
        return challenge, record

    # --- registration ------------------------------------------------------------------------

    def registration_options(
        self,
        user_id: str,
        *,
        user_name: str,
        user_handle: bytes,
        user_display_name: str | None = None,
        existing: Sequence[PasskeyCredential] = (),
    ) -> PasskeyOptions:
        """Start a registration ceremony (PK-1): make and store a challenge, return the options.

        Args:
            user_id: the user registering a passkey.
            user_name: what the authenticator shows to tell accounts apart (e.g. the email).
            user_handle: the user's stable random handle (:func:`new_user_handle`, stored once).
            user_display_name: a friendlier name; defaults to ``user_name``.
            existing: the user's registered passkeys, excluded so one authenticator is not
                registered twice.

        Returns:
            Options with resident key preferred (policy), user verification required, no
            attestation requested, and the policy's algorithms.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``user_id`` or ``user_name`` is empty, or ``user_handle`` is not 1-64
                bytes.
            StoreError: the challenge store failed.
        """
        _check_user_id(user_id)
        if not isinstance(user_name, str) or not user_name:
            raise ValueError("user_name must be a non-empty str")
        if not isinstance(user_handle, bytes) or not 1 <= len(user_handle) <= 64:
            raise ValueError("user_handle must be 1 to 64 bytes")
        excluded = _descriptors(existing)
        challenge, expires_at = self._new_challenge(ChallengePurpose.REGISTRATION, user_id)
        options = generate_registration_options(
            rp_id=self._policy.rp_id,
            rp_name=self._policy.rp_name,
            user_name=user_name,
            user_id=user_handle,
            user_display_name=user_display_name,
            challenge=challenge,
            timeout=self._policy.timeout_ms,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement(self._policy.resident_key),
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=excluded,
            supported_pub_key_algs=[COSEAlgorithmIdentifier(a) for a in self._policy.algorithms],
        )
        return PasskeyOptions(json.dumps(options_to_json_dict(options)), expires_at)

    def verify_registration(
        self,
        response: str | Mapping[str, Any],
        *,
        user_id: str,
        user_handle: bytes,
        name: str,
    ) -> PasskeyCredential:
        """Finish a registration ceremony: check the response, return the credential to store.

        The challenge is consumed first, whatever the outcome.

        Args:
            response: the ``PublicKeyCredential`` from ``navigator.credentials.create()`` as
                JSON (a str or a parsed mapping).
            user_id: the user the options were made for.
            user_handle: that user's handle, as given to :meth:`registration_options`.
            name: the friendly name to give the passkey.

        Returns:
            The new credential (sign count, transports, AAGUID, backup flags; PK-3). Persist it.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``name`` is empty, too long or holds control characters.
            InvalidPasskeyError: the response is not acceptable; ``reason`` says why
                (``malformed``, ``too_large``, ``challenge``, ``challenge_expired``,
                ``wrong_user``, ``cross_origin``, ``origin``, ``rp_id``, ``user_verification``,
                ``user_presence``, ``algorithm``, ``signature``, ``invalid``).
            StoreError: the challenge store failed.
        """
        _check_user_id(user_id)
        if not isinstance(user_handle, bytes):
            raise TypeError("user_handle must be bytes")
        name = self.check_name(name)
        data = _size_checked(response, self._policy.max_response_bytes)
        now = self._clock.now()
        try:
            parsed: RegistrationCredential = parse_registration_credential_json(data)
        except Exception:  # any parse failure is a malformed response
            raise _reject("malformed") from None
        challenge, record = self._consume(
            parsed.response.client_data_json, ChallengePurpose.REGISTRATION, now
        )
        if record.user_id is None or record.user_id != user_id:
            raise _reject("wrong_user")
        try:
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._policy.rp_id,
                expected_origin=list(self._policy.allowed_origins),
                require_user_presence=True,
                require_user_verification=True,
                supported_pub_key_algs=[
                    COSEAlgorithmIdentifier(a) for a in self._policy.algorithms
                ],
            )
        except Exception as exc:  # webauthn and its parsers: every failure refuses
            raise _reject(_reason_of(exc)) from None
        if not verified.user_verified:  # checked by webauthn already; kept as a second lock
            raise _reject("user_verification")
        transports = tuple(
            sorted(
                {t.value for t in parsed.response.transports or () if t.value in _KNOWN_TRANSPORTS}
            )
        )
        return PasskeyCredential(
            credential_id=verified.credential_id,
            user_id=user_id,
            user_handle=user_handle,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            transports=transports,
            aaguid=verified.aaguid,
            backup_eligible=verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
            name=name,
            created_at=now,
        )

    def check_name(self, name: object) -> str:
        """Return ``name`` stripped, or refuse it.

        Raises:
            TypeError: ``name`` is not a str.
            ValueError: it is empty, longer than the policy allows, or holds control characters.
        """
        if not isinstance(name, str):
            raise TypeError("name must be a str")
        name = name.strip()
        if not name or len(name) > self._policy.max_name_length:
            raise ValueError(f"name must be 1 to {self._policy.max_name_length} characters")
        if any(not c.isprintable() for c in name):
            raise ValueError("name must not contain control characters")
        return name

    # --- authentication ----------------------------------------------------------------------

    def authentication_options(
        self,
        *,
        user_id: str | None = None,
        credentials: Sequence[PasskeyCredential] = (),
    ) -> PasskeyOptions:
        """Start a login ceremony (PK-4): make and store a challenge, return the options.

        Args:
            user_id: the user logging in (login by email, or a passkey as the second factor of
                a password login), or ``None`` for a usernameless login with a discoverable
                credential. The challenge is bound to it.
            credentials: the user's passkeys, listed as ``allowCredentials`` (flagged ones are
                left out). Empty for a usernameless login.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``user_id`` is empty, or a credential belongs to another user.
            StoreError: the challenge store failed.
        """
        if user_id is not None:
            _check_user_id(user_id)
        for credential in credentials:
            if not isinstance(credential, PasskeyCredential):
                raise TypeError("credentials must be PasskeyCredential objects")
            if credential.user_id != user_id:
                raise ValueError("every credential must belong to user_id")
        allowed = [c for c in credentials if c.flagged_at is None]
        challenge, expires_at = self._new_challenge(ChallengePurpose.AUTHENTICATION, user_id)
        options = generate_authentication_options(
            rp_id=self._policy.rp_id,
            challenge=challenge,
            timeout=self._policy.timeout_ms,
            allow_credentials=_descriptors(allowed),
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return PasskeyOptions(json.dumps(options_to_json_dict(options)), expires_at)

    def credential_id_of(self, response: str | Mapping[str, Any]) -> bytes:
        """The credential id an assertion names, to look the stored credential up.

        Raises:
            TypeError: ``response`` is neither a str nor a mapping.
            InvalidPasskeyError: the response is malformed (``reason="malformed"`` or
                ``"too_large"``).
        """
        return self._parse_assertion(response).raw_id

    def _parse_assertion(self, response: str | Mapping[str, Any]) -> AuthenticationCredential:
        data = _size_checked(response, self._policy.max_response_bytes)
        try:
            parsed = parse_authentication_credential_json(data)
        except Exception:  # any parse failure is a malformed response
            raise _reject("malformed") from None
        if not parsed.raw_id:
            raise _reject("malformed")
        return parsed

    def verify_authentication(
        self,
        response: str | Mapping[str, Any],
        *,
        credential: PasskeyCredential,
        expected_user_id: str | None = None,
    ) -> VerifiedPasskeyLogin:
        """Finish a login ceremony: check the assertion against the stored credential.

        The challenge is consumed first, whatever the outcome (PK-2). User verification is
        required (PK-3). A challenge issued for a user (login by email, second factor) accepts
        only that user's credential; a usernameless one requires the authenticator's user handle
        to match the credential's (PK-4).

        Args:
            response: the ``PublicKeyCredential`` from ``navigator.credentials.get()`` as JSON.
            credential: the stored credential whose id the response names
                (:meth:`credential_id_of`).
            expected_user_id: when set, the credential must be this user's (e.g. the user of the
                password step when a passkey is the second factor, MFA-5).

        Returns:
            The verified login; persist its sign count (atomically, see
            :meth:`PasskeyCredentialStore.record_use`).

        Raises:
            TypeError: an argument has the wrong type.
            InvalidPasskeyError: the response is not acceptable; ``reason`` says why
                (``malformed``, ``too_large``, ``credential_mismatch``, ``challenge``,
                ``challenge_expired``, ``cross_origin``, ``wrong_user``, ``flagged``,
                ``user_handle``,
                ``origin``, ``rp_id``, ``user_verification``, ``user_presence``,
                ``signature``, ``invalid``).
            PasskeyCloneSuspectedError: the signature is valid but the sign count did not grow;
                flag the credential (PK-3).
            StoreError: the challenge store failed.
        """
        if not isinstance(credential, PasskeyCredential):
            raise TypeError("credential must be a PasskeyCredential")
        if expected_user_id is not None:
            _check_user_id(expected_user_id)
        return self._verify_parsed(
            self._parse_assertion(response), credential, expected_user_id=expected_user_id
        )

    def verify_login(
        self,
        response: str | Mapping[str, Any],
        *,
        lookup: Callable[[bytes], PasskeyCredential | None],
        expected_user_id: str | None = None,
    ) -> VerifiedPasskeyLogin:
        """:meth:`verify_authentication` with the stored credential found by ``lookup``.

        The response is parsed once; ``lookup`` gets the credential id it names (e.g.
        :meth:`PasskeyCredentialStore.get`). An unknown credential burns the challenge too.

        Raises:
            TypeError: an argument has the wrong type.
            InvalidPasskeyError: as :meth:`verify_authentication`, or ``unknown_credential``.
            PasskeyCloneSuspectedError: as :meth:`verify_authentication`.
            StoreError: the challenge store or ``lookup`` failed.
        """
        if expected_user_id is not None:
            _check_user_id(expected_user_id)
        parsed = self._parse_assertion(response)
        credential = lookup(parsed.raw_id)
        if credential is None:
            self._consume(
                parsed.response.client_data_json, ChallengePurpose.AUTHENTICATION, self._clock.now()
            )
            raise _reject("unknown_credential")
        if not isinstance(credential, PasskeyCredential):
            raise TypeError("lookup must return a PasskeyCredential or None")
        return self._verify_parsed(parsed, credential, expected_user_id=expected_user_id)

    def _verify_parsed(
        self,
        parsed: AuthenticationCredential,
        credential: PasskeyCredential,
        *,
        expected_user_id: str | None,
    ) -> VerifiedPasskeyLogin:
        now = self._clock.now()
        challenge, record = self._consume(
            parsed.response.client_data_json, ChallengePurpose.AUTHENTICATION, now
        )
        if not constant_time_equal(parsed.raw_id, credential.credential_id):
            raise _reject("credential_mismatch")
        for bound in (record.user_id, expected_user_id):
            if bound is not None and bound != credential.user_id:
                raise _reject("wrong_user")
        if credential.flagged_at is not None:
            raise _reject("flagged")
        user_handle = parsed.response.user_handle
        if user_handle is not None:
            if not constant_time_equal(user_handle, credential.user_handle):
                raise _reject("user_handle")
        elif record.user_id is None:
            raise _reject("user_handle")  # a discoverable credential must name its user
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._policy.rp_id,
                expected_origin=list(self._policy.allowed_origins),
                credential_public_key=credential.public_key,
                # 0: webauthn would compare the count before the signature; we compare after.
                credential_current_sign_count=0,
                require_user_verification=True,
            )
        except Exception as exc:  # webauthn and its parsers: every failure refuses
            raise _reject(_reason_of(exc)) from None
        if not verified.user_verified:  # checked by webauthn already; kept as a second lock
            raise _reject("user_verification")
        new_count = verified.new_sign_count
        if (new_count > 0 or credential.sign_count > 0) and new_count <= credential.sign_count:
            raise PasskeyCloneSuspectedError(
                credential_id=credential.credential_id, user_id=credential.user_id
            )
        return VerifiedPasskeyLogin(
            user_id=credential.user_id,
            credential_id=credential.credential_id,
            sign_count=new_count,
            backed_up=verified.credential_backed_up,
            used_at=now,
            satisfies_mfa=self._policy.passkey_satisfies_mfa,
        )


def _check_user_id(user_id: object) -> None:
    if not isinstance(user_id, str):
        raise TypeError(f"user_id must be a str, not {type(user_id).__name__}")
    if not user_id:
        raise ValueError("user_id must not be empty")
