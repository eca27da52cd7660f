"""SQL stores of the accounts capability: password-reset and email-confirmation tokens, the
shared adapters on ``storno_records`` (namespaces ``password-reset`` and
``email-confirmation``). Import them from :mod:`storno_security.stores.sql`."""

from __future__ import annotations

import sqlalchemy as sa

from storno_security.stores._adapters import EmailConfirmations, ResetTokens
from storno_security.stores.sql._records import SqlRecords

__all__ = ["SqlEmailConfirmationStore", "SqlResetTokenStore"]


class SqlResetTokenStore(ResetTokens):
    """Password-reset token hashes in ``storno_records``."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(SqlRecords(engine))


class SqlEmailConfirmationStore(EmailConfirmations):
    """Email-confirmation token hashes in ``storno_records``."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(SqlRecords(engine))
