"""The short-lived stores as adapters on records (``stores/_adapters.py``): the arguments they
refuse before any write, and the records they refuse to read back (records of their namespace
that none of them writes: a counter below zero, a challenge without its owner, a step-up grant
without its method...). The adapters are one code for every backend: they run here on in-memory
records, where a record of any shape can be planted; the LastSeen overflow is planted in SQL,
whose column holds numbers the records API refuses."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from storno_security.errors import CorruptRecordError
from storno_security.mfa.storage import StoredChallenge
from storno_security.passkeys.storage import ChallengePurpose
from storno_security.stores._records import Record
from storno_security.stores.memory import (
    MemoryEmailConfirmationStore,
    MemoryMfaChallengeStore,
    MemoryMfaFailureStore,
    MemoryPasskeyChallengeStore,
    MemoryResetTokenStore,
    MemorySessionStateStore,
    MemoryStepUpStore,
    MemoryTotpReplayStore,
)
from storno_security.stores.sql import SqlLastSeenStore, records
from tests.conftest import get_sql_engine

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def plant(store: Any, key: str, **fields: Any) -> None:
    """Write a record of any shape at ``key`` in the store's namespace, as no adapter would."""
    record = Record(
        **{
            "subject": None,
            "tag": None,
            "data": "",
            "number": 0,
            "limit": None,
            "created_at": NOW,
            "expires_at": LATER,
            **fields,
        }
    )
    memory = store._records
    with memory._lock:
        memory._put(store._namespace, key, record)


# --- session epochs --------------------------------------------------------------------------


def test_an_epoch_below_zero_is_corrupt_when_bumped() -> None:
    store = MemorySessionStateStore()
    plant(store, "alice", subject="alice", number=-5, expires_at=None)
    with pytest.raises(CorruptRecordError) as caught:
        store.bump_epoch("alice")
    assert caught.value.reason == "bad_epoch"


# --- TOTP replay -----------------------------------------------------------------------------


@pytest.mark.parametrize("step", [True, 1.0, "7"])
def test_a_totp_step_must_be_an_int(step: Any) -> None:
    with pytest.raises(TypeError, match="step"):
        MemoryTotpReplayStore().record_step("alice", step, now=NOW, until=LATER)


def test_a_totp_step_must_not_be_negative() -> None:
    store = MemoryTotpReplayStore()
    with pytest.raises(ValueError, match="negative"):
        store.record_step("alice", -1, now=NOW, until=LATER)
    assert store.record_step("alice", 0, now=NOW, until=LATER) is True


# --- MFA challenges --------------------------------------------------------------------------


def _challenge(**changes: Any) -> StoredChallenge:
    fields: dict[str, Any] = {
        "token_hash": secrets.token_hex(32),
        "user_id": "alice",
        "methods": ("totp",),
        "created_at": NOW,
        "expires_at": LATER,
        "max_failures": 5,
        "failures": 0,
        **changes,
    }
    return StoredChallenge(**fields)


def test_only_a_stored_challenge_is_created() -> None:
    with pytest.raises(TypeError, match="StoredChallenge"):
        MemoryMfaChallengeStore().create_challenge(object())  # type: ignore[arg-type]


@pytest.mark.parametrize("methods", [["totp"], ()])
def test_the_methods_of_a_challenge_are_a_non_empty_tuple(methods: Any) -> None:
    with pytest.raises(TypeError, match="methods"):
        MemoryMfaChallengeStore().create_challenge(_challenge(methods=methods))


@pytest.mark.parametrize("methods", [("",), ("totp,passkey",), (5,)])
def test_each_method_is_a_name_without_commas(methods: Any) -> None:
    store = MemoryMfaChallengeStore()
    challenge = _challenge(methods=methods)
    with pytest.raises(ValueError, match="method"):
        store.create_challenge(challenge)
    assert store.get_challenge(challenge.token_hash, now=NOW) is None


@pytest.mark.parametrize(
    "changes", [{"max_failures": -1}, {"failures": True}, {"failures": 1.5}, {"max_failures": "5"}]
)
def test_the_counts_of_a_challenge_are_non_negative_ints(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="non-negative int"):
        MemoryMfaChallengeStore().create_challenge(_challenge(**changes))


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": None, "limit": 5, "data": "totp"},  # no owner
        {"subject": "alice", "limit": None, "data": "totp"},  # no failure limit
        {"subject": "alice", "limit": 5, "data": "totp", "expires_at": None},  # no end
        {"subject": "alice", "limit": 5, "data": ""},  # no methods
        {"subject": "alice", "limit": 5, "data": "totp", "number": -1},  # failures below zero
    ],
)
def test_a_challenge_record_no_store_writes_is_corrupt(fields: dict[str, Any]) -> None:
    store = MemoryMfaChallengeStore()
    plant(store, "h", **fields)
    with pytest.raises(CorruptRecordError) as caught:
        store.get_challenge("h", now=NOW)
    assert caught.value.reason == "bad_challenge"


# --- step-up grants --------------------------------------------------------------------------


def test_only_a_stored_step_up_is_created() -> None:
    with pytest.raises(TypeError, match="StoredStepUp"):
        MemoryStepUpStore().create_grant(_challenge())  # type: ignore[arg-type]


@pytest.mark.parametrize(("user_id", "action"), [(None, "apikey.create"), ("alice", 5)])
def test_a_grant_is_used_for_a_user_and_action_given_as_strs(user_id: Any, action: Any) -> None:
    with pytest.raises(TypeError, match="strs"):
        MemoryStepUpStore().consume_grant("h", user_id=user_id, action=action, now=NOW)


def test_a_grant_record_without_its_method_is_corrupt() -> None:
    store = MemoryStepUpStore()
    plant(store, "h", subject="alice", tag="apikey.create", data="")
    with pytest.raises(CorruptRecordError) as caught:
        store.consume_grant("h", user_id="alice", action="apikey.create", now=NOW)
    assert caught.value.reason == "bad_step_up"


# --- MFA failure counts ----------------------------------------------------------------------


def test_a_failure_count_without_a_window_is_corrupt() -> None:
    store = MemoryMfaFailureStore()
    plant(store, "alice", subject="alice", number=2, expires_at=None)
    with pytest.raises(CorruptRecordError) as caught:
        store.record_attempt("alice", now=NOW, window_ends_at=LATER)
    assert caught.value.reason == "bad_count"


# --- passkey challenges ----------------------------------------------------------------------


def test_only_a_passkey_challenge_is_put() -> None:
    with pytest.raises(TypeError, match="PasskeyChallenge"):
        MemoryPasskeyChallengeStore().put(_challenge(), now=NOW)  # type: ignore[arg-type]


def test_a_passkey_challenge_of_no_known_purpose_is_corrupt() -> None:
    store = MemoryPasskeyChallengeStore()
    plant(store, "h", data="teleport")
    with pytest.raises(CorruptRecordError) as caught:
        store.consume("h", now=NOW)
    assert caught.value.reason == "bad_purpose"
    assert caught.value.__cause__ is None


def test_a_passkey_challenge_that_never_ends_is_corrupt() -> None:
    store = MemoryPasskeyChallengeStore()
    plant(store, "h", data=ChallengePurpose.AUTHENTICATION.value, expires_at=None)
    with pytest.raises(CorruptRecordError) as caught:
        store.consume("h", now=NOW)
    assert caught.value.reason == "bad_datetime"


# --- reset tokens and email confirmations ----------------------------------------------------


@pytest.mark.parametrize("store_type", [MemoryResetTokenStore, MemoryEmailConfirmationStore])
def test_a_token_hash_to_use_must_be_a_str(store_type: Any) -> None:
    with pytest.raises(TypeError, match="token_hash"):
        store_type().consume(b"h", now=NOW)


def test_a_confirmation_record_without_its_address_is_corrupt() -> None:
    store = MemoryEmailConfirmationStore()
    plant(store, "h", subject="alice", data="")
    with pytest.raises(CorruptRecordError) as caught:
        store.consume("h", now=NOW)
    assert caught.value.reason == "bad_email"


# --- license last seen -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_last_seen_time_beyond_any_date_is_corrupt(
    backend: str, sql_urls: dict[str, str | None], sql_engines: dict[str, Any]
) -> None:
    engine = get_sql_engine(backend, sql_urls, sql_engines)
    store = SqlLastSeenStore(engine)
    key = f"license-{secrets.token_hex(4)}"
    assert store.record(key, NOW) == NOW
    far = 10**18  # microseconds: some 31,700 years after 1970
    with engine.begin() as conn:
        conn.execute(
            sa.update(records)
            .where(records.c.namespace == "license", records.c.record_key == key)
            .values(number=far)
        )
    with pytest.raises(CorruptRecordError) as caught:
        store.record(key, NOW)
    assert caught.value.reason == "bad_datetime"
    assert caught.value.__cause__ is None
    assert store.forget_user("anyone") == 0
