"""Offline licenses: signed license JWTs verified with public keys only (LIC-1..LIC-4).

Vendor side::

    key = LicenseSigningKey.generate()            # Ed25519 (EdDSA); or "RS256"
    issuer = LicenseIssuer(key, issuer="https://vendor.example", clock=SystemClock())
    issued = issuer.issue("org-42", org_name="ACME SRL", plan="business",
                          features=["efactura", "xml_sign"], max_companies=5, max_users=20,
                          valid_for=timedelta(days=365))
    embed(key.public.public_pem())                # into the application

Customer side, no network::

    verifier = LicenseVerifier([LicenseKey.from_pem(VENDOR_PEM)],
                               LicensePolicy(issuer="https://vendor.example", free_plan=FREE),
                               clock=SystemClock(), last_seen=SqlLastSeenStore(engine))
    status = verifier.verify(token, expected_organization_id=org_id)  # sub must be org_id
    # InvalidLicenseError if not a genuine license of org_id
    status.entitlements                           # what to enforce: the license, or FREE
"""

from storno_security.license._claims import LICENSE_TYPE
from storno_security.license.issue import IssuedLicense, LicenseIssuer
from storno_security.license.keys import (
    LICENSE_ALGORITHMS,
    MIN_RSA_BITS,
    LicenseAlgorithm,
    LicenseKey,
    LicenseSigningKey,
)
from storno_security.license.model import Entitlements, License, LicenseState, LicenseStatus
from storno_security.license.policy import LicensePolicy
from storno_security.license.storage import LastSeenStore
from storno_security.license.verify import LicenseVerifier

__all__ = [
    "LICENSE_ALGORITHMS",
    "LICENSE_TYPE",
    "MIN_RSA_BITS",
    "Entitlements",
    "IssuedLicense",
    "LastSeenStore",
    "License",
    "LicenseAlgorithm",
    "LicenseIssuer",
    "LicenseKey",
    "LicensePolicy",
    "LicenseSigningKey",
    "LicenseState",
    "LicenseStatus",
    "LicenseVerifier",
]
