"""One contract for every PasskeyChallengeStore and PasskeyCredentialStore implementation.

Hashes, ids and users are random per test, so the tests share each backend's schema (and Redis
prefix) without seeing each other's records.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storno_security.errors import CorruptRecordError, StoreError
from storno_security.passkeys.storage import (
    ChallengePurpose,
    PasskeyChallenge,
    PasskeyChallengeStore,
    PasskeyCredential,
    PasskeyCredentialStore,
    UseOutcome,
)
from storno_security.stores.memory import (
    MemoryPasskeyChallengeStore,
    MemoryPasskeyCredentialStore,
)
from storno_security.stores.redis import RedisPasskeyChallengeStore
from storno_security.stores.sql import SqlPasskeyChallengeStore, SqlPasskeyCredentialStore
from storno_security.stores.sql.passkeys import (
    _bytes_of,
    passkey_credentials,
    passkey_user_handles,
)
from tests._concurrency import at_once
from tests.conftest import get_sql_engine
from tests.contract.conftest import store_fixture

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


challenge_store = store_fixture(
    "challenge_store",
    {
        "memory": MemoryPasskeyChallengeStore,
        "sql": SqlPasskeyChallengeStore,
        "redis": RedisPasskeyChallengeStore,
    },
)
credential_store = store_fixture(
    "credential_store", {"memory": MemoryPasskeyCredentialStore, "sql": SqlPasskeyCredentialStore}
)


def new_challenge(
    *, user_id: str | None = "user", purpose: ChallengePurpose = ChallengePurpose.AUTHENTICATION
) -> PasskeyChallenge:
    return PasskeyChallenge(
        challenge_hash=hashlib.sha256(secrets.token_bytes(32)).hexdigest(),
        purpose=purpose,
        user_id=None if user_id is None else f"{user_id}-{secrets.token_hex(4)}",
        expires_at=NOW + timedelta(minutes=5),
    )


def new_credential(user_id: str | None = None, **changes: Any) -> PasskeyCredential:
    credential = PasskeyCredential(
        credential_id=secrets.token_bytes(32),
        user_id=user_id or f"user-{secrets.token_hex(6)}",
        user_handle=secrets.token_bytes(32),
        public_key=secrets.token_bytes(77),
        sign_count=0,
        transports=("hybrid", "internal"),
        aaguid="00112233-4455-6677-8899-aabbccddeeff",
        backup_eligible=True,
        backed_up=False,
        name="Laptop ✓",
        created_at=NOW,
    )
    return attrs.evolve(credential, **changes)


# --- challenges ------------------------------------------------------------------------------


def test_is_a_challenge_store(challenge_store: Any) -> None:
    assert isinstance(challenge_store, PasskeyChallengeStore)


@pytest.mark.spec("PK-2")
@pytest.mark.parametrize("user", ["user", None])
def test_challenge_round_trip_and_single_use(challenge_store: Any, user: str | None) -> None:
    for purpose in ChallengePurpose:
        challenge = new_challenge(user_id=user, purpose=purpose)
        challenge_store.put(challenge, now=NOW)
        assert challenge_store.consume(challenge.challenge_hash, now=NOW) == challenge
        assert challenge_store.consume(challenge.challenge_hash, now=NOW) is None


def test_unknown_challenge(challenge_store: Any) -> None:
    assert challenge_store.consume(hashlib.sha256(b"nope").hexdigest(), now=NOW) is None


def test_duplicate_challenge_is_refused(challenge_store: Any) -> None:
    challenge = new_challenge()
    challenge_store.put(challenge, now=NOW)
    with pytest.raises(StoreError) as excinfo:
        challenge_store.put(challenge, now=NOW)
    assert excinfo.value.reason == "duplicate"


def test_challenge_times_are_aware_utc(challenge_store: Any) -> None:
    challenge = new_challenge()
    challenge_store.put(challenge, now=NOW)
    record = challenge_store.consume(challenge.challenge_hash, now=NOW)
    assert record is not None
    assert record.expires_at == challenge.expires_at
    assert record.expires_at.utcoffset() == timedelta(0)


def test_purge_expired_challenges(challenge_store: Any) -> None:
    challenge = new_challenge()
    challenge_store.put(challenge, now=NOW)
    later = NOW + timedelta(minutes=6)
    challenge_store.purge_expired(now=later)
    record = challenge_store.consume(challenge.challenge_hash, now=later)
    # Redis forgets it on its own clock; the others delete it in purge_expired
    if type(challenge_store).__name__.startswith("Redis"):
        assert record in (None, challenge)
    else:
        assert record is None


@pytest.mark.spec("PK-2")
def test_one_consumer_wins_among_threads(challenge_store: Any) -> None:
    challenge = new_challenge()
    challenge_store.put(challenge, now=NOW)

    def consume() -> object:
        return challenge_store.consume(challenge.challenge_hash, now=NOW)

    results = at_once([consume] * 8)
    assert sorted(r is not None for r in results) == [False] * 7 + [True]


# --- credentials -----------------------------------------------------------------------------


def test_is_a_credential_store(credential_store: Any) -> None:
    assert isinstance(credential_store, PasskeyCredentialStore)


@pytest.mark.spec("PK-3")
def test_credential_round_trip(credential_store: Any) -> None:
    credential = new_credential()
    credential_store.add(credential)
    assert credential_store.get(credential.credential_id) == credential
    assert credential_store.get(secrets.token_bytes(32)) is None
    assert credential_store.list_for_user(credential.user_id) == [credential]


def test_duplicate_credential_is_refused(credential_store: Any) -> None:
    credential = new_credential()
    credential_store.add(credential)
    with pytest.raises(StoreError) as excinfo:
        credential_store.add(new_credential(credential_id=credential.credential_id))
    assert excinfo.value.reason == "duplicate"


def test_user_handle_is_stable(credential_store: Any) -> None:
    user = f"user-{secrets.token_hex(6)}"
    first = secrets.token_bytes(32)
    assert credential_store.user_handle(user, candidate=first) == first
    assert credential_store.user_handle(user, candidate=secrets.token_bytes(32)) == first
    other = secrets.token_bytes(32)
    assert credential_store.user_handle(user + "x", candidate=other) == other


def test_list_rename_delete(credential_store: Any) -> None:
    user = f"user-{secrets.token_hex(6)}"
    first = new_credential(user)
    second = new_credential(user, created_at=NOW + timedelta(seconds=1))
    stranger = new_credential()
    for credential in (second, stranger, first):
        credential_store.add(credential)
    assert credential_store.list_for_user(user) == [first, second]
    assert credential_store.rename(first.credential_id, user_id=user, name="Work") is True
    assert credential_store.rename(stranger.credential_id, user_id=user, name="Mine") is False
    assert credential_store.get(first.credential_id).name == "Work"
    assert credential_store.get(stranger.credential_id).name == stranger.name
    assert credential_store.delete(stranger.credential_id, user_id=user) is False
    assert credential_store.delete(first.credential_id, user_id=user) is True
    assert credential_store.delete(first.credential_id, user_id=user) is False
    assert credential_store.list_for_user(user) == [second]
    assert credential_store.delete_for_user(user) == 1
    assert credential_store.list_for_user(user) == []
    assert credential_store.get(stranger.credential_id) == stranger


@pytest.mark.spec("PK-3")
def test_record_use_only_raises_the_count(credential_store: Any) -> None:
    credential = new_credential(sign_count=5)
    credential_store.add(credential)
    later = NOW + timedelta(minutes=1)
    outcome = credential_store.record_use(
        credential.credential_id, sign_count=6, backed_up=True, now=later
    )
    assert outcome is UseOutcome.RECORDED
    stored = credential_store.get(credential.credential_id)
    assert (stored.sign_count, stored.backed_up, stored.last_used_at) == (6, True, later)
    # the same count again is a regression: flagged in the same step
    outcome = credential_store.record_use(
        credential.credential_id, sign_count=6, backed_up=True, now=later
    )
    assert outcome is UseOutcome.REGRESSED
    stored = credential_store.get(credential.credential_id)
    assert (stored.sign_count, stored.flagged_at) == (6, later)
    # a flagged credential records nothing, even a growing count
    outcome = credential_store.record_use(
        credential.credential_id, sign_count=100, backed_up=True, now=later
    )
    assert outcome is UseOutcome.FLAGGED
    assert credential_store.get(credential.credential_id).sign_count == 6
    unknown = credential_store.record_use(
        secrets.token_bytes(16), sign_count=1, backed_up=False, now=later
    )
    assert unknown is UseOutcome.UNKNOWN


@pytest.mark.spec("PK-3")
def test_record_use_without_a_counter(credential_store: Any) -> None:
    credential = new_credential(sign_count=0)
    credential_store.add(credential)
    for _ in range(2):
        outcome = credential_store.record_use(
            credential.credential_id, sign_count=0, backed_up=False, now=NOW
        )
        assert outcome is UseOutcome.RECORDED
    # once the authenticator counted, 0 is a regression
    credential_store.record_use(credential.credential_id, sign_count=3, backed_up=False, now=NOW)
    outcome = credential_store.record_use(
        credential.credential_id, sign_count=0, backed_up=False, now=NOW
    )
    assert outcome is UseOutcome.REGRESSED


def test_flag(credential_store: Any) -> None:
    credential = new_credential()
    credential_store.add(credential)
    assert credential_store.flag(credential.credential_id, now=NOW) is True
    assert credential_store.flag(credential.credential_id, now=NOW) is False
    assert credential_store.get(credential.credential_id).flagged_at == NOW
    assert credential_store.flag(secrets.token_bytes(8), now=NOW) is False


@pytest.mark.spec("PK-3")
def test_one_use_per_count_among_threads(credential_store: Any) -> None:
    credential = new_credential(sign_count=1)
    credential_store.add(credential)

    def use() -> UseOutcome:
        return credential_store.record_use(
            credential.credential_id, sign_count=2, backed_up=False, now=NOW
        )

    outcomes = at_once([use] * 6)
    assert outcomes.count(UseOutcome.RECORDED) == 1
    assert outcomes.count(UseOutcome.REGRESSED) == 1
    assert outcomes.count(UseOutcome.FLAGGED) == 4


def test_redis_challenge_corrupt_value(redis_client: Any, redis_prefix: str) -> None:
    from storno_security.errors import CorruptRecordError
    from storno_security.stores.redis import RedisPasskeyChallengeStore

    store = RedisPasskeyChallengeStore(redis_client, prefix=redis_prefix)
    challenge_hash = hashlib.sha256(secrets.token_bytes(32)).hexdigest()
    redis_client.set(f"{redis_prefix}passkey-challenge:{challenge_hash}", b"{not json", px=60_000)
    with pytest.raises(CorruptRecordError):
        store.consume(challenge_hash, now=NOW)


def test_redis_challenge_already_expired_is_not_written(
    redis_client: Any, redis_prefix: str
) -> None:
    from storno_security.stores.redis import RedisPasskeyChallengeStore

    store = RedisPasskeyChallengeStore(redis_client, prefix=redis_prefix)
    challenge = new_challenge()
    store.put(challenge, now=challenge.expires_at)
    assert store.consume(challenge.challenge_hash, now=NOW) is None


def test_concurrent_first_user_handles_agree(credential_store: Any) -> None:
    user = f"user-{secrets.token_hex(6)}"

    def ask() -> bytes:
        return credential_store.user_handle(user, candidate=secrets.token_bytes(32))

    handles = at_once([ask] * 6)
    assert len(handles) == 6
    assert len(set(handles)) == 1


_names = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x00"),
    min_size=1,
    max_size=64,
).filter(lambda s: s.strip() == s and s)


@pytest.mark.spec("PK-3")
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=_names,
    user=st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=60),
    credential_id=st.binary(min_size=1, max_size=1023),
    sign_count=st.integers(min_value=0, max_value=2**32 - 1),
    transports=st.lists(
        st.sampled_from(["usb", "nfc", "ble", "internal", "hybrid", "smart-card"]),
        unique=True,
    ).map(tuple),
    flags=st.tuples(st.booleans(), st.booleans()),
)
def test_credential_round_trips(
    credential_store: Any,
    name: str,
    user: str,
    credential_id: bytes,
    sign_count: int,
    transports: tuple[str, ...],
    flags: tuple[bool, bool],
) -> None:
    credential = new_credential(
        f"{user}-{secrets.token_hex(4)}",
        credential_id=credential_id + secrets.token_bytes(0 if len(credential_id) > 1000 else 16),
        name=name,
        sign_count=sign_count,
        transports=transports,
        backup_eligible=flags[0],
        backed_up=flags[1],
    )
    credential_store.add(credential)
    assert credential_store.get(credential.credential_id) == credential
    assert credential_store.list_for_user(credential.user_id) == [credential]


# --- arguments refused before any write ------------------------------------------------------


@pytest.mark.parametrize("candidate", [b"", b"h" * 65, "handle", bytearray(b"handle")])
def test_a_candidate_user_handle_is_1_to_64_bytes(credential_store: Any, candidate: Any) -> None:
    user = f"user-{secrets.token_hex(6)}"
    with pytest.raises(ValueError, match="candidate"):
        credential_store.user_handle(user, candidate=candidate)
    assert credential_store.user_handle(user, candidate=b"h" * 64) == b"h" * 64


def test_only_a_passkey_credential_is_added(credential_store: Any) -> None:
    with pytest.raises(TypeError, match="PasskeyCredential"):
        credential_store.add(attrs.asdict(new_credential()))


@pytest.mark.parametrize(
    ("sign_count", "backed_up", "error"),
    [
        (True, False, TypeError),
        (1.0, False, TypeError),
        (-1, False, ValueError),
        (2**32, False, ValueError),
        (1, "yes", TypeError),
    ],
)
def test_a_use_is_recorded_with_a_32_bit_count_and_a_bool(
    credential_store: Any, sign_count: Any, backed_up: Any, error: type[Exception]
) -> None:
    credential = new_credential(sign_count=1)
    credential_store.add(credential)
    with pytest.raises(error):
        credential_store.record_use(
            credential.credential_id, sign_count=sign_count, backed_up=backed_up, now=NOW
        )
    assert credential_store.get(credential.credential_id) == credential  # unchanged


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"user_handle": "handle"}, TypeError),
        ({"public_key": b""}, ValueError),
        ({"credential_id": b"c" * 1024}, ValueError),
        ({"transports": ("usb", "hybrid internal")}, ValueError),
        ({"transports": ("usb", "")}, ValueError),
        ({"transports": ("t" * 128, "u" * 128)}, ValueError),
        ({"aaguid": "0" * 37}, ValueError),
        ({"aaguid": None}, ValueError),
        ({"sign_count": -1}, ValueError),
    ],
)
def test_a_credential_no_column_can_hold_is_refused(
    sql_engine: Any, changes: dict[str, Any], error: type[Exception]
) -> None:
    store = SqlPasskeyCredentialStore(sql_engine)
    credential = new_credential(**changes)
    with pytest.raises(error):
        store.add(credential)
    assert store.list_for_user(credential.user_id) == []


def test_the_memory_store_names_itself() -> None:
    assert repr(MemoryPasskeyCredentialStore()) == "MemoryPasskeyCredentialStore()"


# --- SQL rows the store never writes ---------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"credential_id": b""}, "bad_credential_id"),
        ({"credential_id": b"another id"}, "bad_credential_key"),
        ({"user_id": ""}, "bad_user_id"),
        ({"sign_count": -1}, "bad_sign_count"),
        ({"sign_count": 2**32}, "bad_sign_count"),
        ({"name": ""}, "bad_name"),
        ({"user_handle": b""}, "bad_user_handle"),
        ({"public_key": b""}, "bad_public_key"),
    ],
)
def test_a_credential_row_the_store_never_writes_is_corrupt(
    sql_engine: Any, values: dict[str, Any], reason: str
) -> None:
    store = SqlPasskeyCredentialStore(sql_engine)
    credential = new_credential()
    store.add(credential)
    with sql_engine.begin() as conn:
        conn.execute(
            sa.update(passkey_credentials)
            .where(passkey_credentials.c.credential_key == credential.key)
            .values(**values)
        )
    with pytest.raises(CorruptRecordError) as caught:
        store.get(credential.credential_id)
    assert caught.value.reason == reason
    if "user_id" not in values:  # still listed for its user: the list refuses it too
        with pytest.raises(CorruptRecordError):
            store.list_for_user(credential.user_id)


@pytest.mark.parametrize("column", ["transports", "aaguid"])
def test_a_text_column_holding_bytes_is_corrupt(
    column: str, sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    engine = get_sql_engine("sqlite", sql_urls, sql_engines)  # a SQLite column holds any type
    store = SqlPasskeyCredentialStore(engine)
    credential = new_credential()
    store.add(credential)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE storno_passkey_credentials SET {column} = X'00' WHERE credential_key = :k"
            ),
            {"k": credential.key},
        )
    with pytest.raises(CorruptRecordError) as caught:
        store.get(credential.credential_id)
    assert caught.value.reason == "bad_text"


def test_a_user_handle_row_the_store_never_writes_is_corrupt(sql_engine: Any) -> None:
    store = SqlPasskeyCredentialStore(sql_engine)
    user = f"user-{secrets.token_hex(6)}"
    store.user_handle(user, candidate=b"handle")
    with sql_engine.begin() as conn:
        conn.execute(
            sa.update(passkey_user_handles)
            .where(passkey_user_handles.c.user_id == user)
            .values(user_handle=b"")
        )
    with pytest.raises(CorruptRecordError) as caught:
        store.user_handle(user, candidate=b"other")
    assert caught.value.reason == "bad_user_handle"


@pytest.mark.parametrize("value", [bytearray(b"handle"), memoryview(b"handle")])
def test_binary_values_of_any_buffer_type_are_read_as_bytes(value: Any) -> None:
    assert _bytes_of(value, 64, "bad_user_handle") == b"handle"
    with pytest.raises(CorruptRecordError) as caught:
        _bytes_of(value, 3, "bad_user_handle")
    assert caught.value.reason == "bad_user_handle"
