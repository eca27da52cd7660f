"""The kit's policy: one value, checked when it is made (ACC-4, MFA-1)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storno_security.kit import KitPolicy


@pytest.mark.spec("ACC-4")
def test_the_deletion_grace_outlasts_the_access_tokens() -> None:
    # an access token lives 1 hour, with 30 s of leeway: the purge must not forget the
    # session epoch that keeps a deleted account's tokens dead before they expire
    enough = timedelta(hours=1, seconds=30)
    policy = KitPolicy.for_api(issuer="https://api.example.eu", audience="a", deletion_grace=enough)
    assert policy.deletion_grace == enough
    with pytest.raises(ValueError, match="deletion_grace must outlast the access tokens"):
        KitPolicy.for_api(
            issuer="https://api.example.eu",
            audience="a",
            deletion_grace=enough - timedelta(seconds=1),
        )


@pytest.mark.parametrize("issuer", ["", "i" * 65, "Acme:EU", 7, None])
def test_the_totp_issuer_is_a_short_label_without_a_colon(issuer: object) -> None:
    assert KitPolicy.for_api(issuer="https://x.eu", audience="a", totp_issuer="i" * 64)
    with pytest.raises(ValueError, match="totp_issuer must be 1 to 64 characters without ':'"):
        KitPolicy.for_api(issuer="https://x.eu", audience="a", totp_issuer=issuer)
