"""Everything a store wrote, as text, to look for a user id in (ACC-7): every row of every
``storno_`` table but the audit log (SQL), every key and value under the store's prefix (Redis),
every value reachable from the store's attributes (memory). It is a scan, not a list of table
or key names, so a store that writes somewhere new is scanned too."""

from __future__ import annotations

from typing import Any

import attrs


def stored_text(store: Any) -> str:
    """What ``store`` (or the records backend behind it) holds, as one text."""
    records = getattr(store, "_records", None)
    engine = getattr(store, "_engine", None) or getattr(records, "_engine", None)
    client = getattr(store, "_client", None) or getattr(records, "_client", None)
    if engine is not None:
        return _sql_text(engine)
    if client is not None:
        prefix = getattr(store, "_prefix", None) or records._prefix
        return _redis_text(client, prefix)
    return _memory_text(store, set())


def _sql_text(engine: Any) -> str:
    import sqlalchemy as sa

    out = []
    with engine.connect() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name.startswith("storno_") and name != "storno_audit_events":
                # row as text on PostgreSQL: other tests leave times no driver parses there
                whole = "t::text" if conn.dialect.name == "postgresql" else "*"
                rows = conn.execute(sa.text(f"SELECT {whole} FROM {name} t")).all()
                out.append(f"{name}: {[tuple(_plain(v) for v in row) for row in rows]!r}")
    return "\n".join(out)


def _plain(value: Any) -> Any:
    return (
        bytes(value).decode("utf-8", "replace") if isinstance(value, bytes | memoryview) else value
    )


def _redis_text(client: Any, prefix: str) -> str:
    out = []
    for key in client.scan_iter(match=prefix + "*", count=1000):
        kind = client.type(key).decode()
        value = {
            "string": client.get,
            "hash": client.hgetall,
            "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
            "set": client.smembers,
            "list": lambda k: client.lrange(k, 0, -1),
        }.get(kind, lambda k: None)(key)
        out.append(f"{key!r} {kind} {value!r}")
    return "\n".join(out)


def _memory_text(value: Any, seen: set[int]) -> str:
    if id(value) in seen:
        return ""
    seen.add(id(value))
    if isinstance(value, dict):
        return " ".join(
            _memory_text(k, seen) + " " + _memory_text(v, seen) for k, v in value.items()
        )
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(_memory_text(v, seen) for v in value)
    if attrs.has(type(value)):
        return repr(value) + " ".join(
            _memory_text(getattr(value, a.name), seen) for a in attrs.fields(type(value))
        )
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return " ".join(_memory_text(v, seen) for v in vars(value).values())
    return repr(value)
