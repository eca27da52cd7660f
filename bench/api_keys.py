"""API-key verification speed, against baselines measured in the same run.

Prints µs/op for:
  * a bare SHA-256 of a key (hashlib);
  * a bare SHA-256 + the same indexed SQLite ``SELECT`` by primary key through the ``sqlite3``
    module directly (the baseline of the target), and through SQLAlchemy Core (connect, execute,
    fetch one row, close; for reference);
  * our verify through the memory store (parse + checksum, SHA-256, lookup, constant-time
    compare, revocation and expiry, principal);
  * our verify through the SQLite store (the same, with the store's ``SELECT``);
and the ratios. Targets: memory verify <= 3 µs; SQLite verify <= 2x the bare SHA-256 + indexed
select through the ``sqlite3`` module. The functions run in interleaved rounds and each ratio is
the median of ratios taken within one round, so that a machine shared with other work compares
like with like.

Run: python bench/api_keys.py [--seconds 5.0]
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from _common import measure_interleaved

from storno_security.api_keys import ApiKeyManager
from storno_security.clock import FrozenClock
from storno_security.stores.memory import MemoryApiKeyStore
from storno_security.stores.sql import SqlApiKeyStore, api_keys, create_engine, create_schema


def median_ratio(results: dict[str, list[float]], top: str, bottom: str) -> float:
    """The median over rounds of ``top / bottom`` measured in the same round."""
    return statistics.median(a / b for a, b in zip(results[top], results[bottom], strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="time per function, over 7 rounds"
    )
    args = parser.parse_args()

    # The clock never moves, so last_used_at is written once (at the warm-up) and never again:
    # the figures are those of the steady state, as they are for a key used many times a minute.
    clock = FrozenClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))

    memory = ApiKeyManager(MemoryApiKeyStore(), clock=clock)
    for n in range(1000):  # a store that is not trivially small
        memory.create(f"user-{n}", "org-1", name="filler", scope="read")
    memory_key = memory.create("user-x", "org-1", name="bench", scope="write").key

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        engine = create_engine(f"sqlite:///{path}")
        create_schema(engine)
        sql = ApiKeyManager(SqlApiKeyStore(engine), clock=clock)
        for n in range(1000):
            sql.create(f"user-{n}", "org-1", name="filler", scope="read")
        created = sql.create("user-x", "org-1", name="bench", scope="write")
        sql_key, key_id = created.key, created.key_id
        memory.verify(memory_key)
        sql.verify(sql_key)

        encoded = sql_key.encode("ascii")
        select = sa.select(api_keys).where(api_keys.c.key_id == sa.bindparam("key_id"))

        def bare_sha256() -> None:
            hashlib.sha256(encoded).hexdigest()

        def bare_sqlalchemy() -> None:
            hashlib.sha256(encoded).hexdigest()
            with engine.connect() as conn:
                conn.execute(select, {"key_id": key_id}).one()

        raw = sqlite3.connect(path)
        raw_query = "SELECT * FROM storno_api_keys WHERE key_id = ?"

        def bare_sqlite3() -> None:
            hashlib.sha256(encoded).hexdigest()
            raw.execute(raw_query, (key_id,)).fetchone()

        def ours_memory() -> None:
            memory.verify(memory_key)

        def ours_sqlite() -> None:
            sql.verify(sql_key)

        results = measure_interleaved(
            {
                "bare SHA-256": bare_sha256,
                "bare SHA-256 + select (sqlite3 module)": bare_sqlite3,
                "bare SHA-256 + select (SQLAlchemy Core)": bare_sqlalchemy,
                "ours, memory store": ours_memory,
                "ours, SQLite store": ours_sqlite,
            },
            args.seconds,
        )
        raw.close()
        engine.dispose()

    width = max(map(len, results))
    version = sys.version.split()[0]
    print(f"API-key verify, key {len(memory_key)} chars, 1001 keys, Python {version}")
    print("  (median of 7 interleaved rounds; ratios are medians of same-round ratios)")
    for name, values in results.items():
        print(f"  {name:<{width}}  {statistics.median(values):8.2f} µs/op")
    mem = statistics.median(results["ours, memory store"])
    sha_ratio = median_ratio(results, "ours, memory store", "bare SHA-256")
    core_ratio = median_ratio(
        results, "ours, SQLite store", "bare SHA-256 + select (SQLAlchemy Core)"
    )
    module_ratio = median_ratio(
        results, "ours, SQLite store", "bare SHA-256 + select (sqlite3 module)"
    )
    print(f"  memory verify                  = {mem:5.2f} µs  (target <= 3.00 µs)")
    print(f"  memory verify / bare SHA-256   = {sha_ratio:5.2f}x")
    print(f"  SQLite verify / bare + sqlite3 = {module_ratio:5.2f}x  (target <= 2.00x)")
    print(f"  SQLite verify / bare + Core    = {core_ratio:5.2f}x  (for reference)")
    ok = mem <= 3.0 and module_ratio <= 2.0
    print("  targets met" if ok else "  TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
