"""PW-4 measured: a login for an unknown user costs what a wrong password costs.

Prints the median time of ``verify(wrong, stored)`` for a real account and of
``verify(any, None)`` for an unknown one, under the same policy, interleaved in one run, and
their ratio (target: within 5 % of 1.0).

Run: python bench/passwords.py [--cost 12] [--rounds 15]
"""

from __future__ import annotations

import argparse
import contextlib

from _common import interleaved

from storno_security.errors import InvalidPasswordError
from storno_security.passwords import PasswordHasher, PasswordPolicy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    policy = PasswordPolicy(cost=args.cost, insecure_low_cost=args.cost < 10)
    hasher = PasswordHasher(policy)
    stored = hasher.hash("the real password of a real user")

    def known() -> None:
        with contextlib.suppress(InvalidPasswordError):
            hasher.verify("a wrong password guess", stored)

    def unknown() -> None:
        with contextlib.suppress(InvalidPasswordError):
            hasher.verify("a wrong password guess", None)

    ms = interleaved({"known": known, "unknown": unknown}, args.rounds)
    k, u = ms["known"], ms["unknown"]
    print(f"bcrypt cost {args.cost}, {args.rounds} interleaved rounds")
    print(f"  wrong password, known user  {k:8.2f} ms")
    print(f"  unknown user (dummy hash)   {u:8.2f} ms")
    ratio = u / k
    print(f"  unknown / known = {ratio:.3f}  (target 0.95 .. 1.05)")
    return 0 if 0.95 <= ratio <= 1.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
