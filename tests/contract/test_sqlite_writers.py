"""The SQLite writer queue: writers of one process take the write lock first come, first served,
and one that cannot get it in time is answered ``StoreUnavailableError`` (never a hang)."""

from __future__ import annotations

import threading
import types
from pathlib import Path

import pytest

from storno_security.errors import StoreUnavailableError
from storno_security.stores.sql import _base as sql_base
from storno_security.stores.sql import create_engine, create_schema
from storno_security.stores.sql._base import _FifoLock, _transaction, sqlite_writers


def test_waiters_get_the_lock_in_the_order_they_came() -> None:
    lock = _FifoLock()
    assert lock.acquire(timeout=1)
    order: list[int] = []
    queued = [threading.Event() for _ in range(5)]

    def waiter(n: int) -> None:
        queued[n].set()
        assert lock.acquire(timeout=30)
        order.append(n)
        lock.release()

    threads = []
    for n in range(5):  # queue them one after the other
        thread = threading.Thread(target=waiter, args=(n,))
        thread.start()
        queued[n].wait(5)
        while len(lock._waiters) < n + 1:
            threading.Event().wait(0.001)
        threads.append(thread)
    lock.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4]
    assert lock.acquire(timeout=0)  # free again


def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    lock = _FifoLock()
    assert lock.acquire(timeout=1)
    assert lock.acquire(timeout=0.01) is False
    assert not lock._waiters
    lock.release()
    assert lock.acquire(timeout=0)


def test_a_writer_that_cannot_get_its_turn_is_unavailable(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/w.db")
    create_schema(engine)
    writers = sqlite_writers(engine)
    writers.wait = 0.01
    assert writers.lock.acquire(timeout=1)  # another writer holds the turn
    try:
        with pytest.raises(StoreUnavailableError), _transaction(engine):
            pass
        with _transaction(engine, read_only=True) as conn:  # readers never queue
            conn.exec_driver_sql("SELECT 1")
    finally:
        writers.lock.release()
    with _transaction(engine) as conn:
        conn.exec_driver_sql("SELECT 1")
    engine.dispose()


def test_a_waiter_handed_the_lock_just_as_its_wait_ends_keeps_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock = _FifoLock()
    assert lock.acquire(timeout=1)

    class LateTurn(threading.Event):
        """A turn whose wait times out at the very moment the holder hands the lock over."""

        def wait(self, timeout: float | None = None) -> bool:
            lock.release()  # the holder's release: this turn leaves the queue, set
            return False

    monkeypatch.setattr(sql_base, "threading", types.SimpleNamespace(Event=LateTurn))
    assert lock.acquire(timeout=0.01) is True
    monkeypatch.undo()
    assert not lock._waiters
    assert lock.acquire(timeout=0) is False  # held: by the waiter that was handed it
    lock.release()
    assert lock.acquire(timeout=0)
