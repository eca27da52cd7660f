"""Passkeys with their store: the flows an application calls (register, log in, list, rename,
delete), on top of :class:`~storno_security.passkeys.ceremonies.PasskeyRelyingParty`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storno_security.clock import Clock
from storno_security.errors import InvalidPasskeyError, PasskeyCloneSuspectedError, StoreError
from storno_security.passkeys.ceremonies import (
    PasskeyOptions,
    PasskeyRelyingParty,
    VerifiedPasskeyLogin,
    new_user_handle,
)
from storno_security.passkeys.storage import (
    PasskeyCredential,
    PasskeyCredentialStore,
    UseOutcome,
)

__all__ = ["PasskeyManager"]


class PasskeyManager:
    """Registration, login and management of users' passkeys.

    Args:
        relying_party: runs the ceremonies (policy, challenge store).
        credentials: where registered passkeys and user handles live.
        clock: the time source.
    """

    def __init__(
        self,
        relying_party: PasskeyRelyingParty,
        *,
        credentials: PasskeyCredentialStore,
        clock: Clock,
    ) -> None:
        if not isinstance(relying_party, PasskeyRelyingParty):
            raise TypeError("relying_party must be a PasskeyRelyingParty")
        self._rp = relying_party
        self._credentials = credentials
        self._clock = clock

    def __repr__(self) -> str:
        return f"PasskeyManager({self._rp!r})"

    # --- registration ------------------------------------------------------------------------

    def start_registration(
        self, user_id: str, *, user_name: str, user_display_name: str | None = None
    ) -> PasskeyOptions:
        """Registration options for the user (PK-1): their stable handle, their existing
        passkeys excluded.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``user_id`` or ``user_name`` is empty.
            StoreError: a store failed.
        """
        handle = self._credentials.user_handle(user_id, candidate=new_user_handle())
        return self._rp.registration_options(
            user_id,
            user_name=user_name,
            user_handle=handle,
            user_display_name=user_display_name,
            existing=self._credentials.list_for_user(user_id),
        )

    def finish_registration(
        self, response: str | Mapping[str, Any], *, user_id: str, name: str
    ) -> PasskeyCredential:
        """Verify the registration response and store the new passkey.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``name`` is not acceptable.
            InvalidPasskeyError: the response is not acceptable (see
                :meth:`PasskeyRelyingParty.verify_registration`), or the credential is
                registered already (``reason="duplicate"``).
            StoreError: a store failed.
        """
        handle = self._credentials.user_handle(user_id, candidate=new_user_handle())
        credential = self._rp.verify_registration(
            response, user_id=user_id, user_handle=handle, name=name
        )
        try:
            self._credentials.add(credential)
        except StoreError as exc:
            if exc.reason == "duplicate":
                raise InvalidPasskeyError(reason="duplicate") from None
            raise
        return credential

    # --- login -------------------------------------------------------------------------------

    def start_login(self, user_id: str | None = None) -> PasskeyOptions:
        """Login options (PK-4): for a known user with ``allowCredentials`` (login by email, or
        a passkey as second factor), or usernameless (``user_id=None``).

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``user_id`` is empty.
            StoreError: a store failed.
        """
        credentials = self._credentials.list_for_user(user_id) if user_id is not None else []
        return self._rp.authentication_options(user_id=user_id, credentials=credentials)

    def finish_login(
        self, response: str | Mapping[str, Any], *, expected_user_id: str | None = None
    ) -> VerifiedPasskeyLogin:
        """Verify an assertion and record the use, raising the sign count atomically (PK-3).

        Args:
            response: the ``PublicKeyCredential`` from ``navigator.credentials.get()``.
            expected_user_id: when set, only this user's passkey is accepted (second factor).

        Returns:
            The verified login. With ``satisfies_mfa`` it needs no second factor (MFA-5).

        Raises:
            TypeError: an argument has the wrong type.
            InvalidPasskeyError: the assertion is not acceptable (see
                :meth:`PasskeyRelyingParty.verify_authentication`), names an unknown credential
                (``unknown_credential``), or the credential is flagged (``flagged``).
            PasskeyCloneSuspectedError: the sign count did not grow; the credential is now
                flagged and refused.
            StoreError: a store failed.
        """
        try:
            login = self._rp.verify_login(
                response, lookup=self._credentials.get, expected_user_id=expected_user_id
            )
        except PasskeyCloneSuspectedError as exc:
            self._credentials.flag(exc.credential_id, now=self._clock.now())
            raise
        credential_id = login.credential_id
        outcome = self._credentials.record_use(
            credential_id, sign_count=login.sign_count, backed_up=login.backed_up, now=login.used_at
        )
        if outcome is UseOutcome.RECORDED:
            return login
        if outcome is UseOutcome.REGRESSED:  # a concurrent login with the same count won
            raise PasskeyCloneSuspectedError(credential_id=credential_id, user_id=login.user_id)
        raise InvalidPasskeyError(reason=outcome.value)  # flagged or deleted meanwhile

    def verify_second_factor(
        self, response: str | Mapping[str, Any], *, user_id: str
    ) -> VerifiedPasskeyLogin:
        """A passkey as the second factor of a password login (MFA-5): only ``user_id``'s.

        Start it with :meth:`start_login` for the same user.

        Raises:
            TypeError: an argument has the wrong type.
            InvalidPasskeyError: as :meth:`finish_login`; another user's passkey gives
                ``reason="wrong_user"``.
            PasskeyCloneSuspectedError: as :meth:`finish_login`.
            StoreError: a store failed.
        """
        return self.finish_login(response, expected_user_id=user_id)

    def has_passkeys(self, user_id: str) -> bool:
        """Whether the user has a usable (unflagged) passkey, so ``mfa_methods`` may offer
        ``"passkey"`` (MFA-5).

        Raises:
            StoreError: the store failed.
        """
        return any(c.flagged_at is None for c in self._credentials.list_for_user(user_id))

    # --- management --------------------------------------------------------------------------

    def list_passkeys(self, user_id: str) -> list[PasskeyCredential]:
        """The user's passkeys, oldest first.

        Raises:
            StoreError: the store failed.
        """
        return self._credentials.list_for_user(user_id)

    def rename_passkey(self, user_id: str, credential_id: bytes, *, name: str) -> bool:
        """Rename one of the user's passkeys. Returns ``False`` if the user has no such passkey.

        Raises:
            TypeError: an argument has the wrong type.
            ValueError: ``name`` is not acceptable.
            StoreError: the store failed.
        """
        name = self._rp.check_name(name)
        return self._credentials.rename(credential_id, user_id=user_id, name=name)

    def delete_passkey(self, user_id: str, credential_id: bytes) -> bool:
        """Delete one of the user's passkeys. Returns ``False`` if the user has no such passkey.

        Raises:
            StoreError: the store failed.
        """
        return self._credentials.delete(credential_id, user_id=user_id)
