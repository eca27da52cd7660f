"""Fixtures of the accounts tests: the reset-token store over every backend, a fresh user id."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from storno_security.accounts import PasswordResetTokens
from storno_security.clock import FrozenClock
from storno_security.stores.memory import MemoryResetTokenStore
from storno_security.stores.sql import SqlResetTokenStore
from tests.contract.conftest import store_fixture

#: The reset-token store over memory, SQLite, PostgreSQL and MariaDB, in turn.
reset_store = store_fixture(
    "reset_store", {"memory": MemoryResetTokenStore, "sql": SqlResetTokenStore}
)


@pytest.fixture
def user_id() -> str:
    """A user id of this test's own (the SQL databases live for the whole run)."""
    return f"user-{secrets.token_hex(6)}"


@pytest.fixture
def resets(reset_store: Any, clock: FrozenClock) -> PasswordResetTokens:
    """The reset-token service over each store, at the frozen clock."""
    return PasswordResetTokens(reset_store, clock=clock)
