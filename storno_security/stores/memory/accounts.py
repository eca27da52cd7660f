"""In-memory password-reset and email-confirmation token stores: the shared adapters on
in-memory records (one lock per store), for tests, single-process apps and defaults."""

from __future__ import annotations

from storno_security.stores._adapters import EmailConfirmations, ResetTokens
from storno_security.stores.memory._records import MemoryRecords

__all__ = ["MemoryEmailConfirmationStore", "MemoryResetTokenStore"]


class MemoryResetTokenStore(ResetTokens):
    """Password-reset token hashes on in-memory records."""

    def __init__(self) -> None:
        super().__init__(MemoryRecords())


class MemoryEmailConfirmationStore(EmailConfirmations):
    """Email-confirmation token hashes on in-memory records."""

    def __init__(self) -> None:
        super().__init__(MemoryRecords())
