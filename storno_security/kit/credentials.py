"""Credentials an organization hands out or keeps: API keys (KEY-1..KEY-5) and sealed secrets
in the vault (VLT-1..3), each behind the one access decision and re-authentication (ACC-6).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from storno_security.api_keys.manager import CreatedApiKey
from storno_security.api_keys.scopes import ApiKeyScope
from storno_security.api_keys.storage import ApiKeyInfo
from storno_security.audit.capabilities import vault_access_event
from storno_security.errors import InvalidCiphertextError, PermissionDeniedError
from storno_security.kit.policy import SensitiveAction
from storno_security.kit.results import Caller
from storno_security.kit.tenancy import TenancyFlows
from storno_security.rbac.authorize import Authorization
from storno_security.rbac.permissions import Permission

__all__ = ["CredentialFlows"]


class CredentialFlows(TenancyFlows):
    """API keys and vault secrets (mixed into :class:`~storno_security.kit.Kit`)."""

    # --- API keys ----------------------------------------------------------------------------

    def _key_manager(self, caller: Caller, organization: str | None) -> Authorization:
        if caller.is_api_key:  # KEY-5: a key never manages keys
            raise PermissionDeniedError(reason="key_forbidden")
        return self.authorize(caller, Permission.APIKEY_MANAGE, organization=organization)

    def create_api_key(
        self,
        caller: Caller,
        *,
        name: str,
        scope: ApiKeyScope | str,
        expires_at: datetime | None = None,
        permissions: Iterable[str] | None = None,
        organization: str | None = None,
        step_up_token: str | None = None,
        current_password: str | None = None,
    ) -> CreatedApiKey:
        """Create an API key acting for the caller in their organization (KEY-1..KEY-4),
        after re-authentication (ACC-6). The key is returned once.

        Raises:
            PermissionDeniedError: the caller is an API key, or lacks ``apikey.manage``.
            ReauthenticationRequiredError, InvalidStepUpTokenError, InvalidPasswordError: the
                proof is missing or wrong.
            ValueError: a bad name, scope, expiry or permission list.
            ApiKeyPermissionsError: a permission beyond the caller's, or one no key may hold.
            StoreError: a store failed.
        """
        auth = self._key_manager(caller, organization)
        scope = ApiKeyScope.parse(scope)
        self.reauthenticate(
            caller,
            SensitiveAction.API_KEY_CREATE,
            step_up_token=step_up_token,
            current_password=current_password,
        )
        created: CreatedApiKey = self.api_keys.create(
            caller.user_id,
            auth.organization_id,
            name=name,
            scope=scope,
            expires_at=expires_at,
            permissions=permissions,
            creator_permissions=[p.value for p in auth.effective_permissions],
        )
        return created

    def list_api_keys(self, caller: Caller, *, organization: str | None = None) -> list[ApiKeyInfo]:
        """The caller's keys in the organization (never a secret or hash).

        Raises:
            PermissionDeniedError: the caller is an API key, or lacks ``apikey.manage``.
            StoreError: a store failed.
        """
        auth = self._key_manager(caller, organization)
        found: list[ApiKeyInfo] = self.api_keys.list_keys(
            user_id=caller.user_id, organization_id=auth.organization_id
        )
        return found

    def revoke_api_key(
        self, caller: Caller, key_id: str, *, organization: str | None = None
    ) -> bool:
        """Revoke one of the caller's keys; effective on the next request (KEY-3). ``False``
        when the caller has no such key here.

        Raises:
            PermissionDeniedError: the caller is an API key, or lacks ``apikey.manage``.
            StoreError: a store failed.
        """
        auth = self._key_manager(caller, organization)
        if not isinstance(key_id, str) or not 1 <= len(key_id) <= 128:
            return False
        return bool(
            self.api_keys.revoke(
                key_id,
                expected_user_id=caller.user_id,
                expected_organization_id=auth.organization_id,
            )
        )

    # --- vault -------------------------------------------------------------------------------

    def seal_secret(
        self,
        caller: Caller,
        auth: Authorization,
        plaintext: bytes | str,
        *,
        associated_data: str,
        secret_name: str,
        step_up_token: str | None = None,
        current_password: str | None = None,
    ) -> str:
        """Seal a secret for the application to store (VLT-1, VLT-2), after re-authentication
        for ``vault.write`` (ACC-6). ``auth`` is the caller's authorization for the act.

        Raises:
            PermissionDeniedError: the caller is an API key.
            ReauthenticationRequiredError, InvalidStepUpTokenError, InvalidPasswordError: the
                proof is missing or wrong.
            StoreError: a store failed.
        """
        self.reauthenticate(
            caller,
            SensitiveAction.VAULT_WRITE,
            step_up_token=step_up_token,
            current_password=current_password,
        )
        sealed = self.keys.vault.seal(plaintext, associated_data=associated_data)
        self.emit_event(
            vault_access_event(
                "write",
                at=self.clock.now(),
                actor_id=caller.user_id,
                secret_name=secret_name,
                vault_key_id=self.keys.vault.active_kid,
                organization_id=auth.organization_id,
                company_id=auth.company_id,
            )
        )
        return sealed

    def open_secret(
        self,
        caller: Caller,
        auth: Authorization,
        sealed: str,
        *,
        associated_data: str,
        secret_name: str,
        step_up_token: str | None = None,
        current_password: str | None = None,
    ) -> bytes:
        """Open a sealed secret for the caller (VLT-1), after re-authentication for
        ``vault.read`` (ACC-6). Every read, and every failure, is audited.

        Raises:
            PermissionDeniedError: the caller is an API key.
            ReauthenticationRequiredError, InvalidStepUpTokenError, InvalidPasswordError: the
                proof is missing or wrong.
            InvalidCiphertextError: the stored token does not open (tampered, moved, unknown
                key): one error for every cause (VLT-3).
            StoreError: a store failed.
        """
        self.reauthenticate(
            caller,
            SensitiveAction.VAULT_READ,
            step_up_token=step_up_token,
            current_password=current_password,
        )
        event = {
            "at": self.clock.now(),
            "actor_id": caller.user_id,
            "secret_name": secret_name,
            "organization_id": auth.organization_id,
            "company_id": auth.company_id,
        }
        try:
            plain = self.keys.vault.open(sealed, associated_data=associated_data)
        except InvalidCiphertextError as exc:
            self.emit_event(vault_access_event("read", error=exc, **event))  # type: ignore[arg-type]
            raise
        self.emit_event(vault_access_event("read", **event))  # type: ignore[arg-type]
        return plain
