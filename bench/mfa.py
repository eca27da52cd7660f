"""MFA speed, against baselines measured in the same run.

Prints, with the ratios:
  * TOTP verify (SHA-1, 6 digits, ±1 step): bare ``pyotp.TOTP.verify(code, valid_window=1)``
    against ours (every candidate step compared in constant time, then the replay guard's
    compare-and-set) over the memory and the Redis replay store; a new user per call, so every
    call is a first use of its code;
  * an MFA login challenge issued and completed (the factor check stubbed, so this is the
    challenge machinery alone) over the memory and the Redis store, with the Redis round trips
    per pair and, as the baseline, that many bare ``PING`` round trips;
  * backup-code verify at the default bcrypt cost (right code, wrong code, a hint no code has)
    against one bare ``bcrypt.checkpw`` at that cost. Target: about 1.0x (one bcrypt per
    attempt, whatever the outcome).

The bench starts a Redis server of its own on a free port (``--redis-url`` uses an existing one).

Run: python bench/mfa.py [--seconds 1.0] [--bcrypt-samples 10] [--redis-url redis://...]
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import bcrypt
import pyotp
import redis
from _common import Counted, interleaved, measure, redis_url

from storno_security.clock import FrozenClock
from storno_security.errors import InvalidMfaCodeError
from storno_security.mfa import (
    BACKUP_CODE_ALPHABET,
    BackupCodes,
    MfaChallenges,
    MfaChallengeStore,
    MfaPolicy,
    PendingChallenge,
    TotpAuthenticator,
    TotpReplayStore,
    VerifiedFactor,
)
from storno_security.stores.memory import (
    MemoryBackupCodeStore,
    MemoryMfaChallengeStore,
    MemoryTotpReplayStore,
)
from storno_security.stores.redis import RedisMfaChallengeStore, RedisTotpReplayStore

BCRYPT_TARGET = (0.9, 1.1)


def totp_figures(
    policy: MfaPolicy, clock: FrozenClock, replay: TotpReplayStore
) -> Callable[[], object]:
    """Our TOTP verify of a fresh user's current code (one replay-store write per call)."""
    totp = TotpAuthenticator(policy.totp, replay=replay, clock=clock, lockout=None)
    secret = totp.begin_enrolment(account_name="bench", issuer="Bench").secret
    code = pyotp.TOTP(secret).at(clock.now())
    users = (f"user-{i}" for i in itertools.count())

    def verify() -> None:
        totp.verify(code, secret=secret, user_id=next(users))

    return verify


def challenge_pair(
    policy: MfaPolicy, clock: FrozenClock, store: MfaChallengeStore
) -> Callable[[], object]:
    """Issue a challenge and complete it with a stubbed factor check."""
    challenges = MfaChallenges(policy, store=store, clock=clock)
    users = (f"user-{i}" for i in itertools.count())

    def factor(pending: PendingChallenge) -> VerifiedFactor:
        return VerifiedFactor(
            user_id=pending.user_id, method="totp", verified_at=clock.now(), totp_step=1
        )

    def pair() -> None:
        issued = challenges.issue(next(users))
        challenges.complete(issued.token, factor)

    return pair


def backup_code_calls(
    policy: MfaPolicy, clock: FrozenClock, samples: int
) -> dict[str, Callable[[], object]]:
    """One bare bcrypt check and our three backup-code outcomes, each one call."""
    codes = BackupCodes(policy, store=MemoryBackupCodeStore(), clock=clock, lockout=None)
    right: list[str] = []
    while len(right) < samples:
        right.extend(codes.generate(f"user-{len(right)}").codes)
    user_of = {code: f"user-{i // policy.backup_code_count}" for i, code in enumerate(right)}
    unused = iter(right)
    sample_set = codes.generate("wrong-codes")
    hints = {code[0] for code in sample_set.codes}
    known = sample_set.codes[0]
    # a code whose hint is taken but whose rest is wrong, and one whose hint no code has
    wrong = known[0] + ("A" if known[1] != "A" else "B") + known[2:]
    missing_hint = next(ch for ch in BACKUP_CODE_ALPHABET if ch not in hints)
    unknown = missing_hint + known[1:]

    cost = policy.backup_code_hashing.cost
    password = b"ABCDEFGHJKLM"
    hashed = bcrypt.hashpw(password, bcrypt.gensalt(cost))

    def bare() -> None:
        bcrypt.checkpw(password, hashed)

    def accepted() -> None:
        code = next(unused)
        codes.verify(code, user_id=user_of[code])

    def refused(code: str) -> Callable[[], object]:
        def call() -> None:
            try:
                codes.verify(code, user_id="wrong-codes")
            except InvalidMfaCodeError:
                return
            raise SystemExit("a wrong backup code was accepted")

        return call

    return {
        f"bare bcrypt.checkpw, cost {cost}": bare,
        "ours, right code (used up)": accepted,
        "ours, wrong code, hint taken": refused(wrong),
        "ours, wrong code, no such hint": refused(unknown),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--bcrypt-samples", type=int, default=10, help="bcrypt calls per kind")
    parser.add_argument("--redis-url", default=None, help="an existing Redis (default: own one)")
    args = parser.parse_args()

    policy = MfaPolicy()
    # The wall clock, so that pyotp (which reads it) and our authenticator agree on the step.
    clock = FrozenClock(datetime.now(UTC))
    secret = pyotp.random_base32()
    bare_totp = pyotp.TOTP(secret)
    code = bare_totp.now()

    def pyotp_verify() -> None:
        if not bare_totp.verify(code, valid_window=1):
            raise SystemExit("pyotp refused its own code")

    rows: dict[str, tuple[float, str]] = {}
    rows["TOTP: bare pyotp TOTP.verify"] = (measure(pyotp_verify, args.seconds)[0], "")
    totp_memory = totp_figures(policy, clock, MemoryTotpReplayStore())
    rows["TOTP: ours, memory replay store"] = (measure(totp_memory, args.seconds)[0], "")
    pair_memory = challenge_pair(policy, clock, MemoryMfaChallengeStore())
    rows["challenge issue+complete: memory"] = (measure(pair_memory, args.seconds)[0], "")

    with redis_url(args.redis_url) as url:
        client: redis.Redis[Any] = redis.Redis.from_url(url)
        counted = Counted(client)
        prefix = f"storno-bench:{secrets.token_hex(4)}:"
        totp_redis = totp_figures(policy, clock, RedisTotpReplayStore(client, prefix=prefix))
        before = counted.round_trips
        micros, n = measure(totp_redis, args.seconds)
        trips = (counted.round_trips - before) / n
        rows["TOTP: ours, Redis replay store"] = (micros, f"{trips:4.2f} trips")
        pair_redis = challenge_pair(policy, clock, RedisMfaChallengeStore(client, prefix=prefix))
        before = counted.round_trips
        micros, n = measure(pair_redis, args.seconds)
        pair_trips = (counted.round_trips - before) / n
        rows["challenge issue+complete: Redis"] = (micros, f"{pair_trips:4.2f} trips")
        pings = round(pair_trips)

        def ping_round_trips() -> None:
            for _ in range(pings):
                client.ping()

        ping_us = measure(ping_round_trips, args.seconds)[0]
        rows[f"baseline: {pings} bare Redis PINGs"] = (ping_us, "")
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()

    slow = interleaved(backup_code_calls(policy, clock, args.bcrypt_samples), args.bcrypt_samples)

    width = max(map(len, [*rows, *slow]))
    versions = ", ".join(f"{name} {version(name)}" for name in ("pyotp", "bcrypt", "redis"))
    print(f"MFA, Python {sys.version.split()[0]}, {versions}")
    for name, (micros, extra) in rows.items():
        print(f"  {name:<{width}}  {micros:9.2f} µs/op  {extra}".rstrip())
    for name, millis in slow.items():
        print(f"  {name:<{width}}  {millis:9.2f} ms/op")
    bare_totp_us = rows["TOTP: bare pyotp TOTP.verify"][0]
    for store in ("memory", "Redis"):
        ours_us = rows[f"TOTP: ours, {store} replay store"][0]
        print(f"  TOTP ours ({store}) / bare pyotp = {ours_us / bare_totp_us:5.2f}x")
    pair_us = rows["challenge issue+complete: Redis"][0]
    print(f"  challenge pair (Redis) / {pings} bare round trips = {pair_us / ping_us:5.2f}x")
    bare_ms = next(iter(slow.values()))
    ok = True
    for name, millis in list(slow.items())[1:]:
        ratio = millis / bare_ms
        ok = ok and BCRYPT_TARGET[0] <= ratio <= BCRYPT_TARGET[1]
        print(f"  backup code, {name.removeprefix('ours, ')} / bare bcrypt = {ratio:5.2f}x")
    low, high = BCRYPT_TARGET
    print(
        f"  one bcrypt per attempt ({low}x to {high}x): "
        + ("target met" if ok else "TARGET MISSED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
