"""Expiring records in Redis hashes (see :mod:`storno_security.stores._records`). Private: the
short-lived stores are built on it.

A record is the hash ``{prefix}{namespace}:{key}`` (fields ``number``, ``created_at``, ``data``
and, when set, ``limit``, ``expires_at``, ``subject``, ``tag``; times in integer microseconds),
kept for ``expires_at - now`` on the caller's clock. A record with a subject is also a member of
the subject's index, the sorted set ``{prefix}{namespace}~{subject}`` (scored in insertion
order), written by the same script and kept as long as its longest-lived member: so forgetting
a subject needs no key names known in advance, and nothing of it is left afterwards.

Every operation is one round trip: one Lua script (``get``: one ``HGETALL``). Each script reads
and checks everything before its first write (a value that is not a decimal integer of at most
18 digits is corrupt, never guessed at), and its first write allocates (``HSET``,
``HINCRBY``) or it only deletes: a full ``noeviction`` Redis refuses it whole. The scripts
touch index members by name, so they need one Redis primary, not a Cluster.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis
from redis.commands.core import Script

from storno_security.errors import CorruptRecordError
from storno_security.stores._records import Record, Records, duplicate, from_micros, micros
from storno_security.stores.redis._base import (
    _bad_reply,
    _call,
    _fields,
    _int,
    _RedisStore,
    _text,
    _ttl_ms,
    require_noeviction,
)

__all__ = ["RedisBacked", "RedisRecords"]

_HELPERS = """
local function fail(what)
    error({err = 'WRONGTYPE storno: ' .. what})
end
local function num(value)
    local n = int(value)
    if n == nil then fail('a record field is not an integer') end
    return n
end
local function load(key)
    local kind = redis.call('TYPE', key).ok
    if kind == 'none' then return nil end
    if kind ~= 'hash' then fail('not a record') end
    local v = redis.call('HMGET', key, 'number', 'limit', 'expires_at', 'created_at',
        'subject', 'tag', 'shape', 'data')
    if not v[7] or not v[8] then fail('not a record') end
    for name in string.gmatch(v[7], '[a-z_]+') do
        if not redis.call('HGET', key, name) then fail('a record lost its ' .. name) end
    end
    local r = {number = num(v[1]), created_at = num(v[4]), subject = v[5] or nil, tag = v[6] or nil}
    if v[2] then r.limit = num(v[2]) end
    if v[3] then r.expires_at = num(v[3]) end
    return r
end
local function alive(r, now)
    return r.expires_at == nil or now < r.expires_at
end
local function live(r, now)
    return alive(r, now) and (r.limit == nil or r.number < r.limit)
end
local function write(key, fields, ttl)
    redis.call('HSET', key, unpack(fields))
    local given, gone = {}, {}
    for i = 1, #fields, 2 do given[fields[i]] = true end
    for _, name in ipairs({'limit', 'expires_at', 'subject', 'tag'}) do  -- 'shape' names them
        if not given[name] then gone[#gone + 1] = name end
    end
    if #gone > 0 then redis.call('HDEL', key, unpack(gone)) end
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) else redis.call('PERSIST', key) end
end
local function index(idx, member, ttl)
    local existed = redis.call('EXISTS', idx) == 1
    local top = redis.call('ZREVRANGE', idx, 0, 0, 'WITHSCORES')
    local score = 1
    if top[2] then score = num(top[2]) + 1 end
    redis.call('ZADD', idx, score, member)
    if ttl <= 0 then
        redis.call('PERSIST', idx)
    elseif not existed then
        redis.call('PEXPIRE', idx, ttl)
    else
        local current = redis.call('PTTL', idx)
        if current >= 0 and current < ttl then redis.call('PEXPIRE', idx, ttl) end
    end
end
local function forget(idx, base, subject)
    local n = 0
    for _, member in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
        local key = base .. member
        local kind = redis.call('TYPE', key).ok
        if kind == 'hash' and redis.call('HGET', key, 'subject') == subject then
            n = n + redis.call('DEL', key)
        end
    end
    redis.call('DEL', idx)
    return n
end
local now, ttl, subject = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local member, base, fields = ARGV[4], ARGV[5], {unpack(ARGV, 7)}
"""

# ARGV[6]: keep ('' or a count). Returns 0 when a record that has not expired has the key.
_INSERT = """
local r = load(KEYS[1])
if r and alive(r, now) then return 0 end
local keep, rows, drop = tonumber(ARGV[6]), {}, {}
if keep then
    local members = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    for i = 1, #members, 2 do
        local m = members[i]
        if m ~= member then
            local other = load(base .. m)
            local mine = other ~= nil and other.subject == subject
            if mine and live(other, now) then
                rows[#rows + 1] = {m, other.created_at, num(members[i + 1])}
            else
                drop[#drop + 1] = {m, mine}
            end
        end
    end
    rows[#rows + 1] = {member, now, math.huge}
end
write(KEYS[1], fields, ttl)
if subject ~= '' then index(KEYS[2], member, ttl) end
if keep then
    table.sort(rows, function(a, b)
        if a[2] ~= b[2] then return a[2] > b[2] end
        return a[3] > b[3]
    end)
    for i = keep + 1, #rows do drop[#drop + 1] = {rows[i][1], true} end
    for _, row in ipairs(drop) do
        redis.call('ZREM', KEYS[2], row[1])
        if row[2] then redis.call('DEL', base .. row[1]) end
    end
end
return 1
"""

# ARGV[6]: '1' to create. Returns the record after counting, or nil.
_COUNT = """
local create = ARGV[6] == '1'
local r = load(KEYS[1])
if r and ((create and alive(r, now)) or live(r, now)) then
    if r.number < 0 then fail('a negative count') end
    redis.call('HINCRBY', KEYS[1], 'number', 1)
    return redis.call('HGETALL', KEYS[1])
end
if not create then return false end
write(KEYS[1], fields, ttl)
if subject ~= '' then index(KEYS[2], member, ttl) end
return redis.call('HGETALL', KEYS[1])
"""

# ARGV[6]: the number. Returns {written (0/1), the number after}.
_ADVANCE = """
local n = tonumber(ARGV[6])
local r = load(KEYS[1])
if r and alive(r, now) and r.number >= n then return {0, r.number} end
write(KEYS[1], fields, ttl)
if subject ~= '' then index(KEYS[2], member, ttl) end
return {1, n}
"""

# ARGV[3]: wanted subject ('' any); ARGV[6]: wanted tag; ARGV[7]: '1' to take expired records;
# ARGV[8]: '1' to delete the siblings; ARGV[9]: the index keys' start ({prefix}{namespace}~).
# Returns nil, or {taken (0/1), the record's fields}.
_TAKE = """
local r = load(KEYS[1])
if r == nil then return false end
if (subject ~= '' and r.subject ~= subject) or (ARGV[6] ~= '' and r.tag ~= ARGV[6]) then
    return false
end
local all = redis.call('HGETALL', KEYS[1])
if ARGV[7] ~= '1' and not live(r, now) then return {0, all} end
redis.call('DEL', KEYS[1])
if r.subject then
    local idx = ARGV[9] .. r.subject
    if ARGV[8] == '1' then forget(idx, base, r.subject) else redis.call('ZREM', idx, member) end
end
return {1, all}
"""

_FORGET = """
return forget(KEYS[1], base, subject)
"""


class RedisRecords(_RedisStore, Records):
    """Records in Redis hashes under ``prefix``.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way).
        prefix: starts every key.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        super().__init__(client, prefix=prefix)
        self._scripts = {
            name: self._script(_HELPERS + body)
            for name, body in (
                ("insert", _INSERT),
                ("count", _COUNT),
                ("advance", _ADVANCE),
                ("take", _TAKE),
                ("forget", _FORGET),
            )
        }

    def require_noeviction(self, *, allow_unknown: bool = False) -> None:
        """Refuse this Redis if it may evict keys: see :func:`require_noeviction`."""
        require_noeviction(self._client, allow_unknown=allow_unknown)

    def _run(
        self,
        name: str,
        ns: str,
        key: str,
        subject: str | None,
        now: datetime,
        ttl: int,
        extra: object,
        fields: Sequence[object] = (),
    ) -> Any:
        script: Script = self._scripts[name]
        record = f"{self._prefix}{ns}:{key}"
        index = record if subject is None else f"{self._prefix}{ns}~{subject}"
        head = [micros(now), ttl, subject or "", key, f"{self._prefix}{ns}:", extra]
        return _call(lambda: script(keys=[record, index], args=[*head, *fields]))

    def _insert(self, ns: str, key: str, record: Record, keep: int | None) -> None:
        now, expires_at = record.created_at, record.expires_at
        fields = _fields_of(record)
        ttl = -1 if expires_at is None else _ttl_ms(now, expires_at)
        if self._run("insert", ns, key, record.subject, now, ttl, keep or "", fields) != 1:
            raise duplicate()

    def _get(self, ns: str, key: str, now: datetime) -> Record | None:
        name = f"{self._prefix}{ns}:{key}"
        reply = _call(lambda: self._client.hgetall(name))
        if not isinstance(reply, dict):
            _bad_reply()
        record = _record_of(reply) if reply else None
        return record if record is not None and record.live(now) else None

    def _take(
        self,
        ns: str,
        key: str,
        now: datetime,
        subject: str | None,
        tag: str | None,
        expired: bool,
        siblings: bool,
    ) -> Record | None:
        flags = ["1" if expired else "0", "1" if siblings else "0", f"{self._prefix}{ns}~"]
        reply = self._run("take", ns, key, subject, now, 0, tag or "", flags)
        if reply is None:
            return None
        if not isinstance(reply, list) or len(reply) != 2 or reply[0] not in (0, 1):
            _bad_reply()
        return _record_of(reply[1])

    def _count(
        self,
        ns: str,
        key: str,
        now: datetime,
        expires_at: datetime | None,
        subject: str | None,
        create: bool,
    ) -> Record | None:
        fields = _fields_of(Record(subject, None, "", 1, None, now, expires_at))
        ttl = -1 if expires_at is None else _ttl_ms(now, expires_at)
        reply = self._run("count", ns, key, subject, now, ttl, "1" if create else "0", fields)
        return None if reply is None else _record_of(reply)

    def _advance(
        self,
        ns: str,
        key: str,
        number: int,
        now: datetime,
        expires_at: datetime | None,
        subject: str | None,
    ) -> tuple[bool, int]:
        fields = _fields_of(Record(subject, None, "", number, None, now, expires_at))
        ttl = -1 if expires_at is None else _ttl_ms(now, expires_at)
        reply = self._run("advance", ns, key, subject, now, ttl, number, fields)
        if not isinstance(reply, list) or len(reply) != 2 or reply[0] not in (0, 1):
            _bad_reply()
        if isinstance(reply[1], bool) or not isinstance(reply[1], int):
            _bad_reply()
        return reply[0] == 1, reply[1]

    def _forget(self, ns: str, subject: str) -> int:
        index = f"{self._prefix}{ns}~{subject}"
        head = [0, 0, subject, "", f"{self._prefix}{ns}:", ""]
        reply = _call(lambda: self._scripts["forget"](keys=[index], args=head))
        if isinstance(reply, bool) or not isinstance(reply, int):
            _bad_reply()
        return reply

    def _purge(self, ns: str, now: datetime) -> int:
        return 0  # Redis forgets records by itself when they expire


def _fields_of(record: Record) -> list[object]:
    fields: list[object] = [
        *("number", record.number, "created_at", micros(record.created_at)),
        *("data", record.data),
    ]
    expires_at = record.expires_at
    optional = {
        "limit": record.limit,
        "expires_at": None if expires_at is None else micros(expires_at),
        "subject": record.subject,
        "tag": record.tag,
    }
    given = [name for name, value in optional.items() if value is not None]
    for name in given:
        fields += [name, optional[name]]
    return [*fields, "shape", " ".join(given) or "-"]


def _record_of(reply: object) -> Record:
    """A record from its hash (``HGETALL``), refusing values no store writes."""
    fields = _fields(reply)

    def optional(name: str) -> str | None:
        value = fields.get(name)
        return None if value is None else _text(value, f"bad_{name}")

    def moment(name: str) -> datetime | None:
        value = fields.get(name)
        try:
            return None if value is None else from_micros(_int(value, "bad_datetime"))
        except OverflowError:
            raise CorruptRecordError(reason="bad_datetime") from None

    shape = _text(fields.get("shape", b""), "missing_field")
    if any(name not in fields for name in shape.split() if name != "-"):
        raise CorruptRecordError(reason="missing_field")
    data = fields.get("data")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptRecordError(reason="bad_data") from None
    created_at = moment("created_at")
    if not isinstance(data, str) or "number" not in fields or created_at is None:
        raise CorruptRecordError(reason="missing_field")
    limit = fields.get("limit")
    return Record(
        optional("subject"),
        optional("tag"),
        data,
        _int64(fields["number"]),
        None if limit is None else _int64(limit),
        created_at,
        moment("expires_at"),
    )


class RedisBacked:
    """What the Redis stores add to the shared adapters: the constructor and the eviction
    check.

    Args:
        client: a synchronous redis-py client (``decode_responses`` either way); constructing
            makes no round trip.
        prefix: starts every key, so several applications can share one database.

    Raises:
        TypeError: ``prefix`` is not a str.
    """

    def __init__(self, client: redis.Redis[Any], *, prefix: str = "storno:") -> None:
        self._redis = RedisRecords(client, prefix=prefix)
        self._records: Records = self._redis

    def require_noeviction(self, *, allow_unknown: bool = False) -> None:
        """Refuse this store's Redis if it may evict keys: see :func:`require_noeviction`."""
        self._redis.require_noeviction(allow_unknown=allow_unknown)


def _int64(value: object) -> int:
    """A stored integer in Redis' 64-bit range (exact in Python; the scripts read 18 digits)."""
    text = _text(value, "bad_number")
    if re.fullmatch(r"-?[0-9]{1,19}", text) is None or not -(2**63) <= int(text) < 2**63:
        raise CorruptRecordError(reason="bad_number")
    return int(text)
