"""ACC-7: ``forget_user`` on every store that keys data by user, in every backend.

Each test writes data for two users A and B into one store, forgets A, then scans what the
backend holds (every row of every ``storno_`` table but the audit log, every Redis key and value
under the run's prefix, every value reachable from a memory store): A's id is nowhere, B's data
is intact. The scan is of the backend, not of a list of table or key names.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.kit.storage import ForgetsUsers
from storno_security.mfa.storage import StoredBackupCode, StoredChallenge, StoredStepUp
from storno_security.passkeys.storage import ChallengePurpose, PasskeyChallenge
from storno_security.stores import memory, sql
from storno_security.stores import redis as redis_stores
from storno_security.tokens.storage import RefreshFamily
from tests.contract._scan import stored_text
from tests.contract.conftest import Constructors, backends_of, make_store
from tests.contract.test_api_key_store import new_record
from tests.contract.test_passkey_stores import new_credential

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=10)


def _hash() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def _families(store: Any, user: str) -> None:
    family = RefreshFamily(secrets.token_hex(16), user, NOW, NOW + timedelta(days=30))
    first, second = _hash(), _hash()
    store.create_family(family, token_hash=first)
    store.rotate(presented_hash=first, new_hash=second, now=NOW)


def _session_state(store: Any, user: str) -> None:
    store.bump_epoch(user)
    store.revoke_session(secrets.token_hex(16), now=NOW, until=LATER)


def _backup_codes(store: Any, user: str) -> None:
    codes = [StoredBackupCode(secrets.token_hex(16), hint, f"$2b$hash-{hint}") for hint in "AB"]
    store.replace_codes(user, codes, now=NOW)


def _challenges(store: Any, user: str) -> None:
    store.create_challenge(StoredChallenge(_hash(), user, ("totp",), NOW, LATER, 5))


def _step_up(store: Any, user: str) -> None:
    store.create_grant(StoredStepUp(_hash(), user, "apikey.create", "totp", NOW, LATER))


def _passkey_challenges(store: Any, user: str) -> None:
    store.put(PasskeyChallenge(_hash(), ChallengePurpose.REGISTRATION, user, LATER), now=NOW)


def _passkey_credentials(store: Any, user: str) -> None:
    store.user_handle(user, candidate=secrets.token_bytes(32))
    store.add(new_credential(user))


def _confirmations(store: Any, user: str) -> None:
    for _ in range(2):
        store.add(
            _hash(),
            user_id=user,
            email=f"{user}@example.com",
            created_at=NOW,
            expires_at=LATER,
            max_active=3,
        )


def _resets(store: Any, user: str) -> None:
    for _ in range(2):
        store.add(_hash(), user_id=user, created_at=NOW, expires_at=LATER, max_active=3)


STORES: dict[str, tuple[Constructors, Callable[[Any, str], None]]] = {
    "refresh_families": (
        {"memory": memory.MemoryRefreshFamilyStore, "sql": sql.SqlRefreshFamilyStore},
        _families,
    ),
    "session_state": (
        {
            "memory": memory.MemorySessionStateStore,
            "sql": sql.SqlSessionStateStore,
            "redis": redis_stores.RedisSessionStateStore,
        },
        _session_state,
    ),
    "totp_replay": (
        {
            "memory": memory.MemoryTotpReplayStore,
            "sql": sql.SqlTotpReplayStore,
            "redis": redis_stores.RedisTotpReplayStore,
        },
        lambda store, user: store.record_step(user, 7, now=NOW, until=LATER),
    ),
    "backup_codes": (
        {"memory": memory.MemoryBackupCodeStore, "sql": sql.SqlBackupCodeStore},
        _backup_codes,
    ),
    "mfa_challenges": (
        {
            "memory": memory.MemoryMfaChallengeStore,
            "sql": sql.SqlMfaChallengeStore,
            "redis": redis_stores.RedisMfaChallengeStore,
        },
        _challenges,
    ),
    "step_up": (
        {
            "memory": memory.MemoryStepUpStore,
            "sql": sql.SqlStepUpStore,
            "redis": redis_stores.RedisStepUpStore,
        },
        _step_up,
    ),
    "mfa_failures": (
        {
            "memory": memory.MemoryMfaFailureStore,
            "sql": sql.SqlMfaFailureStore,
            "redis": redis_stores.RedisMfaFailureStore,
        },
        lambda store, user: store.record_attempt(user, now=NOW, window_ends_at=LATER),
    ),
    "api_keys": (
        {"memory": memory.MemoryApiKeyStore, "sql": sql.SqlApiKeyStore},
        lambda store, user: store.create(new_record(user_id=user)),
    ),
    "passkey_challenges": (
        {
            "memory": memory.MemoryPasskeyChallengeStore,
            "sql": sql.SqlPasskeyChallengeStore,
            "redis": redis_stores.RedisPasskeyChallengeStore,
        },
        _passkey_challenges,
    ),
    "passkey_credentials": (
        {"memory": memory.MemoryPasskeyCredentialStore, "sql": sql.SqlPasskeyCredentialStore},
        _passkey_credentials,
    ),
    "reset_tokens": (
        {
            "memory": memory.MemoryResetTokenStore,
            "sql": sql.SqlResetTokenStore,
            "redis": redis_stores.RedisResetTokenStore,
        },
        _resets,
    ),
    "email_confirmations": (
        {
            "memory": memory.MemoryEmailConfirmationStore,
            "sql": sql.SqlEmailConfirmationStore,
            "redis": redis_stores.RedisEmailConfirmationStore,
        },
        _confirmations,
    ),
}

CASES = [(kind, where) for kind, (built, _) in STORES.items() for where in backends_of(built)]


@pytest.mark.spec("ACC-7")
@pytest.mark.parametrize(("kind", "where"), CASES, ids=[f"{k}-{w}" for k, w in CASES])
def test_forget_user_leaves_no_trace_of_the_user_and_all_of_the_others(
    kind: str, where: str, request: pytest.FixtureRequest
) -> None:
    constructors, populate = STORES[kind]
    store = make_store(where, request, constructors)
    assert isinstance(store, ForgetsUsers)
    a, b = f"user-a-{secrets.token_hex(6)}", f"user-b-{secrets.token_hex(6)}"
    populate(store, a)
    populate(store, b)
    before = stored_text(store)
    assert a in before
    assert b in before
    assert store.forget_user(a) > 0
    after = stored_text(store)
    assert a not in after
    assert b in after
    assert store.forget_user(a) == 0
    assert store.forget_user("\x00") == 0
