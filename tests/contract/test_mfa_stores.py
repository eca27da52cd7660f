"""One contract for every TotpReplayStore, BackupCodeStore, MfaChallengeStore and StepUpStore.

Users, ids and hashes are random per test, so the tests share each backend's schema (and the
run's Redis prefix) without seeing each other's records.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from storno_security.errors import StoreError
from storno_security.mfa.storage import (
    BackupCodeStore,
    MfaChallengeStore,
    StepUpStore,
    StoredBackupCode,
    StoredChallenge,
    StoredStepUp,
    TotpReplayStore,
)
from tests.contract._mfa_fixtures import CONSTRUCTORS
from tests.contract.conftest import store_fixture

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
STEP = int(NOW.timestamp()) // 30


def user() -> str:
    return f"user-{secrets.token_hex(6)}"


def new_hash() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


replay_store = store_fixture("replay_store", CONSTRUCTORS["replay"])
backup_store = store_fixture("backup_store", CONSTRUCTORS["backup"])
challenge_store = store_fixture("challenge_store", CONSTRUCTORS["challenge"])
step_up_store = store_fixture("step_up_store", CONSTRUCTORS["step_up"])


# --- TOTP replay -----------------------------------------------------------------------------


def _until(step: int) -> datetime:
    return datetime.fromtimestamp((step + 2) * 30, tz=UTC)


def test_is_a_replay_store(replay_store: Any) -> None:
    assert isinstance(replay_store, TotpReplayStore)


@pytest.mark.spec("MFA-2")
def test_a_step_is_recorded_once(replay_store: Any) -> None:
    u = user()
    assert replay_store.record_step(u, STEP, now=NOW, until=_until(STEP)) is True
    assert replay_store.record_step(u, STEP, now=NOW, until=_until(STEP)) is False
    assert replay_store.record_step(u, STEP, now=NOW, until=_until(STEP)) is False


@pytest.mark.spec("MFA-2")
def test_only_later_steps_are_recorded(replay_store: Any) -> None:
    u = user()
    assert replay_store.record_step(u, STEP + 1, now=NOW, until=_until(STEP + 1)) is True
    assert replay_store.record_step(u, STEP - 1, now=NOW, until=_until(STEP - 1)) is False
    assert replay_store.record_step(u, STEP, now=NOW, until=_until(STEP)) is False
    assert replay_store.record_step(u, STEP + 2, now=NOW, until=_until(STEP + 2)) is True


def test_steps_are_per_user(replay_store: Any) -> None:
    a, b = user(), user()
    assert replay_store.record_step(a, STEP, now=NOW, until=_until(STEP)) is True
    assert replay_store.record_step(b, STEP, now=NOW, until=_until(STEP)) is True


def test_purge_forgets_only_ended_records(replay_store: Any) -> None:
    old, fresh = user(), user()
    replay_store.record_step(old, STEP - 100, now=NOW, until=_until(STEP - 100))
    replay_store.record_step(fresh, STEP, now=NOW, until=_until(STEP))
    assert replay_store.purge_expired(now=NOW) >= 0
    # a record still inside its window survives any purge
    assert replay_store.record_step(fresh, STEP, now=NOW, until=_until(STEP)) is False
    # a forgotten record cannot let an old step back in: steps only grow with time
    assert replay_store.record_step(old, STEP, now=NOW, until=_until(STEP)) is True


# --- backup codes ----------------------------------------------------------------------------


def _codes(n: int = 3) -> list[StoredBackupCode]:
    hints = "ABCDEFGHJK"
    return [
        StoredBackupCode(code_id=secrets.token_hex(16), hint=hints[i], code_hash=f"$hash{i}")
        for i in range(n)
    ]


def test_is_a_backup_code_store(backup_store: Any) -> None:
    assert isinstance(backup_store, BackupCodeStore)


@pytest.mark.spec("MFA-3")
def test_find_and_use_a_code_once(backup_store: Any) -> None:
    u = user()
    codes = _codes()
    backup_store.replace_codes(u, codes, now=NOW)
    assert backup_store.count_unused(u) == 3
    found = backup_store.find_code(u, "B")
    assert found == codes[1]
    assert backup_store.use_code(u, found.code_id, now=NOW) is True
    assert backup_store.use_code(u, found.code_id, now=NOW) is False
    assert backup_store.find_code(u, "B") is None
    assert backup_store.count_unused(u) == 2


def test_codes_belong_to_their_user(backup_store: Any) -> None:
    a, b = user(), user()
    codes = _codes()
    backup_store.replace_codes(a, codes, now=NOW)
    assert backup_store.find_code(b, "A") is None
    assert backup_store.use_code(b, codes[0].code_id, now=NOW) is False
    assert backup_store.count_unused(b) == 0
    assert backup_store.use_code(a, codes[0].code_id, now=NOW) is True


@pytest.mark.spec("MFA-3")
def test_replacing_drops_the_whole_old_set(backup_store: Any) -> None:
    u = user()
    old, new = _codes(), _codes(2)
    backup_store.replace_codes(u, old, now=NOW)
    backup_store.use_code(u, old[0].code_id, now=NOW)
    backup_store.replace_codes(u, new, now=NOW)
    assert backup_store.count_unused(u) == 2
    assert backup_store.use_code(u, old[1].code_id, now=NOW) is False
    assert backup_store.find_code(u, "C") is None
    assert backup_store.find_code(u, "A") == new[0]
    backup_store.replace_codes(u, [], now=NOW)
    assert backup_store.count_unused(u) == 0
    assert backup_store.find_code(u, "A") is None


def test_duplicate_code_id_is_refused(backup_store: Any) -> None:
    a, b = user(), user()
    codes = _codes()
    backup_store.replace_codes(a, codes, now=NOW)
    with pytest.raises(StoreError):
        backup_store.replace_codes(b, [codes[0]], now=NOW)
    assert backup_store.count_unused(a) == 3
    assert backup_store.count_unused(b) == 0


def test_unknown_user_has_nothing(backup_store: Any) -> None:
    u = user()
    assert backup_store.find_code(u, "A") is None
    assert backup_store.count_unused(u) == 0
    assert backup_store.use_code(u, secrets.token_hex(16), now=NOW) is False


def test_hints_and_hashes_compare_exactly(backup_store: Any) -> None:
    u = user()
    backup_store.replace_codes(
        u, [StoredBackupCode(code_id=secrets.token_hex(16), hint="A", code_hash="$x")], now=NOW
    )
    assert backup_store.find_code(u, "a") is None
    assert backup_store.find_code(u, "A ") is None


# --- challenges ------------------------------------------------------------------------------


def _challenge(**overrides: Any) -> StoredChallenge:
    values: dict[str, Any] = {
        "token_hash": new_hash(),
        "user_id": user(),
        "methods": ("totp", "backup_code"),
        "created_at": NOW,
        "expires_at": NOW + timedelta(minutes=5),
        "max_failures": 5,
    }
    values.update(overrides)
    return StoredChallenge(**values)


def test_is_a_challenge_store(challenge_store: Any) -> None:
    assert isinstance(challenge_store, MfaChallengeStore)


@pytest.mark.spec("MFA-4")
def test_challenge_round_trip_and_consume_once(challenge_store: Any) -> None:
    challenge = _challenge(methods=("totp", "backup_code", "passkey"))
    challenge_store.create_challenge(challenge)
    assert challenge_store.get_challenge(challenge.token_hash, now=NOW) == challenge
    consumed = challenge_store.consume_challenge(challenge.token_hash, now=NOW)
    assert consumed == challenge
    assert consumed.expires_at.utcoffset() == timedelta(0)
    assert challenge_store.consume_challenge(challenge.token_hash, now=NOW) is None
    assert challenge_store.get_challenge(challenge.token_hash, now=NOW) is None
    assert challenge_store.record_failure(challenge.token_hash, now=NOW) is None


@pytest.mark.spec("MFA-4")
def test_failures_are_counted_up_to_the_limit(challenge_store: Any) -> None:
    challenge = _challenge(max_failures=3)
    challenge_store.create_challenge(challenge)
    assert challenge_store.record_failure(challenge.token_hash, now=NOW) == 1
    stored = challenge_store.get_challenge(challenge.token_hash, now=NOW)
    assert stored is not None
    assert stored.failures == 1
    assert challenge_store.record_failure(challenge.token_hash, now=NOW) == 2
    assert challenge_store.record_failure(challenge.token_hash, now=NOW) == 3
    assert challenge_store.record_failure(challenge.token_hash, now=NOW) is None
    assert challenge_store.get_challenge(challenge.token_hash, now=NOW) is None
    assert challenge_store.consume_challenge(challenge.token_hash, now=NOW) is None


@pytest.mark.spec("MFA-4")
def test_expired_challenge_is_dead(challenge_store: Any) -> None:
    challenge = _challenge()
    challenge_store.create_challenge(challenge)
    end = challenge.expires_at
    assert challenge_store.get_challenge(challenge.token_hash, now=end - timedelta(microseconds=1))
    assert challenge_store.get_challenge(challenge.token_hash, now=end) is None
    assert challenge_store.record_failure(challenge.token_hash, now=end) is None
    assert challenge_store.consume_challenge(challenge.token_hash, now=end) is None


def test_unknown_challenge(challenge_store: Any) -> None:
    token_hash = new_hash()
    assert challenge_store.get_challenge(token_hash, now=NOW) is None
    assert challenge_store.record_failure(token_hash, now=NOW) is None
    assert challenge_store.consume_challenge(token_hash, now=NOW) is None


def test_duplicate_challenge_is_refused(challenge_store: Any) -> None:
    challenge = _challenge()
    challenge_store.create_challenge(challenge)
    with pytest.raises(StoreError):
        challenge_store.create_challenge(_challenge(token_hash=challenge.token_hash))
    assert challenge_store.get_challenge(challenge.token_hash, now=NOW) == challenge


def test_purge_deletes_expired_challenges(challenge_store: Any) -> None:
    old = _challenge(expires_at=NOW - timedelta(minutes=1))
    live = _challenge()
    challenge_store.create_challenge(old)
    challenge_store.create_challenge(live)
    challenge_store.purge_expired(now=NOW)
    assert challenge_store.get_challenge(live.token_hash, now=NOW) == live
    assert challenge_store.consume_challenge(old.token_hash, now=NOW - timedelta(minutes=2)) is None


# --- step-up tokens --------------------------------------------------------------------------


def _grant(**overrides: Any) -> StoredStepUp:
    values: dict[str, Any] = {
        "token_hash": new_hash(),
        "user_id": user(),
        "action": "vault.read",
        "method": "totp",
        "created_at": NOW,
        "expires_at": NOW + timedelta(seconds=120),
    }
    values.update(overrides)
    return StoredStepUp(**values)


def test_is_a_step_up_store(step_up_store: Any) -> None:
    assert isinstance(step_up_store, StepUpStore)


@pytest.mark.spec("MFA-6")
def test_grant_is_consumed_once(step_up_store: Any) -> None:
    grant = _grant()
    step_up_store.create_grant(grant)
    kwargs = {"user_id": grant.user_id, "action": grant.action, "now": NOW}
    assert step_up_store.consume_grant(grant.token_hash, **kwargs) == grant
    assert step_up_store.consume_grant(grant.token_hash, **kwargs) is None


@pytest.mark.spec("MFA-6")
def test_grant_is_bound_to_user_action_and_time(step_up_store: Any) -> None:
    grant = _grant()
    step_up_store.create_grant(grant)
    h = grant.token_hash
    assert step_up_store.consume_grant(h, user_id=user(), action=grant.action, now=NOW) is None
    assert (
        step_up_store.consume_grant(h, user_id=grant.user_id, action="apikey.create", now=NOW)
        is None
    )
    end = grant.expires_at
    assert (
        step_up_store.consume_grant(h, user_id=grant.user_id, action=grant.action, now=end) is None
    )
    just_before = end - timedelta(microseconds=1)
    assert (
        step_up_store.consume_grant(h, user_id=grant.user_id, action=grant.action, now=just_before)
        == grant
    )


def test_duplicate_grant_is_refused(step_up_store: Any) -> None:
    grant = _grant()
    step_up_store.create_grant(grant)
    with pytest.raises(StoreError):
        step_up_store.create_grant(_grant(token_hash=grant.token_hash))


def test_purge_deletes_expired_grants(step_up_store: Any) -> None:
    old = _grant(expires_at=NOW - timedelta(seconds=1))
    live = _grant()
    step_up_store.create_grant(old)
    step_up_store.create_grant(live)
    step_up_store.purge_expired(now=NOW)
    before = NOW - timedelta(seconds=2)  # when the old one was still live: gone all the same
    assert (
        step_up_store.consume_grant(
            old.token_hash, user_id=old.user_id, action=old.action, now=before
        )
        is None
    )
    assert (
        step_up_store.consume_grant(
            live.token_hash, user_id=live.user_id, action=live.action, now=NOW
        )
        == live
    )


# --- exactness and failures ------------------------------------------------------------------


def test_user_ids_compare_exactly(replay_store: Any) -> None:
    u = user()
    assert replay_store.record_step(u, STEP, now=NOW, until=_until(STEP)) is True
    for twin in (u.upper(), u + " ", u + "\u00a0"):
        assert replay_store.record_step(twin, STEP, now=NOW, until=_until(STEP)) is True


def test_token_hashes_compare_exactly(challenge_store: Any, step_up_store: Any) -> None:
    challenge = _challenge()
    challenge_store.create_challenge(challenge)
    assert challenge_store.get_challenge(challenge.token_hash.upper(), now=NOW) is None
    assert challenge_store.record_failure(challenge.token_hash + " ", now=NOW) is None
    grant = _grant()
    step_up_store.create_grant(grant)
    assert (
        step_up_store.consume_grant(
            grant.token_hash.upper(), user_id=grant.user_id, action=grant.action, now=NOW
        )
        is None
    )
    assert (
        step_up_store.consume_grant(
            grant.token_hash, user_id=grant.user_id.upper(), action=grant.action, now=NOW
        )
        is None
    )


def test_redis_refuses_a_key_it_did_not_write(redis_client: Any, redis_prefix: str) -> None:
    from storno_security.errors import CorruptRecordError
    from storno_security.stores.redis import RedisMfaChallengeStore, RedisTotpReplayStore

    u = user()
    redis_client.set(f"{redis_prefix}mfa:totp:{u}", "not a step")
    with pytest.raises(CorruptRecordError):
        RedisTotpReplayStore(redis_client, prefix=redis_prefix).record_step(
            u, STEP, now=NOW, until=_until(STEP)
        )
    token_hash = new_hash()
    redis_client.hset(f"{redis_prefix}mfa:challenge:{token_hash}", mapping={"expires_at": "x"})
    store = RedisMfaChallengeStore(redis_client, prefix=redis_prefix)
    with pytest.raises(CorruptRecordError):
        store.record_failure(token_hash, now=NOW)
    with pytest.raises(CorruptRecordError):
        store.get_challenge(token_hash, now=NOW)


def test_redis_down_is_store_unavailable() -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from storno_security.errors import StoreUnavailableError
    from storno_security.stores.redis import (
        RedisMfaChallengeStore,
        RedisStepUpStore,
        RedisTotpReplayStore,
    )

    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(StoreUnavailableError):
        RedisTotpReplayStore(client).record_step(user(), STEP, now=NOW, until=_until(STEP))
    with pytest.raises(StoreUnavailableError):
        RedisMfaChallengeStore(client).create_challenge(_challenge())
    with pytest.raises(StoreUnavailableError):
        RedisStepUpStore(client).consume_grant(new_hash(), user_id="u", action="a", now=NOW)


def test_sql_down_is_store_unavailable(tmp_path: Any) -> None:
    from storno_security.errors import StoreUnavailableError
    from storno_security.stores.sql import SqlBackupCodeStore, SqlMfaChallengeStore, create_engine

    engine = create_engine(
        "postgresql+psycopg://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    try:
        with pytest.raises(StoreUnavailableError):
            SqlMfaChallengeStore(engine).get_challenge(new_hash(), now=NOW)
        with pytest.raises(StoreUnavailableError):
            SqlBackupCodeStore(engine).replace_codes(user(), _codes(), now=NOW)
    finally:
        engine.dispose()


def test_only_stored_backup_codes_replace_a_set(backup_store: Any) -> None:
    u = user()
    backup_store.replace_codes(u, _codes(), now=NOW)
    bad = [*_codes(2), {"code_id": "c", "hint": "A", "code_hash": "$h"}]
    with pytest.raises(TypeError, match="StoredBackupCode"):
        backup_store.replace_codes(u, bad, now=NOW)
    assert backup_store.count_unused(u) == 3  # the old set stands
