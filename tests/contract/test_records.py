"""One contract for the expiring-records primitive, over memory, SQLite, PostgreSQL, MariaDB and
Redis: every short-lived store is a thin adapter on it, so what is proven here holds for them all.

Keys and subjects are random per test, so the tests share each backend without seeing each
other's records.
"""

from __future__ import annotations

import functools
import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from storno_security.errors import CorruptRecordError, StoreError
from storno_security.stores._records import Record
from storno_security.stores.memory._records import MemoryRecords
from storno_security.stores.redis._records import RedisRecords
from storno_security.stores.sql._records import SqlRecords
from tests._concurrency import StoreSpec, at_once, hammer, per_round, store_spec
from tests.contract._scan import stored_text
from tests.contract.conftest import store_fixture

NOW = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
NS = "test"
US = timedelta(microseconds=1)

backend = store_fixture(
    "backend", {"memory": MemoryRecords, "sql": SqlRecords, "redis": RedisRecords}
)


def key() -> str:
    return secrets.token_hex(16)


def user() -> str:
    return f"user-{secrets.token_hex(6)}"


def is_redis(records: Any) -> bool:
    return isinstance(records, RedisRecords)


# --- insert, get ------------------------------------------------------------------------------


def test_insert_and_get_round_trip(backend: Any) -> None:
    k, u = key(), user()
    backend.insert(
        NS, k, now=NOW, expires_at=LATER, subject=u, tag="t", data='{"ü": 1}', number=3, limit=5
    )
    assert backend.get(NS, k, now=NOW) == Record(u, "t", '{"ü": 1}', 3, 5, NOW, LATER)
    got = backend.get(NS, k, now=NOW)
    assert got.created_at.tzinfo is UTC
    assert backend.get(NS, k, now=LATER - US) is not None
    assert backend.get(NS, k, now=LATER) is None  # dead at expires_at exactly
    assert backend.get(NS, key(), now=NOW) is None
    assert backend.get("other", k, now=NOW) is None  # namespaces are apart


def test_a_live_key_cannot_be_inserted_twice(backend: Any) -> None:
    k = key()
    backend.insert(NS, k, now=NOW, expires_at=LATER)
    with pytest.raises(StoreError) as caught:
        backend.insert(NS, k, now=NOW, expires_at=LATER, data="second")
    assert caught.value.reason == "duplicate"
    assert backend.get(NS, k, now=NOW).data == ""
    # once it has expired (caller's clock), the key is free again
    backend.insert(NS, k, now=LATER, expires_at=LATER + timedelta(minutes=1), data="third")
    assert backend.get(NS, k, now=LATER).data == "third"


def test_a_record_dead_at_birth_is_not_written(backend: Any) -> None:
    k = key()
    backend.insert(NS, k, now=NOW, expires_at=NOW)
    backend.insert(NS, k, now=NOW, expires_at=NOW - US)
    assert backend.take(NS, k, now=NOW - timedelta(hours=1), expired=True) is None


def test_a_record_at_its_limit_is_dead(backend: Any) -> None:
    k = key()
    backend.insert(NS, k, now=NOW, expires_at=LATER, number=2, limit=2)
    assert backend.get(NS, k, now=NOW) is None
    assert backend.take(NS, k, now=NOW) == Record(None, None, "", 2, 2, NOW, LATER)
    assert backend.count(NS, k, now=NOW, create=False) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"key": ""},
        {"key": "k" * 256},
        {"key": "a\x00b"},
        {"key": "\ud800"},
        {"subject": ""},
        {"tag": "t" * 65},
        {"number": 2**53 + 1},
        {"now": NOW.replace(tzinfo=None)},
        {"keep": 0, "subject": "u"},
        {"keep": 2},  # keep needs a subject
        {"namespace": "Bad Name"},
    ],
)
def test_what_no_backend_can_store_is_refused_before_any_round_trip(
    backend: Any, bad: dict[str, Any]
) -> None:
    args: dict[str, Any] = {"namespace": NS, "key": key(), "now": NOW, "expires_at": LATER}
    args.update(bad)
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        backend.insert(args.pop("namespace"), args.pop("key"), **args)


@pytest.mark.parametrize(
    "bad", [{"number": True}, {"number": 1.0}, {"limit": "5"}, {"data": b"{}"}, {"data": None}]
)
def test_values_of_another_type_are_refused_before_any_round_trip(
    bad: dict[str, Any],
) -> None:
    records = MemoryRecords()  # the checks are the base class's, the same for every backend
    k = key()
    with pytest.raises(TypeError):
        records.insert(NS, k, now=NOW, expires_at=LATER, **bad)
    assert records.get(NS, k, now=NOW) is None


def test_a_count_that_creates_needs_an_end_after_now() -> None:
    records = MemoryRecords()
    k = key()
    for end in (NOW, NOW - US):
        with pytest.raises(ValueError, match="after now"):
            records.count(NS, k, now=NOW, expires_at=end)
    assert records.get(NS, k, now=NOW) is None
    # without create, an end is not asked for: nothing is counted
    assert records.count(NS, k, now=NOW, expires_at=NOW, create=False) is None


@pytest.mark.parametrize("unstorable", ["a\x00b", "\ud800", "", "k" * 256])
def test_a_lookup_that_cannot_have_been_stored_matches_nothing(
    backend: Any, unstorable: str
) -> None:
    assert backend.get(NS, unstorable, now=NOW) is None
    assert backend.take(NS, unstorable, now=NOW, expired=True) is None
    assert backend.take(NS, key(), now=NOW, subject=unstorable) is None
    assert backend.count(NS, unstorable, now=NOW, create=False) is None
    assert backend.forget(NS, unstorable) == 0


# --- take -------------------------------------------------------------------------------------


def test_take_is_once(backend: Any) -> None:
    k = key()
    backend.insert(NS, k, now=NOW, expires_at=LATER, data="x")
    assert backend.take(NS, k, now=NOW).data == "x"
    assert backend.take(NS, k, now=NOW) is None
    assert backend.get(NS, k, now=NOW) is None


def test_take_leaves_an_expired_record_unless_told(backend: Any) -> None:
    k = key()
    backend.insert(NS, k, now=NOW, expires_at=LATER)
    found = backend.take(NS, k, now=LATER)
    if found is not None:  # Redis may have forgotten it on its own clock; never here
        assert not found.live(LATER)
    assert backend.take(NS, k, now=NOW) is not None  # it was left as it was


def test_take_expired_deletes_whatever_its_state(backend: Any) -> None:
    k = key()
    backend.insert(NS, k, now=NOW, expires_at=LATER, number=1, limit=1)
    assert backend.take(NS, k, now=NOW, expired=True) is not None
    assert backend.take(NS, k, now=NOW, expired=True) is None


def test_take_checks_subject_and_tag_and_leaves_a_mismatch(backend: Any) -> None:
    k, u = key(), user()
    backend.insert(NS, k, now=NOW, expires_at=LATER, subject=u, tag="delete")
    assert backend.take(NS, k, now=NOW, subject=u + "x") is None
    assert backend.take(NS, k, now=NOW, subject=u.upper()) is None
    assert backend.take(NS, k, now=NOW, subject=u, tag="read") is None
    assert backend.take(NS, k, now=NOW, subject=u, tag="delete") is not None


def test_take_with_siblings_ends_the_subjects_other_records(backend: Any) -> None:
    u, other = user(), user()
    mine = [key() for _ in range(3)]
    theirs = key()
    for k in mine:
        backend.insert(NS, k, now=NOW, expires_at=LATER, subject=u)
    backend.insert(NS, theirs, now=NOW, expires_at=LATER, subject=other)
    assert backend.take(NS, mine[1], now=NOW, siblings=True) is not None
    assert [backend.get(NS, k, now=NOW) for k in mine] == [None] * 3
    assert backend.get(NS, theirs, now=NOW) is not None
    assert backend.forget(NS, u) == 0  # nothing left but what forget clears (a SQL lock row)
    assert u not in stored_text(backend)


# --- insert with keep ---------------------------------------------------------------------------


def test_keep_drops_the_oldest_and_the_dead(backend: Any) -> None:
    u = user()
    dead, a, b, c = key(), key(), key(), key()
    backend.insert(NS, dead, now=NOW - timedelta(hours=1), expires_at=NOW, subject=u)
    backend.insert(NS, a, now=NOW, expires_at=LATER, subject=u, keep=2)
    backend.insert(NS, b, now=NOW + US, expires_at=LATER, subject=u, keep=2)
    backend.insert(NS, c, now=NOW + 2 * US, expires_at=LATER, subject=u, keep=2)
    assert backend.get(NS, a, now=NOW + 2 * US) is None
    assert backend.get(NS, b, now=NOW + 2 * US) is not None
    assert backend.get(NS, c, now=NOW + 2 * US) is not None
    assert backend.take(NS, dead, now=NOW - timedelta(minutes=1)) is None  # deleted, not kept


def test_keep_breaks_ties_of_one_instant_by_insertion_order(backend: Any) -> None:
    u = user()
    ks = [key() for _ in range(4)]
    for k in ks:
        backend.insert(NS, k, now=NOW, expires_at=LATER, subject=u, keep=3)
    assert [backend.get(NS, k, now=NOW) is not None for k in ks] == [False, True, True, True]


def test_concurrent_inserts_keep_the_cap(backend: Any) -> None:
    u = user()
    backend.insert(NS, key(), now=NOW, expires_at=LATER, subject=u, keep=3)
    ks = [key() for _ in range(10)]
    at_once(
        [
            functools.partial(backend.insert, NS, k, now=NOW, expires_at=LATER, subject=u, keep=3)
            for k in ks
        ]
    )
    assert backend.forget(NS, u) == 3


# --- count ------------------------------------------------------------------------------------


def test_count_starts_adds_and_restarts(backend: Any) -> None:
    k, u = key(), user()
    first = backend.count(NS, k, now=NOW, expires_at=LATER, subject=u)
    assert (first.number, first.expires_at, first.subject) == (1, LATER, u)
    second = backend.count(NS, k, now=NOW + US, expires_at=LATER + timedelta(hours=1), subject=u)
    assert (second.number, second.expires_at) == (2, LATER)  # a live record keeps its end
    restarted = backend.count(NS, k, now=LATER, expires_at=LATER + timedelta(hours=1), subject=u)
    assert (restarted.number, restarted.expires_at) == (1, LATER + timedelta(hours=1))


def test_count_without_create_only_counts_a_live_record(backend: Any) -> None:
    k = key()
    assert backend.count(NS, k, now=NOW, create=False) is None
    backend.insert(NS, k, now=NOW, expires_at=LATER, number=0, limit=2)
    assert backend.count(NS, k, now=NOW, create=False).number == 1
    assert backend.count(NS, k, now=NOW, create=False).number == 2
    assert backend.count(NS, k, now=NOW, create=False) is None  # at its limit: dead
    assert backend.count(NS, key(), now=NOW, create=False) is None


def test_a_counter_without_expiry_never_ends(backend: Any) -> None:
    k = key()
    assert backend.count(NS, k, now=NOW).number == 1
    far = NOW + timedelta(days=10_000)
    assert backend.count(NS, k, now=far).number == 2
    assert backend.get(NS, k, now=far).expires_at is None


def test_concurrent_counts_are_each_counted_once(backend: Any) -> None:
    k = key()
    seen = at_once([functools.partial(backend.count, NS, k, now=NOW, expires_at=LATER)] * 10)
    assert sorted(r.number for r in seen) == list(range(1, 11))


# --- advance ----------------------------------------------------------------------------------


def test_advance_moves_forward_only(backend: Any) -> None:
    k = key()
    assert backend.advance(NS, k, 10, now=NOW, expires_at=LATER) == (True, 10)
    assert backend.advance(NS, k, 10, now=NOW, expires_at=LATER) == (False, 10)
    assert backend.advance(NS, k, 9, now=NOW, expires_at=LATER) == (False, 10)
    assert backend.advance(NS, k, 12, now=NOW, expires_at=LATER + US) == (True, 12)
    assert backend.get(NS, k, now=NOW).expires_at == LATER + US
    # once expired, any number is new again
    assert backend.advance(NS, k, 1, now=LATER + US, expires_at=LATER + timedelta(hours=1)) == (
        True,
        1,
    )
    assert backend.advance(NS, key(), 5, now=NOW, expires_at=NOW) == (False, 5)  # dead at birth


def test_advance_without_expiry_keeps_the_greatest(backend: Any) -> None:
    k = key()
    numbers = [secrets.randbelow(2**52) for _ in range(10)]
    at_once([functools.partial(backend.advance, NS, k, n, now=NOW) for n in numbers])
    assert backend.advance(NS, k, 0, now=NOW) == (False, max(numbers))


def test_concurrent_advances_to_one_number_have_one_winner(backend: Any) -> None:
    k = key()
    won = at_once([functools.partial(backend.advance, NS, k, 7, now=NOW, expires_at=LATER)] * 10)
    assert sorted(w for w, _ in won) == [False] * 9 + [True]


# --- forget, purge ----------------------------------------------------------------------------


@pytest.mark.spec("ACC-7")
def test_forget_leaves_nothing_of_the_subject_and_all_of_the_others(backend: Any) -> None:
    a, b = user(), user()
    for u in (a, b):
        backend.insert(NS, key(), now=NOW, expires_at=LATER, subject=u, keep=3)
        backend.insert(NS, key(), now=NOW, expires_at=LATER, subject=u, tag="t")
        backend.count(NS, u, now=NOW, subject=u)  # keyed by the subject, never expires
        backend.advance(NS, f"step-{u}", 3, now=NOW, expires_at=LATER, subject=u)
    assert a in stored_text(backend)
    assert backend.forget(NS, a) == 4
    assert a not in stored_text(backend)
    assert b in stored_text(backend)
    assert backend.count(NS, b, now=NOW, subject=b).number == 2
    assert backend.forget(NS, a) == 0


def test_purge_deletes_only_what_ended_before_now(backend: Any) -> None:
    old, edge, fresh = key(), key(), key()
    backend.insert(NS, old, now=NOW - timedelta(hours=1), expires_at=NOW - US)
    backend.insert(NS, edge, now=NOW - timedelta(hours=1), expires_at=NOW)
    backend.insert(NS, fresh, now=NOW, expires_at=LATER)
    purged = backend.purge(NS, now=NOW)
    assert purged >= (0 if is_redis(backend) else 1)
    assert backend.get(NS, fresh, now=NOW) is not None
    if not is_redis(backend):
        assert backend.take(NS, old, now=NOW, expired=True) is None
        assert backend.take(NS, edge, now=NOW, expired=True) is not None


# --- Redis specifics ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "0x10", " 5", "1e3", "9" * 19, "", "x"])
def test_redis_fields_that_are_not_integers_are_corrupt_and_untouched(
    redis_client: Any, redis_prefix: str, value: str
) -> None:
    records = RedisRecords(redis_client, prefix=redis_prefix)
    for field in ("number", "limit", "expires_at", "created_at"):
        k = key()
        records.insert(NS, k, now=NOW, expires_at=LATER, subject=user(), limit=5)
        name = f"{redis_prefix}{NS}:{k}"
        redis_client.hset(name, field, value)
        before = redis_client.dump(name)
        for call in (
            functools.partial(records.take, NS, k, now=NOW),
            functools.partial(records.count, NS, k, now=NOW, create=False),
            functools.partial(records.advance, NS, k, 99, now=NOW, expires_at=LATER),
            functools.partial(records.insert, NS, k, now=NOW, expires_at=LATER),
            functools.partial(records.get, NS, k, now=NOW),
        ):
            with pytest.raises(CorruptRecordError):
                call()
        assert redis_client.dump(name) == before


def test_redis_keys_of_the_wrong_type_are_corrupt(redis_client: Any, redis_prefix: str) -> None:
    records = RedisRecords(redis_client, prefix=redis_prefix)
    k, u = key(), user()
    redis_client.set(f"{redis_prefix}{NS}:{k}", "1")
    with pytest.raises(CorruptRecordError):
        records.count(NS, k, now=NOW)
    redis_client.set(f"{redis_prefix}{NS}~{u}", "1")
    with pytest.raises(CorruptRecordError):
        records.forget(NS, u)


def test_redis_ttl_comes_from_the_callers_clock_and_the_index_lives_as_long(
    redis_client: Any, redis_prefix: str
) -> None:
    records = RedisRecords(redis_client, prefix=redis_prefix)
    past = datetime(2001, 1, 1, tzinfo=UTC)
    k, u = key(), user()
    records.insert(NS, k, now=past, expires_at=past + timedelta(seconds=90), subject=u)
    assert 89_000 < redis_client.pttl(f"{redis_prefix}{NS}:{k}") <= 90_000
    assert 89_000 < redis_client.pttl(f"{redis_prefix}{NS}~{u}") <= 90_000
    records.count(NS, key(), now=past, subject=u)  # no expiry: the index persists
    assert redis_client.pttl(f"{redis_prefix}{NS}~{u}") == -1


def test_redis_forget_leaves_a_record_that_changed_subject(
    redis_client: Any, redis_prefix: str
) -> None:
    """A key that the index of ``a`` still names but that now belongs to ``b`` survives."""
    records = RedisRecords(redis_client, prefix=redis_prefix)
    k, a, b = key(), user(), user()
    records.advance(NS, k, 1, now=NOW, expires_at=NOW + timedelta(seconds=1), subject=a)
    records.advance(NS, k, 1, now=LATER, expires_at=LATER + timedelta(minutes=1), subject=b)
    assert records.forget(NS, a) == 0
    assert records.get(NS, k, now=LATER).subject == b


# --- across processes ---------------------------------------------------------------------------

PROCESSES, THREADS = 2, 25


def _records(spec: StoreSpec, handle: Any) -> Any:
    if spec.is_redis:
        return RedisRecords(handle, prefix=spec.prefix)
    return SqlRecords(handle)


def _take(k: str, records: Any, round_no: int) -> str:
    return "won" if records.take(NS, f"{k}-{round_no}", now=NOW) is not None else "lost"


def _count(k: str, records: Any, round_no: int) -> int:
    return int(records.count(NS, f"{k}-{round_no}", now=NOW, expires_at=LATER).number)


def _advance(k: str, records: Any, round_no: int) -> bool:
    return bool(records.advance(NS, k, round_no + 1, now=NOW, expires_at=LATER)[0])


@pytest.mark.slow
@pytest.mark.parametrize("where", ["sqlite", "postgresql", "mariadb", "redis"])
def test_exactly_once_across_processes(
    where: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """2 processes x 25 threads: one take wins, counts are 1..50, one advance per number."""
    spec = store_spec(where, request, tmp_path)
    k = key()
    with spec.connected() as handle:
        records = _records(spec, handle)
        for round_no in range(2):
            records.insert(NS, f"{k}-{round_no}", now=NOW, expires_at=LATER)
    taken = hammer(
        spec, _records, functools.partial(_take, k), processes=PROCESSES, threads=THREADS, rounds=2
    )
    for round_no in range(2):
        assert per_round(taken, round_no) == {"won": 1, "lost": PROCESSES * THREADS - 1}
    counted = hammer(
        spec, _records, functools.partial(_count, key()), processes=PROCESSES, threads=THREADS
    )
    assert sorted(n for _, n in counted) == list(range(1, PROCESSES * THREADS + 1))
    advanced = hammer(
        spec,
        _records,
        functools.partial(_advance, key()),
        processes=PROCESSES,
        threads=THREADS,
        rounds=2,
    )
    for round_no in range(2):
        assert Counter(w for r, w in advanced if r == round_no) == {
            True: 1,
            False: PROCESSES * THREADS - 1,
        }


# --- SQL rows no backend writes ----------------------------------------------------------------


def _sql_row(engine: Any, k: str, column: str, value: str) -> None:
    """Set one column of the record at ``k`` to a raw SQL expression."""
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"UPDATE storno_records SET {column} = {value}"
            f" WHERE namespace = '{NS}' AND record_key = '{k}'"
        )


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [("subject", "''", "bad_subject"), ("tag", "''", "bad_tag")],
)
def test_sql_an_empty_subject_or_tag_is_corrupt(
    sql_engine: Any, column: str, value: str, reason: str
) -> None:
    records = SqlRecords(sql_engine)
    k = key()
    records.insert(NS, k, now=NOW, expires_at=LATER, subject=user(), tag="t")
    _sql_row(sql_engine, k, column, value)
    with pytest.raises(CorruptRecordError) as caught:
        records.get(NS, k, now=NOW)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("number", "'one'", "bad_number"),
        ("max_number", "'five'", "bad_number"),
        ("data", "X'00'", "bad_data"),
    ],
)
def test_sql_values_of_another_type_are_corrupt(
    sql_urls: dict[str, str | None],
    sql_engines: dict[str, Any],
    column: str,
    value: str,
    reason: str,
) -> None:
    from tests.conftest import get_sql_engine

    engine = get_sql_engine("sqlite", sql_urls, sql_engines)  # a SQLite column keeps any type
    records = SqlRecords(engine)
    k = key()
    limit = 5 if column == "max_number" else None  # else a text number compares as dead
    records.insert(NS, k, now=NOW, expires_at=LATER, subject=user(), limit=limit)
    _sql_row(engine, k, column, value)
    with pytest.raises(CorruptRecordError) as caught:
        records.get(NS, k, now=NOW)
    assert caught.value.reason == reason


def test_sql_a_count_below_zero_is_corrupt_and_rolled_back(sql_engine: Any) -> None:
    records = SqlRecords(sql_engine)
    k = key()
    records.insert(NS, k, now=NOW, expires_at=LATER, number=3)
    _sql_row(sql_engine, k, "number", "-5")
    with pytest.raises(CorruptRecordError) as caught:
        records.count(NS, k, now=NOW, create=False)
    assert caught.value.reason == "bad_number"
    with sql_engine.connect() as conn:
        number = conn.exec_driver_sql(
            f"SELECT number FROM storno_records WHERE record_key = '{k}'"
        ).scalar_one()
    assert number == -5
