"""What every flow of the kit shares: how it is built, and how it reports events (ACC-3)."""

from __future__ import annotations

from typing import Any

import pytest

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidApiKeyError, InvalidPasswordError
from storno_security.events import Outcome, SecurityEventType, request_context
from storno_security.kit import Kit
from storno_security.stores.memory import memory_bundle
from tests.kit.conftest import EventCatcher, kit_keys, kit_policy


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("stores", {"directory": None}, "stores must be a StoreBundle"),
        ("policy", {"issuer": "x"}, "policy must be a KitPolicy"),
        ("keys", b"k" * 32, "keys must be KitKeys"),
        ("google", "https://accounts.google.com", "google must be a GoogleIdTokenVerifier"),
    ],
)
def test_a_kit_is_built_from_its_own_types_only(
    clock: FrozenClock, argument: str, value: object, message: str
) -> None:
    arguments: dict[str, Any] = {
        "stores": memory_bundle(),
        "policy": kit_policy(),
        "keys": kit_keys(),
        "clock": clock,
    }
    arguments[argument] = value
    stores = arguments.pop("stores")
    with pytest.raises(TypeError, match=message):
        Kit(stores, **arguments)


def test_a_kit_shows_its_issuer_and_stores_and_no_key(clock: FrozenClock) -> None:
    kit = Kit(memory_bundle(), policy=kit_policy(), keys=kit_keys(), clock=clock)
    assert repr(kit) == "Kit(issuer='https://api.example.eu', stores=MemoryDirectoryStore)"


@pytest.mark.spec("ACC-3")
def test_an_event_of_an_error_keeps_only_a_plain_reason(clock: FrozenClock) -> None:
    events = EventCatcher()
    kit = Kit(memory_bundle(), policy=kit_policy(), keys=kit_keys(), clock=clock, events=events)
    plain = InvalidPasswordError(reason="unknown_user")
    secret = "af_" + "Zq3" * 12
    odd = [
        InvalidApiKeyError(f"the key {secret} is wrong", reason=f"bad key {secret}"),
        InvalidApiKeyError(reason="Bad_Reason"),
        ValueError(secret),  # not the library's: no reason at all
    ]
    assert kit.reason_of(plain) == "unknown_user"
    for error in odd:
        assert kit.reason_of(error) == "other"  # type: ignore[arg-type]
    with request_context(ip="192.0.2.1", request_id="req-1"):
        for error in [plain, *odd]:
            kit.emit(SecurityEventType.LOGIN_FAILED, details={"method": "api_key"}, error=error)
    reasons = [e.details["reason"] for e in events.of("login.failed")]
    assert reasons == ["unknown_user", "other", "other", "other"]
    for event in events.of("login.failed"):
        assert event.outcome is Outcome.FAILURE
        assert (event.ip, event.request_id) == ("192.0.2.1", "req-1")
        assert secret not in repr(event)
