"""Who a verified API key acts for: the principal handed to the RBAC layer (KEY-4, KEY-5)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import attrs

from storno_security.api_keys.scopes import ApiKeyScope, is_forbidden_for_api_keys

__all__ = ["ApiKeyPrincipal"]


@attrs.frozen
class ApiKeyPrincipal:
    """A verified API key: the user it acts for, in one organization, within its scope.

    The RBAC layer grants the intersection of the user's role permissions in
    ``organization_id`` with the scope's (or with ``permissions`` when set, KEY-4), and never
    an action for which :meth:`may_perform` is false (KEY-5).

    Attributes:
        user_id: the user the key acts for.
        organization_id: the only organization it acts in.
        key_id: the key's public id (for logs and the audit trail).
        scope: the key's scope.
        permissions: the key's explicit permission list, or ``None`` (then the scope decides).
        expires_at: when the key expires, or ``None``.
        is_api_key: always ``True``: tells an API-key principal from a login session.
        satisfies_mfa: always ``False``: an API key never counts as a second factor, nor as a
            fresh one for step-up (KEY-5).
    """

    is_api_key: ClassVar[bool] = True
    satisfies_mfa: ClassVar[bool] = False

    user_id: str
    organization_id: str
    key_id: str
    scope: ApiKeyScope
    permissions: frozenset[str] | None = None
    expires_at: datetime | None = None

    @property
    def scopes(self) -> frozenset[str]:
        """The key's scope and every scope it includes, e.g. ``{"read", "write"}``."""
        return self.scope.implied

    def may_perform(self, action: str) -> bool:
        """False for every action no API key may perform (KEY-5); true otherwise. The RBAC
        decision still applies on top.

        Raises:
            TypeError: ``action`` is not a string.
        """
        return not is_forbidden_for_api_keys(action)
