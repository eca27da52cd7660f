"""KEY-1, KEY-2, KEY-3, KEY-5 through the manager: create, verify, expire, revoke, list."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.api_keys import (
    ApiKeyEvent,
    ApiKeyInfo,
    ApiKeyManager,
    ApiKeyPolicy,
    ApiKeyPrincipal,
    ApiKeyScope,
    legacy_key_id,
)
from storno_security.clock import FrozenClock
from storno_security.errors import (
    ApiKeyPermissionsError,
    InvalidApiKeyError,
    StoreError,
    StoreUnavailableError,
)
from storno_security.stores.memory import MemoryApiKeyStore
from tests.api_keys.conftest import CountingStore
from tests.api_keys.test_format import build_key

ORG = "org-1"


def reason_of(manager: ApiKeyManager, key: str) -> str:
    with pytest.raises(InvalidApiKeyError) as info:
        manager.verify(key)
    assert str(info.value) == "invalid API key"  # one message, whatever the reason
    return info.value.reason


# --- creation and the stored form ------------------------------------------------------------


@pytest.mark.spec("KEY-2")
def test_only_the_hash_is_stored_and_the_key_is_returned_once(
    manager: ApiKeyManager, store: CountingStore
) -> None:
    created = manager.create("user-1", ORG, name="CI", scope="read")
    assert created.key not in repr(created)
    record = store.get(created.key_id)
    assert record is not None
    assert record.key_hash == hashlib.sha256(created.key.encode()).hexdigest()
    assert created.key not in repr(record)
    assert all(created.key != v for v in attrs.asdict(record, recurse=True).values())
    # listings carry neither key nor hash
    (listed,) = manager.list_keys(user_id="user-1")
    assert listed == created.info
    assert "key_hash" not in attrs.fields_dict(ApiKeyInfo)
    assert record.key_hash not in repr(listed)


@pytest.mark.spec("KEY-1")
def test_verify_returns_the_principal(manager: ApiKeyManager, clock: FrozenClock) -> None:
    created = manager.create("user-1", ORG, name="CI", scope="write")
    principal = manager.verify(created.key)
    assert principal == ApiKeyPrincipal(
        user_id="user-1", organization_id=ORG, key_id=created.key_id, scope=ApiKeyScope.WRITE
    )
    assert principal.scopes == {"read", "write"}
    assert principal.permissions is None
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        principal.user_id = "user-2"  # type: ignore[misc]


@pytest.mark.spec("KEY-1")
def test_wrong_secret_for_a_real_key_id_is_unknown(manager: ApiKeyManager) -> None:
    created = manager.create("user-1", ORG, name="CI", scope="read")
    forged = build_key(created.key_id, "x" * 43)  # right id, valid checksum, wrong secret
    assert reason_of(manager, forged) == "unknown"
    assert reason_of(manager, build_key("Z" * 12, "x" * 43)) == "unknown"


@pytest.mark.spec("KEY-1")
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_character_change_is_refused_without_a_lookup(
    manager: ApiKeyManager, store: CountingStore, data: st.DataObject
) -> None:
    key = manager.create("user-1", ORG, name="CI", scope="read").key
    position = data.draw(st.integers(0, len(key) - 1))
    char = data.draw(st.characters(codec="utf-8").filter(lambda c: c != key[position]))
    changed = key[:position] + char + key[position + 1 :]
    before = store.calls["get"]
    assert reason_of(manager, changed) == "malformed"
    assert store.calls["get"] == before  # the checksum caught it: no store lookup


def _legacy_key() -> tuple[str, str]:
    """A key of the old platform and its SHA-256 hex digest, as the old platform stored it."""
    legacy = "af_" + secrets.token_hex(32)
    return legacy, hashlib.sha256(legacy.encode()).hexdigest()


def _import_legacy(
    manager: ApiKeyManager,
    stored_hash: str,
    *,
    created_at: datetime,
    name: str = "old",
    scope: str = "read",
    **kwargs: Any,
) -> ApiKeyInfo:
    """Import a legacy key of ``user-1`` in ``ORG``."""
    return manager.import_legacy_key(
        stored_hash,
        user_id="user-1",
        organization_id=ORG,
        name=name,
        scope=scope,
        created_at=created_at,
        **kwargs,
    )


@pytest.mark.spec("KEY-1")
def test_legacy_key_still_verifies(manager: ApiKeyManager, clock: FrozenClock) -> None:
    legacy, stored_hash = _legacy_key()
    info = _import_legacy(manager, stored_hash, scope="admin", created_at=clock.now())
    assert info.key_id == legacy_key_id(stored_hash)
    assert info.legacy
    principal = manager.verify(legacy)
    assert principal.key_id == info.key_id
    assert principal.scope is ApiKeyScope.ADMIN
    # a single changed hex digit is a different key: no checksum, so the store says "unknown"
    changed = legacy[:-1] + ("0" if legacy[-1] != "0" else "1")
    assert reason_of(manager, changed) == "unknown"
    # and legacy keys can be switched off
    strict = ApiKeyManager(
        MemoryApiKeyStore(), clock=clock, policy=ApiKeyPolicy(accept_legacy_keys=False)
    )
    assert reason_of(strict, legacy) == "malformed"


@pytest.mark.spec("KEY-1")
def test_imported_legacy_key_can_be_revoked_and_expire(
    manager: ApiKeyManager, clock: FrozenClock
) -> None:
    legacy, digest = _legacy_key()
    info = _import_legacy(
        manager,
        digest,
        created_at=clock.now() - timedelta(days=400),
        expires_at=clock.now() + timedelta(hours=1),
    )
    manager.verify(legacy)
    clock.advance(timedelta(hours=1))
    assert reason_of(manager, legacy) == "expired"
    assert manager.revoke(info.key_id)
    assert reason_of(manager, legacy) == "revoked"
    with pytest.raises(StoreError) as dup:
        _import_legacy(manager, digest, name="x", created_at=clock.now())
    assert dup.value.reason == "duplicate"
    with pytest.raises(ValueError, match="SHA-256"):
        _import_legacy(manager, "not-a-hash", name="x", created_at=clock.now())


# --- scopes, expiry, revocation, last use (KEY-3) --------------------------------------------


@pytest.mark.spec("KEY-3")
def test_scopes_nest() -> None:
    read, write, admin = ApiKeyScope.READ, ApiKeyScope.WRITE, ApiKeyScope.ADMIN
    assert read.implied == {"read"}
    assert write.implied == {"read", "write"}
    assert admin.implied == {"read", "write", "admin"}
    assert admin.includes(write)
    assert admin.includes(read)
    assert write.includes(read)
    assert not read.includes(write)
    assert not write.includes(admin)
    assert not read.includes(admin)
    assert all(s.includes(s) for s in ApiKeyScope)
    assert ApiKeyScope.parse("write") is write
    with pytest.raises(ValueError, match="scope"):
        ApiKeyScope.parse("root")
    with pytest.raises(TypeError):
        ApiKeyScope.parse(2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        read.includes("read")  # type: ignore[arg-type]


@pytest.mark.spec("KEY-3")
@pytest.mark.parametrize("scope", ["read", "write", "admin"])
def test_principal_carries_the_scope(manager: ApiKeyManager, scope: str) -> None:
    created = manager.create("user-1", ORG, name="CI", scope=scope)
    assert manager.verify(created.key).scope is ApiKeyScope(scope)


@pytest.mark.spec("KEY-3")
def test_key_expires(manager: ApiKeyManager, clock: FrozenClock) -> None:
    expires = clock.now() + timedelta(days=30)
    created = manager.create("user-1", ORG, name="CI", scope="read", expires_at=expires)
    assert created.info.expires_at == expires
    clock.set(expires - timedelta(microseconds=1))
    assert manager.verify(created.key).expires_at == expires
    clock.set(expires)
    assert reason_of(manager, created.key) == "expired"


@pytest.mark.spec("KEY-3")
def test_revocation_takes_effect_on_the_next_request(manager: ApiKeyManager) -> None:
    created = manager.create("user-1", ORG, name="CI", scope="read")
    manager.verify(created.key)
    assert manager.revoke(created.key_id, expected_user_id="user-1") is True
    assert reason_of(manager, created.key) == "revoked"
    assert manager.revoke(created.key_id) is False  # already revoked
    (info,) = manager.list_keys(user_id="user-1")
    assert info.revoked_at is not None


@pytest.mark.spec("KEY-3")
def test_nobody_else_can_revoke_a_key(manager: ApiKeyManager) -> None:
    created = manager.create("user-1", ORG, name="CI", scope="read")
    assert manager.revoke(created.key_id, expected_user_id="user-2") is False
    assert manager.revoke(created.key_id, expected_organization_id="org-2") is False
    assert manager.revoke("no-such-key") is False
    manager.verify(created.key)
    assert manager.revoke(created.key_id, expected_organization_id=ORG) is True


@pytest.mark.spec("KEY-3")
def test_revoke_user_keys(manager: ApiKeyManager) -> None:
    a = manager.create("user-1", ORG, name="a", scope="read")
    b = manager.create("user-1", "org-2", name="b", scope="read")
    other = manager.create("user-2", ORG, name="c", scope="read")
    assert manager.revoke_user_keys("user-1", organization_id="org-2") == [b.key_id]
    assert manager.revoke_user_keys("user-1") == [a.key_id]
    assert manager.revoke_user_keys("user-1") == []
    for key in (a.key, b.key):
        assert reason_of(manager, key) == "revoked"
    manager.verify(other.key)


@pytest.mark.spec("KEY-3")
def test_last_used_is_written_at_most_once_a_minute(
    manager: ApiKeyManager, store: CountingStore, clock: FrozenClock
) -> None:
    created = manager.create("user-1", ORG, name="CI", scope="read")
    assert created.info.last_used_at is None
    start = clock.now()
    manager.verify(created.key)
    assert store.calls["touch"] == 1
    assert store.touched(created.key_id).last_used_at == start
    for _ in range(100):  # a busy minute: no write at all
        clock.advance(0.5)
        manager.verify(created.key)
    assert store.calls["touch"] == 1
    assert store.touched(created.key_id).last_used_at == start
    clock.set(start + timedelta(seconds=60))
    manager.verify(created.key)
    assert store.calls["touch"] == 2
    assert store.touched(created.key_id).last_used_at == start + timedelta(seconds=60)
    manager.verify(created.key)
    assert store.calls["touch"] == 2


@pytest.mark.spec("KEY-3")
def test_failed_verifications_write_nothing(
    manager: ApiKeyManager, store: CountingStore, clock: FrozenClock
) -> None:
    created = manager.create("user-1", ORG, name="CI", scope="read")
    reason_of(manager, build_key(created.key_id, "y" * 43))
    manager.revoke(created.key_id)
    reason_of(manager, created.key)
    assert store.calls["touch"] == 0
    assert store.touched(created.key_id).last_used_at is None


def test_last_used_interval_is_a_policy(store: CountingStore, clock: FrozenClock) -> None:
    manager = ApiKeyManager(
        store, clock=clock, policy=ApiKeyPolicy(last_used_interval=timedelta(minutes=10))
    )
    created = manager.create("user-1", ORG, name="CI", scope="read")
    manager.verify(created.key)
    clock.advance(timedelta(minutes=9))
    manager.verify(created.key)
    assert store.calls["touch"] == 1
    clock.advance(timedelta(minutes=1))
    manager.verify(created.key)
    assert store.calls["touch"] == 2


def test_store_failure_is_not_an_invalid_key(clock: FrozenClock) -> None:
    class Down(MemoryApiKeyStore):
        def get(self, key_id: str) -> None:
            raise StoreUnavailableError(reason="unavailable")

    manager = ApiKeyManager(Down(), clock=clock)
    created = manager.create("user-1", ORG, name="CI", scope="read")
    with pytest.raises(StoreUnavailableError):
        manager.verify(created.key)


# --- explicit permissions (KEY-4 creation check) and KEY-5 -----------------------------------


def test_explicit_permissions_must_be_held_by_the_creator(manager: ApiKeyManager) -> None:
    held = {"invoice.view", "invoice.create", "company.view"}
    created = manager.create(
        "user-1",
        ORG,
        name="CI",
        scope="write",
        permissions=["invoice.create", "invoice.view"],
        creator_permissions=held,
    )
    assert created.info.permissions == ("invoice.create", "invoice.view")
    assert manager.verify(created.key).permissions == {"invoice.create", "invoice.view"}
    with pytest.raises(ApiKeyPermissionsError) as info:
        manager.create(
            "user-1",
            ORG,
            name="CI",
            scope="write",
            permissions=["invoice.issue"],
            creator_permissions=held,
        )
    assert info.value.reason == "exceeds_creator"
    with pytest.raises(ValueError, match="creator_permissions"):
        manager.create("user-1", ORG, name="CI", scope="write", permissions=["invoice.view"])
    with pytest.raises(ValueError, match="empty"):
        manager.create(
            "user-1", ORG, name="CI", scope="write", permissions=[], creator_permissions=held
        )
    with pytest.raises(TypeError):
        manager.create(
            "user-1",
            ORG,
            name="CI",
            scope="write",
            permissions="invoice.view",
            creator_permissions=held,
        )


@pytest.mark.spec("KEY-5")
@pytest.mark.parametrize(
    "permission", ["apikey.manage", "password.change", "mfa.disable", "passkey.register"]
)
def test_no_key_may_carry_a_forbidden_permission(manager: ApiKeyManager, permission: str) -> None:
    with pytest.raises(ApiKeyPermissionsError) as info:
        manager.create(
            "owner",
            ORG,
            name="CI",
            scope="admin",
            permissions=[permission],
            creator_permissions=[permission],
        )
    assert info.value.reason == "forbidden"


@pytest.mark.spec("KEY-5")
def test_an_api_key_principal_never_satisfies_mfa(manager: ApiKeyManager) -> None:
    principal = manager.verify(manager.create("user-1", ORG, name="CI", scope="admin").key)
    assert principal.is_api_key is True
    assert principal.satisfies_mfa is False
    assert not principal.may_perform("apikey.manage")
    assert not principal.may_perform("mfa.disable")
    assert principal.may_perform("invoice.view")
    with pytest.raises(TypeError):
        ApiKeyPrincipal(  # type: ignore[call-arg]
            user_id="u", organization_id="o", key_id="k", scope=ApiKeyScope.READ, satisfies_mfa=True
        )
    with pytest.raises(AttributeError):
        principal.satisfies_mfa = True  # type: ignore[misc]


# --- argument checks -------------------------------------------------------------------------


def test_expiry_checks(manager: ApiKeyManager, clock: FrozenClock) -> None:
    with pytest.raises(ValueError, match="future"):
        manager.create("u", ORG, name="n", scope="read", expires_at=clock.now())
    with pytest.raises(ValueError, match="naive"):
        manager.create("u", ORG, name="n", scope="read", expires_at=datetime(2030, 1, 1))


def test_max_lifetime(store: CountingStore, clock: FrozenClock) -> None:
    manager = ApiKeyManager(
        store, clock=clock, policy=ApiKeyPolicy(max_lifetime=timedelta(days=90))
    )
    created = manager.create("u", ORG, name="n", scope="read")
    assert created.info.expires_at == clock.now() + timedelta(days=90)
    with pytest.raises(ValueError, match="max_lifetime"):
        manager.create("u", ORG, name="n", scope="read", expires_at=clock.now() + timedelta(91))


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("", ORG), {}, ValueError),
        (("u", ""), {}, ValueError),
        (("u" * 256, ORG), {}, ValueError),
        ((1, ORG), {}, TypeError),
        (("u", ORG), {"name": "  "}, ValueError),
        (("u", ORG), {"name": "x" * 201}, ValueError),
        (("u", ORG), {"scope": "root"}, ValueError),
        (("u", ORG), {"scope": None}, TypeError),
    ],
)
def test_create_argument_checks(
    manager: ApiKeyManager, args: tuple[object, ...], kwargs: dict[str, object], error: type
) -> None:
    options: dict[str, object] = {"name": "n", "scope": "read", **kwargs}
    with pytest.raises(error):
        manager.create(*args, **options)  # type: ignore[arg-type]


def test_list_keys(manager: ApiKeyManager, clock: FrozenClock) -> None:
    a = manager.create("user-1", ORG, name="a", scope="read")
    clock.advance(1)
    b = manager.create("user-1", "org-2", name="b", scope="read")
    clock.advance(1)
    c = manager.create("user-2", ORG, name="c", scope="read")
    assert [i.key_id for i in manager.list_keys(user_id="user-1")] == [a.key_id, b.key_id]
    assert [i.key_id for i in manager.list_keys(organization_id=ORG)] == [a.key_id, c.key_id]
    assert [i.key_id for i in manager.list_keys(user_id="user-1", organization_id=ORG)] == [
        a.key_id
    ]
    with pytest.raises(ValueError, match="user_id"):
        manager.list_keys()


def test_policy_validation() -> None:
    assert ApiKeyPolicy().last_used_interval == timedelta(seconds=60)
    assert ApiKeyPolicy().accept_legacy_keys is True
    assert ApiKeyPolicy().max_lifetime is None
    with pytest.raises(ValueError, match="last_used_interval"):
        ApiKeyPolicy(last_used_interval=timedelta(0))
    with pytest.raises(TypeError):
        ApiKeyPolicy(last_used_interval=60)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ApiKeyPolicy(accept_legacy_keys=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_lifetime"):
        ApiKeyPolicy(max_lifetime=timedelta(seconds=1))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        ApiKeyPolicy().accept_legacy_keys = False  # type: ignore[misc]


def test_times_are_utc(manager: ApiKeyManager) -> None:
    created = manager.create("u", ORG, name="n", scope="read")
    assert created.info.created_at.tzinfo is UTC


def test_events_for_the_audit_trail(store: CountingStore, clock: FrozenClock) -> None:
    events: list[ApiKeyEvent] = []
    manager = ApiKeyManager(store, clock=clock, on_event=events.append)
    a = manager.create("user-1", ORG, name="a", scope="admin")
    b = manager.create("user-1", ORG, name="b", scope="read")
    assert events[0] == ApiKeyEvent(
        kind="api_key_created",
        user_id="user-1",
        at=clock.now(),
        key_ids=(a.key_id,),
        organization_id=ORG,
        scope=ApiKeyScope.ADMIN,
    )
    assert manager.revoke(a.key_id)
    assert events[2] == ApiKeyEvent(
        kind="api_key_revoked",
        user_id="user-1",
        at=clock.now(),
        key_ids=(a.key_id,),
        organization_id=ORG,
    )
    assert not manager.revoke(a.key_id)
    assert manager.revoke_user_keys("user-1") == [b.key_id]
    assert manager.revoke_user_keys("user-1") == []
    assert [e.kind for e in events] == [
        "api_key_created",
        "api_key_created",
        "api_key_revoked",
        "api_key_revoked",
    ]
    assert events[3].key_ids == (b.key_id,)
    for event in events:  # no secret in any event
        assert a.key not in repr(event)
        assert b.key not in repr(event)


def test_import_has_no_side_effects() -> None:
    import subprocess
    import sys

    code = (
        "import secrets\n"
        "calls = []\n"
        "for name in ('token_bytes', 'randbelow', 'token_hex'):\n"
        "    real = getattr(secrets, name)\n"
        "    setattr(secrets, name, lambda *a, _r=real: calls.append(a) or _r(*a))\n"
        "import storno_security.api_keys\n"
        "assert not calls, calls\n"
        "import sys; assert 'sqlalchemy' not in sys.modules and 'falcon' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- exact edges (each kills a mutant that the tests above let live) --------------------------


def test_a_parsed_key_hides_its_hash_and_is_current_by_default() -> None:
    from storno_security.api_keys import ParsedApiKey, generate_api_key, parse_api_key

    key = generate_api_key().key
    parsed = parse_api_key(key)
    assert parsed.key_hash not in repr(parsed)
    assert parsed.legacy is False
    assert ParsedApiKey(key_id="k", key_hash="h").legacy is False


@pytest.mark.parametrize("bad", [None, 7, b"user"])
def test_ids_that_are_not_text_are_a_type_error(manager: ApiKeyManager, bad: object) -> None:
    with pytest.raises(TypeError, match="user_id must be a str"):
        manager.create(bad, ORG, name="k", scope="read")  # type: ignore[arg-type]


def test_an_expiry_exactly_at_the_policy_limit_is_accepted(
    store: CountingStore, clock: FrozenClock
) -> None:
    limit = timedelta(days=30)
    manager = ApiKeyManager(store, clock=clock, policy=ApiKeyPolicy(max_lifetime=limit))
    created = manager.create("u1", ORG, name="k", scope="read", expires_at=clock.now() + limit)
    assert created.info.expires_at == clock.now() + limit
    with pytest.raises(ValueError, match="max_lifetime"):
        manager.create(
            "u1", ORG, name="k", scope="read", expires_at=clock.now() + limit + timedelta(seconds=1)
        )


@pytest.mark.parametrize("lifetime", [timedelta(minutes=1), timedelta(days=3660)])
def test_the_lifetime_bounds_are_inclusive(lifetime: timedelta) -> None:
    assert ApiKeyPolicy(max_lifetime=lifetime).max_lifetime == lifetime
    with pytest.raises(ValueError, match="between 1 minute and 3660 days"):
        ApiKeyPolicy(max_lifetime=lifetime + (timedelta(days=1) if lifetime.days else -lifetime))


def test_a_name_that_is_not_text_is_a_type_error(manager: ApiKeyManager) -> None:
    with pytest.raises(TypeError, match="name must be a str, not bytes"):
        manager.create("user-1", ORG, name=b"ci", scope="read")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("permissions", "error", "message"),
    [
        ("invoice.read", TypeError, "permissions must be an iterable of str, not a str"),
        (["invoice.read", 7], TypeError, "permissions must hold only str, not int"),
        (["invoice.read", "Invoice Read"], ValueError, "'Invoice Read' is not a permission name"),
    ],
)
def test_explicit_permissions_must_be_a_collection_of_names(
    manager: ApiKeyManager, store: CountingStore, permissions: Any, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        manager.create(
            "user-1",
            ORG,
            name="ci",
            scope="read",
            permissions=permissions,
            creator_permissions=["invoice.read"],
        )
    assert store.calls["create"] == 0


def test_revoke_refuses_ids_that_are_not_text(manager: ApiKeyManager) -> None:
    created = manager.create("user-1", ORG, name="ci", scope="read")
    with pytest.raises(TypeError, match="key_id must be a str, not bytes"):
        manager.revoke(created.key_id.encode())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected_user_id must be a str, not int"):
        manager.revoke(created.key_id, expected_user_id=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected_organization_id must be a str, not list"):
        manager.revoke(created.key_id, expected_organization_id=[ORG])  # type: ignore[arg-type]
    assert manager.verify(created.key).key_id == created.key_id  # still live


def test_a_key_erased_right_after_its_revocation_gives_no_event(clock: FrozenClock) -> None:
    """The user is forgotten between the revocation and the read-back for the event: the
    revocation happened and is reported, but there is no record left to describe."""

    class ForgetsAfterRevoking(MemoryApiKeyStore):
        def revoke(self, key_id: str, **kwargs: Any) -> bool:
            record = self.get(key_id)
            revoked = super().revoke(key_id, **kwargs)
            if record is not None:
                self.forget_user(record.info.user_id)  # a concurrent account deletion
            return revoked

    events: list[ApiKeyEvent] = []
    manager = ApiKeyManager(ForgetsAfterRevoking(), clock=clock, on_event=events.append)
    created = manager.create("user-1", ORG, name="ci", scope="read")
    assert manager.revoke(created.key_id) is True
    assert [event.kind for event in events] == ["api_key_created"]


def test_the_manager_shows_its_store(store: CountingStore, clock: FrozenClock) -> None:
    manager = ApiKeyManager(store, clock=clock)
    assert repr(manager) == f"ApiKeyManager({store!r})"
    assert manager.policy == ApiKeyPolicy()


def test_max_lifetime_must_be_a_timedelta() -> None:
    with pytest.raises(TypeError, match="max_lifetime must be a timedelta or None"):
        ApiKeyPolicy(max_lifetime=3600)  # type: ignore[arg-type]


# --- exact edges of the arguments (each kills a boundary mutant) ------------------------------


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("last_used_interval", timedelta(seconds=1), timedelta(milliseconds=999)),
        ("last_used_interval", timedelta(days=1), timedelta(days=1, microseconds=1)),
        ("max_lifetime", timedelta(minutes=1), timedelta(seconds=59)),
        ("max_lifetime", timedelta(days=3660), timedelta(days=3660, microseconds=1)),
    ],
)
def test_policy_bounds_are_inclusive(field: str, good: timedelta, bad: timedelta) -> None:
    assert getattr(ApiKeyPolicy(**{field: good}), field) == good
    with pytest.raises(ValueError, match="between"):
        ApiKeyPolicy(**{field: bad})


def test_policy_durations_must_be_timedeltas() -> None:
    with pytest.raises(TypeError, match="last_used_interval must be a timedelta"):
        ApiKeyPolicy(last_used_interval=60)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_lifetime must be a timedelta or None"):
        ApiKeyPolicy(max_lifetime=3600)  # type: ignore[arg-type]


def test_policy_takes_keywords_and_a_real_bool() -> None:
    with pytest.raises(TypeError):
        ApiKeyPolicy(timedelta(seconds=5))  # type: ignore[misc]
    with pytest.raises(TypeError, match="bool"):
        ApiKeyPolicy(accept_legacy_keys=1)  # type: ignore[arg-type]


def test_ids_and_names_of_exactly_the_longest_length_are_taken(manager: ApiKeyManager) -> None:
    user, organization, name = "u" * 255, "o" * 255, "n" * 200
    created = manager.create(user, organization, name=name, scope="read")
    assert (created.info.user_id, created.info.organization_id, created.info.name) == (
        user,
        organization,
        name,
    )
    with pytest.raises(ValueError, match="1 to 255"):
        manager.create("u" * 256, "org", name="n", scope="read")
    with pytest.raises(ValueError, match="1 to 200"):
        manager.create("user", "org", name="n" * 201, scope="read")


def test_a_key_may_carry_exactly_its_creators_permissions(manager: ApiKeyManager) -> None:
    held = ["invoice.view", "invoice.create"]
    created = manager.create(
        "user", "org", name="n", scope="write", permissions=held, creator_permissions=held
    )
    assert created.info.permissions == tuple(sorted(held))


def test_listing_needs_a_filter(manager: ApiKeyManager) -> None:
    with pytest.raises(ValueError, match="give user_id, organization_id or both"):
        manager.list_keys()
