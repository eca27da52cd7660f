"""Access-token verification speed and verified-token cache scaling, against baselines measured
in the same run.

Every figure is CPU time of the benchmark's thread (``time.thread_time``): the work is CPU-bound,
and on a machine shared with other jobs wall time would count the time the scheduler gives
them. Verification (RSA-2048, RS256, one token), µs/op, in interleaved rounds so that every
ratio compares figures of the same round:
  * raw RSA verify (cryptography, PKCS#1 v1.5 + SHA-256 over the signing input): the floor;
  * PyJWT ``jwt.decode``, joserfc ``jwt.decode`` + ``JWTClaimsRegistry.validate`` and authlib
    ``JsonWebToken.decode`` + ``claims.validate``, each with a preloaded key and the issuer and
    audience checked (a library that is not installed is skipped, and the bench says so);
  * ours on first sight with the cache off, and with a cache (a miss, then an insert that evicts);
  * ours on a repeated token (a cache hit: SHA-256, a lookup, the key and time checks, the
    session check).

Cache scaling, at 1k, 10k, 100k and 1M entries up to ``--max-entries`` (default 200k, so that
CI stays short; ``--max-entries 1000000`` for the full table), in rounds that interleave the
sizes:
  * a verification's cache work on first sight: SHA-256 of a token of a real one's length, a
    lookup that misses and an insert that evicts the oldest entry;
  * a repeated verification (a hit) of a token drawn at random from all the cached ones (of a
    real token's length; the entries share one claims object), beside its floor: the same
    draws hashed the same way and looked up in a plain dict of the same entries;
  * the bare structure: a lookup that misses plus an insert that evicts, beside an
    ``OrderedDict`` FIFO doing the same (the baseline of issue 18: the cache used to cost 21x it
    at 10k entries and 262x at 100k, because eviction walked deleted dict slots);
  * the worst single insert: CPU time of the thread, the least over three batches of the
    slowest of each (a stall of the structure recurs in every batch, a one-off pause of the
    virtual machine's host does not; collector pauses count).

Targets (issue 18): first sight <= 2.0x raw RSA and faster than PyJWT, joserfc and authlib;
repeated <= 3 µs; per operation at the largest size <= 1.5x the cost at 1k for the first-sight
cache work, and for a hit beyond the growth of its floor; worst single insert <= 1 ms at every
size. The floors' growth is printed, not held: at a million entries any hash table pays
main-memory latency on a few cache lines per operation, a plain dict or ``OrderedDict`` as much
as ours, and how much moves with the machine from run to run (the bare structure's get+put
grew 1.55x in one CI run and 2.09x in the next here, and the hit with it: 1.32x, then 1.51x).

Run: python bench/tokens.py [--seconds 1.0] [--max-entries 200000] [--ops 50000]
"""

from __future__ import annotations

import argparse
import base64
import gc
import hashlib
import importlib.util
import math
import random
import statistics
import sys
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

import jwt
from _common import measure_interleaved
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from storno_security.clock import FrozenClock
from storno_security.stores.memory import MemorySessionStateStore
from storno_security.tokens import (
    AccessTokenIssuer,
    AccessTokenVerifier,
    KeyRing,
    SigningKey,
    TokenPolicy,
    VerifiedTokenCache,
)
from storno_security.tokens.access import _CacheEntry, _policy_fingerprint

SIZES = (1_000, 10_000, 100_000, 1_000_000)
FIRST_OVER_RAW = 2.0
REPEATED_MICROS = 3.0
FLATNESS = 1.5
WORST_MS = 1.0


def other_libraries(
    token: str, pem: bytes, policy: TokenPolicy
) -> tuple[dict[str, Callable[[], object]], list[str]]:
    """Verification by the other JOSE libraries that are installed, and the names skipped."""
    found: dict[str, Callable[[], object]] = {}
    skipped = []
    public = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).prepare_key(pem)

    def pyjwt() -> None:
        jwt.decode(
            token, public, algorithms=["RS256"], audience=policy.audience, issuer=policy.issuer
        )

    found["PyJWT jwt.decode"] = pyjwt
    if importlib.util.find_spec("joserfc") is not None:
        from joserfc import jwt as jose_jwt
        from joserfc.jwk import RSAKey

        jose_key = RSAKey.import_key(pem)
        registry = jose_jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": policy.issuer},
            aud={"essential": True, "value": policy.audience},
            sub={"essential": True},
        )

        def joserfc() -> None:
            registry.validate(jose_jwt.decode(token, jose_key, algorithms=["RS256"]).claims)

        found["joserfc jwt.decode"] = joserfc
    else:
        skipped.append("joserfc")
    if importlib.util.find_spec("authlib") is not None:
        import authlib.deprecate  # installs an "always" filter for its own warning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # authlib.jose says to use joserfc instead
            from authlib.jose import JsonWebKey, JsonWebToken

        authlib_jwt = JsonWebToken(["RS256"])
        authlib_key = JsonWebKey.import_key(pem, {"kty": "RSA"})
        options = {
            "iss": {"essential": True, "value": policy.issuer},
            "aud": {"essential": True, "value": policy.audience},
        }

        def authlib() -> None:
            authlib_jwt.decode(token, authlib_key, claims_options=options).validate()

        found["authlib jwt.decode"] = authlib
    else:
        skipped.append("authlib")
    return found, skipped


def verification(seconds: float) -> bool:
    key = SigningKey.generate(bits=2048)
    ring = KeyRing(key)
    # The wall clock, so that the other libraries (which read it) and our verifier agree.
    clock = FrozenClock(datetime.now(UTC))
    policy = TokenPolicy(issuer="https://api.bench.test", audience="bench")
    issuer = AccessTokenIssuer(ring, policy, clock=clock)
    token = issuer.issue("user-1", session_id="session-1", epoch=0).token
    # First sight through a cache: a few tokens cycling through a one-entry cache, so every
    # call misses, verifies and inserts, evicting the previous one.
    cycle = [issuer.issue(f"user-{i}", session_id="s", epoch=0).token for i in range(8)]
    public = key.private_key.public_key()

    signing_input, _, signature_b64 = token.rpartition(".")
    signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
    message = signing_input.encode()

    def raw_rsa() -> None:
        public.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())

    sessions = MemorySessionStateStore()
    uncached_policy = TokenPolicy(
        issuer=policy.issuer, audience=policy.audience, verified_cache_size=0
    )
    cold = AccessTokenVerifier(ring, uncached_policy, clock=clock, sessions=sessions)
    missing = AccessTokenVerifier(
        ring, policy, clock=clock, sessions=sessions, cache=VerifiedTokenCache(1)
    )
    warm = AccessTokenVerifier(ring, policy, clock=clock, sessions=sessions)
    warm.verify(token)
    position = iter(range(10**12))

    def first_sight_cached() -> None:
        missing.verify(cycle[next(position) & 7])

    others, skipped = other_libraries(token, key.public.public_pem(), policy)
    functions: dict[str, Callable[[], object]] = {
        "raw RSA verify": raw_rsa,
        "ours, first sight (no cache)": lambda: cold.verify(token),
        "ours, first sight (miss + insert)": first_sight_cached,
        **others,
        "ours, repeated (cache hit)": lambda: warm.verify(token),
    }
    rounds = measure_interleaved(functions, seconds, timer=time.thread_time)
    figures = {name: statistics.median(values) for name, values in rounds.items()}

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rounds[a], rounds[b], strict=True))

    width = max(map(len, figures))
    print(
        f"access-token verify, RSA-2048, token {len(token)} bytes, Python {sys.version.split()[0]}"
    )
    for name, value in figures.items():
        print(f"  {name:<{width}}  {value:8.2f} µs/op")
    for name in skipped:
        print(f"  {name}: not installed, skipped")
    ok = True
    for first in ("ours, first sight (no cache)", "ours, first sight (miss + insert)"):
        over_raw = ratio(first, "raw RSA verify")
        met = over_raw <= FIRST_OVER_RAW
        ok &= met
        print(
            f"  {first} / raw RSA = {over_raw:5.2f}x  (target <= {FIRST_OVER_RAW}x)"
            + ("" if met else "  MISSED")
        )
        for other in others:
            against = ratio(first, other)
            met = against < 1.0
            ok &= met
            print(
                f"    / {other:<22} = {against:5.2f}x  (target < 1x)" + ("" if met else "  MISSED")
            )
    repeated = figures["ours, repeated (cache hit)"]
    met = repeated <= REPEATED_MICROS
    ok &= met
    print(
        f"  repeated = {repeated:.2f} µs  (target <= {REPEATED_MICROS} µs)"
        + ("" if met else "  MISSED")
    )
    return ok


def _keys(rng: random.Random, count: int) -> list[bytes]:
    return [rng.randbytes(32) for _ in range(count)]


class CacheAtSize:
    """The structures of one size, filled once; each method runs one batch and returns ns/op.

    ``value`` is one shared entry, so what is timed is the structure, not the making of claims.
    """

    def __init__(
        self,
        size: int,
        rng: random.Random,
        *,
        ring: KeyRing,
        policy: TokenPolicy,
        clock: FrozenClock,
        entry: Callable[[], _CacheEntry],
        tokens: list[list[str]],
        ops: int,
        rounds: int,
    ) -> None:
        self.size = size
        self.scope = _policy_fingerprint(policy)
        self.value = entry()
        self.cache = VerifiedTokenCache(size)
        for k in _keys(rng, size):
            self.cache.put(k, self.value)
        self.tokens = tokens
        # Hits through a verifier, of tokens drawn at random among `size` cached ones (of a
        # real token's length; only the drawn ones are kept as text).
        self.shared = VerifiedTokenCache(size)
        self.verifier = AccessTokenVerifier(
            ring, policy, clock=clock, sessions=MemorySessionStateStore(), cache=self.shared
        )
        prefix = tokens[0][0][: -len(f".{size:x}.{size:x}")]
        digests = []
        for i in range(size):
            digest = hashlib.sha256(self.scope + f"{prefix}.{i:x}.{size:x}".encode()).digest()
            digests.append(digest)
            self.shared.put(digest, entry())
        # A shard evicts at its own bound, so a full cache holds a little less than its size.
        held = [i for i, digest in enumerate(digests) if self.shared.get(digest) is not None]
        # The floor of a hit at this size: a plain dict of the same entries (the very objects
        # the cache holds), looked up by the same hashing of the same draws.
        self.plain = {digests[i]: self.shared.get(digests[i]) for i in held}
        del digests
        self.draws = [f"{prefix}.{rng.choice(held):x}.{size:x}" for _ in range(ops)]
        self.fresh = [_keys(rng, ops) for _ in range(rounds)]
        self.fifo: OrderedDict[bytes, object] = OrderedDict(
            (k, self.value) for k in _keys(rng, size)
        )
        self.lock = threading.Lock()
        self.worst_keys = [_keys(rng, ops) for _ in range(rounds)]

    @staticmethod
    def _timed(fn: Callable[[], None], count: int) -> float:
        t0 = time.thread_time()
        fn()
        return (time.thread_time() - t0) / count * 1e9

    def first_sight_work(self, round_: int) -> float:
        """Hash the token, miss, insert (evicting the oldest)."""
        batch, scope, value = self.tokens[round_], self.scope, self.value
        get, put, sha256 = self.cache.get, self.cache.put, hashlib.sha256

        def run() -> None:
            for token in batch:
                k = sha256(scope + token.encode("ascii")).digest()
                if get(k) is None:
                    put(k, value)

        return self._timed(run, len(batch))

    def hit_verify(self, round_: int) -> float:
        batch, verify = self.draws, self.verifier.verify

        def run() -> None:
            for token in batch:
                verify(token)

        return self._timed(run, len(batch))

    def plain_hit(self, round_: int) -> float:
        """A hit's floor: SHA-256 of the token, a plain dict's lookup, the entry's fields."""
        batch, scope, get, sha256 = self.draws, self.scope, self.plain.__getitem__, hashlib.sha256

        def run() -> None:
            for token in batch:
                entry = get(sha256(scope + token.encode("ascii")).digest())
                entry.claims.kid, entry.expires, entry.not_before  # noqa: B018 - the reads

        return self._timed(run, len(batch))

    def bare(self, round_: int) -> float:
        batch, value = self.fresh[round_], self.value
        get, put = self.cache.get, self.cache.put

        def run() -> None:
            for k in batch:
                get(k)
                put(k, value)

        return self._timed(run, len(batch))

    def ordered_dict(self, round_: int) -> float:
        batch, value, size, fifo, lock = (
            self.fresh[round_],
            self.value,
            self.size,
            self.fifo,
            self.lock,
        )
        get, pop = fifo.get, fifo.popitem

        def run() -> None:
            for k in batch:
                get(k)
                with lock:
                    fifo[k] = value
                    if len(fifo) > size:
                        pop(last=False)

        return self._timed(run, len(batch))

    def worst_put_ms(self) -> float:
        """The slowest single insert, in CPU time of this thread: the least of the slowest of
        each batch, so that a stall of the structure (which recurs in every batch) counts and a
        one-off pause of a shared virtual machine's host does not."""
        thread_time, put, value = time.thread_time, self.cache.put, self.value
        slowest = []
        for batch in self.worst_keys:
            worst = 0.0
            for k in batch:
                t0 = thread_time()
                put(k, value)
                worst = max(worst, thread_time() - t0)
            slowest.append(worst)
        return min(slowest) * 1e3


def cache_scaling(max_entries: int, ops: int, rounds: int = 3) -> bool:
    rng = random.Random(18)
    ring = KeyRing(SigningKey.generate(bits=2048))
    clock = FrozenClock(datetime.now(UTC))
    policy = TokenPolicy(issuer="https://api.bench.test", audience="bench")
    template = AccessTokenVerifier(
        ring, policy, clock=clock, sessions=MemorySessionStateStore(), cache=VerifiedTokenCache(1)
    )
    issued = AccessTokenIssuer(ring, policy, clock=clock).issue("u", session_id="s", epoch=0)
    claims = template.verify(issued.token)
    now = clock.now().timestamp()
    public = ring.verification_key(claims.kid)
    assert public is not None

    def entry() -> _CacheEntry:
        return _CacheEntry(claims, public, now - 1, now + 3600, -math.inf)

    sizes = sorted({size for size in SIZES if size < max_entries} | {max_entries})
    # Tokens of a real one's length, new to every cache (each size has a cache of its own).
    length = len(issued.token)
    tokens = [
        [f"{rng.getrandbits(128):032x}".ljust(length, "x") for _ in range(ops)]
        for _ in range(rounds)
    ]
    built = [
        CacheAtSize(
            size,
            rng,
            ring=ring,
            policy=policy,
            clock=clock,
            entry=entry,
            tokens=tokens,
            ops=ops,
            rounds=rounds,
        )
        for size in sizes
    ]
    names = ("first-sight work", "hit verify", "plain dict hit", "bare get+put", "OrderedDict")
    best: dict[int, list[float]] = {size: [math.inf] * len(names) for size in sizes}
    # Rounds interleave the sizes, so that a busy spell of the machine hits them all alike;
    # the fastest round of each figure is the least disturbed one.
    for round_ in range(rounds):
        for at in built:
            figures = (
                at.first_sight_work(round_),
                at.hit_verify(round_),
                at.plain_hit(round_),
                at.bare(round_),
                at.ordered_dict(round_),
            )
            best[at.size] = [min(a, b) for a, b in zip(best[at.size], figures, strict=True)]
    worst = {at.size: at.worst_put_ms() for at in built}
    del built
    gc.collect()

    print(f"verified-token cache, ns per operation (fastest of {rounds} rounds of {ops:,})")
    print(f"  {'entries':>9}  " + "  ".join(f"{name:>16}" for name in names) + "  worst put")
    for size in sizes:
        print(
            f"  {size:>9,}  "
            + "  ".join(f"{value:13.0f} ns" for value in best[size])
            + f"  {worst[size]:6.3f} ms"
        )
    ok = True
    first, last = sizes[0], sizes[-1]
    growth = [best[last][i] / best[first][i] for i in range(len(names))]
    for index, name in enumerate(names):
        held = index == 0  # the hit is held beyond its floor, below
        met = growth[index] <= FLATNESS
        if held:
            ok &= met
        target = f"(target <= {FLATNESS}x)" if held else "(for reference)"
        print(
            f"  {name} at {last:,} / at {first:,} = {growth[index]:4.2f}x  {target}"
            + ("  MISSED" if held and not met else "")
        )
    # A hit's own work is a few cache lines of a table of that size, which a plain dict misses
    # in main memory as much (its growth moves with the machine's memory from run to run):
    # what the cache may not add is growth beyond that floor, measured in the same rounds.
    beyond = growth[1] / growth[2]
    met = beyond <= FLATNESS
    ok &= met
    print(
        f"  hit verify beyond its floor (a plain dict hit) = {beyond:4.2f}x  "
        f"(target <= {FLATNESS}x)" + ("" if met else "  MISSED")
    )
    worst_ms = max(worst.values())
    met = worst_ms <= WORST_MS
    ok &= met
    print(
        f"  worst single insert = {worst_ms:.3f} ms  (target <= {WORST_MS} ms)"
        + ("" if met else "  MISSED")
    )
    for size in sizes:
        print(
            f"  bare cache / OrderedDict FIFO at {size:,} = {best[size][3] / best[size][4]:4.2f}x"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument(
        "--max-entries",
        type=int,
        default=200_000,
        help="largest cache size measured (1k, 10k, 100k, 1M up to it; default 200k to keep CI "
        "short, 1000000 for the full table)",
    )
    parser.add_argument("--ops", type=int, default=50_000, help="operations per cache batch")
    args = parser.parse_args()
    ok = verification(args.seconds)
    ok &= cache_scaling(args.max_entries, args.ops)
    print("  targets met" if ok else "  TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
