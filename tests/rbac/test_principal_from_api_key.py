"""An API-key principal is handed to RBAC by shape, with no field copied by hand (KEY-4)."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

from storno_security.api_keys import ApiKeyManager
from storno_security.clock import FrozenClock
from storno_security.rbac import Permission, Principal, PrincipalKind, Scope
from storno_security.stores.memory import MemoryApiKeyStore


def _verified(scope: str, permissions: list[str] | None = None) -> object:
    keys = ApiKeyManager(MemoryApiKeyStore(), clock=FrozenClock(datetime(2026, 3, 1, tzinfo=UTC)))
    created = keys.create(
        "user-1",
        "org-1",
        name="ci",
        scope=scope,
        permissions=permissions,
        creator_permissions=frozenset(Permission) if permissions else None,
    )
    return keys.verify(created.key)


@pytest.mark.spec("KEY-4")
@pytest.mark.parametrize("scope", ["read", "write", "admin"])
def test_a_verified_key_becomes_an_rbac_principal(scope: str) -> None:
    principal = Principal.from_api_key(_verified(scope))
    assert principal.kind is PrincipalKind.API_KEY
    assert principal.user_id == "user-1"
    assert principal.organization_id == "org-1"
    assert Scope(scope) in principal.scopes
    assert principal.permissions is None
    assert principal.key_id


@pytest.mark.spec("KEY-4")
def test_an_explicit_permission_list_is_carried_over() -> None:
    principal = Principal.from_api_key(_verified("write", ["invoice.view", "invoice.create"]))
    assert principal.permissions == {Permission("invoice.view"), Permission("invoice.create")}


@pytest.mark.spec("KEY-4")
def test_only_an_api_key_principal_is_accepted() -> None:
    @attrs.frozen
    class Impostor:
        user_id: str = "user-1"
        organization_id: str = "org-1"
        scopes: frozenset[str] = frozenset({"admin"})
        permissions: None = None
        key_id: str = "k"

    with pytest.raises(TypeError):
        Principal.from_api_key(Impostor())
    with pytest.raises(TypeError):
        Principal.from_api_key(Principal.user("user-1", organization_id="org-1"))


@attrs.frozen
class _KeyShape:
    """A stand-in with the shape of a verified key, to vary one field at a time."""

    is_api_key: bool = True
    user_id: object = "user-1"
    organization_id: object = "org-1"
    scopes: object = frozenset({"read"})
    permissions: object = None
    key_id: object = "k1"


@pytest.mark.spec("KEY-4")
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("scopes", "read", "scopes must be a collection of scope names"),
        ("scopes", None, "scopes must be a collection of scope names"),
        ("permissions", "invoice.view", "permissions must be a collection of names or None"),
        ("user_id", None, "user_id and organization_id must be str"),
        ("organization_id", 7, "user_id and organization_id must be str"),
        ("key_id", None, "key_id must be a str"),
    ],
)
def test_a_key_of_the_wrong_shape_is_refused(field: str, value: object, message: str) -> None:
    assert Principal.from_api_key(_KeyShape()).key_id == "k1"
    with pytest.raises(TypeError, match=message):
        Principal.from_api_key(attrs.evolve(_KeyShape(), **{field: value}))
