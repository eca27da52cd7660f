"""Refresh rotation on SQLite against a raw durable SQLite transaction, measured in one run.

The store's ``rotate`` (one ``BEGIN IMMEDIATE`` transaction: read the presented token, mark it
used, insert its successor) against the same work written by hand with the standard library's
``sqlite3`` on the same kind of file (WAL, ``synchronous=FULL`` as the store's engine leaves
it): target <= 3x. Then 16 threads, each rotating its own family as fast as it can: p99 of one
rotation, target <= 50 ms.

Run: python bench/refresh.py [--rotations 2000] [--threads 16] [--seconds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sqlite3
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from storno_security.stores.sql import SqlRefreshFamilyStore, create_engine, create_schema
from storno_security.tokens.storage import RefreshFamily

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def _hash() -> str:
    return hashlib.sha256(secrets.token_bytes(32)).hexdigest()


def _family(store: SqlRefreshFamilyStore) -> str:
    token = _hash()
    family = RefreshFamily(
        family_id=secrets.token_hex(16),
        user_id=secrets.token_hex(8),
        created_at=NOW,
        expires_at=NOW + timedelta(days=30),
    )
    store.create_family(family, token_hash=token)
    return token


def _ours(store: SqlRefreshFamilyStore, rotations: int) -> list[float]:
    token, times = _family(store), []
    for _ in range(rotations):
        new = _hash()
        started = time.perf_counter()
        store.rotate(presented_hash=token, new_hash=new, now=NOW)
        times.append(time.perf_counter() - started)
        token = new
    return times


def _raw(path: Path, rotations: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS t (hash TEXT PRIMARY KEY, family TEXT, used_at TEXT, "
        "expires_at TEXT)"
    )
    token, times = _hash(), []
    conn.execute("INSERT INTO t VALUES (?, 'f', NULL, '2027-01-01')", (token,))
    for _ in range(rotations):
        new = _hash()
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(
            "SELECT family, used_at, expires_at FROM t WHERE hash = ?", (token,)
        ).fetchone()
        if row is None or row[1] is not None:
            raise SystemExit("the raw baseline lost its token")
        conn.execute("UPDATE t SET used_at = '2026-12-06' WHERE hash = ?", (token,))
        conn.execute("INSERT INTO t VALUES (?, ?, NULL, ?)", (new, row[0], row[2]))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - started)
        token = new
    conn.close()
    return times


def _threads(store: SqlRefreshFamilyStore, threads: int, seconds: float) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def work() -> None:
        token, mine = _family(store), []
        while time.perf_counter() < stop:
            new = _hash()
            started = time.perf_counter()
            store.rotate(presented_hash=token, new_hash=new, now=NOW)
            mine.append(time.perf_counter() - started)
            token = new
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="storno-bench-refresh-") as tmp:
        engine = create_engine(f"sqlite:///{tmp}/store.db", pool_size=args.threads + 4)
        create_schema(engine)
        store = SqlRefreshFamilyStore(engine)
        ours, raw = [], []
        for _ in range(3):  # interleaved rounds; the median of each
            ours += _ours(store, args.rotations // 3)
            raw += _raw(Path(tmp) / "raw.db", args.rotations // 3)
        ours_ms, raw_ms = statistics.median(ours) * 1000, statistics.median(raw) * 1000
        ratio = ours_ms / raw_ms
        print(f"load average {os.getloadavg()[0]:.1f}")
        print(f"rotate (store)        {ours_ms:7.3f} ms median")
        print(f"raw sqlite3 txn       {raw_ms:7.3f} ms median")
        print(f"  store / raw = {ratio:.2f}x  (target <= 3x): {'met' if ratio <= 3 else 'MISSED'}")
        latencies = sorted(_threads(store, args.threads, args.seconds))
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
        p50 = statistics.median(latencies) * 1000
        print(
            f"{args.threads} threads: {len(latencies)} rotations in {args.seconds:.0f} s, "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms (target <= 50 ms): "
            f"{'met' if p99 <= 50 else 'MISSED'}"
        )
        engine.dispose()
        return 0 if ratio <= 3 and p99 <= 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
