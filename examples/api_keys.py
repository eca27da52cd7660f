"""API keys: create a scoped key, verify it per request, revoke it; ask RBAC what it may do.

Run: python examples/api_keys.py
"""

from __future__ import annotations

from storno_security import InvalidApiKeyError, PermissionDeniedError, SystemClock
from storno_security.api_keys import ApiKeyManager
from storno_security.rbac import Membership, Principal, Role, authorize
from storno_security.stores.memory import MemoryApiKeyStore


def main() -> None:
    keys = ApiKeyManager(MemoryApiKeyStore(), clock=SystemClock())

    # Creation. The caller has already checked that this *logged-in user* (never another API
    # key) may manage API keys here. The key itself is shown once: only its SHA-256 is stored.
    created = keys.create("user-42", "org-7", name="Accounting export", scope="read")
    print("new key (shown once):", created.key[:16] + "...", f"({len(created.key)} characters)")
    print(
        "listed as:",
        [(info.key_id, info.name, str(info.scope)) for info in keys.list_keys(user_id="user-42")],
    )

    # Every request: Authorization: af_...   ->   who the key acts for, where, within what scope.
    principal = keys.verify(created.key)
    print(
        "verified: acts for",
        principal.user_id,
        "in",
        principal.organization_id,
        "scopes",
        sorted(principal.scopes),
    )

    # A key with one character changed fails its CRC-32 checksum: refused by the parser before
    # any store lookup ("malformed"), so typos and random guesses never cost a database query.
    last = created.key[-1]
    mistyped = created.key[:-1] + ("A" if last != "A" else "B")
    try:
        keys.verify(mistyped)
    except InvalidApiKeyError as exc:
        print("mistyped key:", exc, f"(reason: {exc.reason})")

    # What may it do? RBAC intersects the creator's current role with the key's scope.
    member = Membership(user_id="user-42", organization_id="org-7", role=Role.ADMIN)
    as_rbac = Principal.from_api_key(principal)
    for permission in ("invoice.view", "invoice.create", "apikey.manage"):
        try:
            authorize(as_rbac, permission, organization_id="org-7", membership=member)
            print(f"read key, {permission}: allowed")
        except PermissionDeniedError as exc:
            print(f"read key, {permission}: denied ({exc.reason})")

    # Even an admin-scope key of the Owner cannot manage API keys (KEY-5): a leaked key must
    # not be able to mint new keys or extend itself.
    owner = Membership(user_id="user-42", organization_id="org-7", role=Role.OWNER)
    admin_key = keys.create("user-42", "org-7", name="Full access", scope="admin")
    try:
        authorize(
            Principal.from_api_key(keys.verify(admin_key.key)),
            "apikey.manage",
            organization_id="org-7",
            membership=owner,
        )
    except PermissionDeniedError as exc:
        print("admin key of the owner, apikey.manage: denied", f"({exc.reason})")

    # Revocation takes effect on the next request: there is no cache.
    print("revoked:", keys.revoke(created.key_id, expected_user_id="user-42"))
    try:
        keys.verify(created.key)
    except InvalidApiKeyError as exc:
        print("revoked key:", exc, f"(reason: {exc.reason})")


if __name__ == "__main__":
    main()
