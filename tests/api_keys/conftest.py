"""Fixtures for API-key tests: a memory store that counts its calls, and a manager over it."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest

from storno_security.api_keys import ApiKeyInfo, ApiKeyManager, ApiKeyRecord
from storno_security.clock import FrozenClock
from storno_security.stores.memory import MemoryApiKeyStore


class CountingStore(MemoryApiKeyStore):
    """A memory store that records how often each verb was called."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def create(self, record: ApiKeyRecord) -> None:
        self.calls["create"] += 1
        super().create(record)

    def get(self, key_id: str) -> ApiKeyRecord | None:
        self.calls["get"] += 1
        return super().get(key_id)

    def touch(self, key_id: str, *, now: datetime, stale_before: datetime) -> bool:
        self.calls["touch"] += 1
        return super().touch(key_id, now=now, stale_before=stale_before)

    def touched(self, key_id: str) -> ApiKeyInfo:
        record = super().get(key_id)
        assert record is not None
        return record.info


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def manager(store: CountingStore, clock: FrozenClock) -> ApiKeyManager:
    return ApiKeyManager(store, clock=clock)
