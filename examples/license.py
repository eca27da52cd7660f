"""Offline licenses: the vendor signs, the installed application verifies with a public key only.

A frozen clock plays the customer's machine clock, so the example can jump a year ahead (expiry
and grace) and then set the clock back, as a customer avoiding renewal might.

Run: python examples/license.py
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storno_security import FrozenClock, InvalidLicenseError
from storno_security.license import (
    Entitlements,
    LicenseIssuer,
    LicenseKey,
    LicensePolicy,
    LicenseSigningKey,
    LicenseVerifier,
)
from storno_security.stores.memory import MemoryLastSeenStore

VENDOR = "https://licensing.example"
FREE = Entitlements(plan="free", max_companies=1, max_users=1)


def main() -> None:
    clock = FrozenClock(datetime(2026, 1, 15, 10, 0, tzinfo=UTC))

    # --- Vendor side: a fresh Ed25519 key; the private half never leaves the vendor. -------
    signing_key = LicenseSigningKey.generate()
    public_pem = signing_key.public.public_pem()  # shipped inside the application
    issuer = LicenseIssuer(signing_key, issuer=VENDOR, clock=clock)
    issued = issuer.issue(
        "org-42",
        org_name="ACME SRL",
        plan="business",
        features=["efactura", "xml_sign"],
        max_companies=5,
        max_users=20,
        valid_for=timedelta(days=365),
    )
    lic = issued.license  # send issued.token (a signed JWT) to the customer
    print(f"license for {lic.org_name} ({lic.organization_id}) until {lic.expires_at:%Y-%m-%d}")

    # --- Customer side: no network; the public key, a policy and a last-seen store. ---------
    # MemoryLastSeenStore forgets with the process; a real installation uses SqlLastSeenStore
    # so that the last verified time survives restarts (that is what catches a clock set back).
    verifier = LicenseVerifier(
        [LicenseKey.from_pem(public_pem)],
        LicensePolicy(issuer=VENDOR, free_plan=FREE),
        clock=clock,
        last_seen=MemoryLastSeenStore(),
    )

    def check() -> str:
        status = verifier.verify(issued.token, expected_organization_id="org-42")
        # entitlements is None only when the policy has no free plan; this one has FREE.
        plan = status.entitlements.plan if status.entitlements is not None else "none"
        line = f"{status.state.value}, plan {plan}"
        if status.in_grace:
            line += f", renew before {status.grace_ends_at:%Y-%m-%d}"
        if status.clock_rollback:
            line += ", clock_rollback=True"
        return line

    print("today:", check())

    # A year and a week later: expired, but within the 14-day grace period it still counts.
    clock.advance(timedelta(days=372))
    print("after expiry:", check())

    # Past the grace period, the application falls back to the free plan (never an error).
    clock.advance(timedelta(days=10))
    print("after grace:", check())

    # The customer sets the machine clock back two months. The license is judged at the last
    # verified time instead, so nothing is revived, and the rollback is reported.
    clock.advance(timedelta(days=-60))
    print("clock set back:", check())

    # Another organization in the same installation cannot use ACME's license.
    try:
        verifier.verify(issued.token, expected_organization_id="org-99")
    except InvalidLicenseError as exc:
        print("org-99 presenting org-42's license:", exc, f"(reason: {exc.reason})")


if __name__ == "__main__":
    main()
