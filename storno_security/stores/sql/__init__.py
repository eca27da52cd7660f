"""SQL stores over SQLAlchemy 2 Core: SQLite, PostgreSQL and MariaDB/MySQL.

Needs the ``sql`` extra, plus a driver (the ``postgres`` or ``mysql`` extra) for a server.

* :func:`create_engine` makes an engine set up for these stores: on SQLite, WAL, a 30 s busy
  timeout, foreign keys, and ``BEGIN IMMEDIATE`` for writes, so that writers in several processes
  queue instead of failing; on servers, ``pool_pre_ping``, and ``READ COMMITTED`` on MariaDB and
  MySQL (as PostgreSQL has by default) so that a conditional ``UPDATE`` takes no shared locks on
  the rows its sub-query reads.
* :func:`add_direct_read_hooks` lets what watches an engine's statements (a request deadline)
  see the stores' one-statement hot reads too, which go straight to a kept DBAPI connection.
* :func:`read_transaction` gives an application sharing the engine a read-only snapshot that
  takes no write lock (a deferred ``BEGIN`` on SQLite).
* :data:`metadata` and :func:`create_schema` define and create the ``storno_`` tables
  (and record their version in ``storno_schema_versions``).
* :class:`SqlRefreshFamilyStore` and :class:`SqlSessionStateStore` implement
  :class:`~storno_security.tokens.storage.RefreshFamilyStore` and
  :class:`~storno_security.tokens.storage.SessionStateStore`.
* :class:`SqlDirectoryStore` implements :class:`~storno_security.kit.DirectoryStore`;
  :class:`SqlAccountOverviewStore` reads a user's own records of it in one ``SELECT``.
* :class:`SqlAuditStore` implements :class:`~storno_security.audit.AuditStore`.
* :class:`SqlLastSeenStore` implements :class:`~storno_security.license.storage.LastSeenStore`.
* :class:`SqlResetTokenStore` implements :class:`~storno_security.accounts.ResetTokenStore`.
* :class:`SqlApiKeyStore` implements :class:`~storno_security.api_keys.ApiKeyStore`.
* :class:`SqlTotpReplayStore`, :class:`SqlBackupCodeStore`, :class:`SqlMfaChallengeStore`,
  :class:`SqlStepUpStore` and :class:`SqlMfaFailureStore` implement the MFA protocols of
  :mod:`storno_security.mfa.storage`.
* :class:`SqlPasskeyChallengeStore` and :class:`SqlPasskeyCredentialStore` implement
  :class:`~storno_security.passkeys.storage.PasskeyChallengeStore` and
  :class:`~storno_security.passkeys.storage.PasskeyCredentialStore`.

Every method is one transaction. Every "exactly once" is a conditional ``UPDATE`` whose row
count says who won; nothing is decided on a value read earlier. Times are stored as naive UTC
(``DATETIME(6)`` on MariaDB/MySQL, so microseconds survive) and come back as aware UTC. Ids and
hashes compare exactly (byte for byte) on every backend: on MariaDB/MySQL they are stored as
``VARBINARY``, because the default collations there ignore case and trailing spaces.

Errors never leak a SQLAlchemy or driver exception: an unreachable or failing backend raises
:class:`~storno_security.errors.StoreUnavailableError`, a row the library cannot have written
raises :class:`~storno_security.errors.CorruptRecordError`, anything else
:class:`~storno_security.errors.StoreError`. The engine hides bound parameters in its error
messages unless told otherwise (``hide_parameters=False``).
"""

from storno_security.stores.sql._base import (
    SCHEMA_VERSION,
    add_direct_read_hooks,
    create_engine,
    metadata,
    read_transaction,
    schema_version,
    schema_versions,
)
from storno_security.stores.sql._migrate import create_schema
from storno_security.stores.sql._records import record_locks, records
from storno_security.stores.sql._timeouts import (
    DatabaseTimeouts,
    apply_sqlite_timeouts,
    timeout_options,
)
from storno_security.stores.sql.accounts import SqlEmailConfirmationStore, SqlResetTokenStore
from storno_security.stores.sql.api_keys import SqlApiKeyStore, api_keys
from storno_security.stores.sql.audit import SqlAuditStore, audit_events
from storno_security.stores.sql.directory import (
    SqlDirectoryStore,
    invitations,
    memberships,
    organizations,
    users,
)
from storno_security.stores.sql.license import SqlLastSeenStore
from storno_security.stores.sql.mfa import (
    SqlBackupCodeStore,
    SqlMfaChallengeStore,
    SqlMfaFailureStore,
    SqlStepUpStore,
    SqlTotpReplayStore,
    mfa_backup_code_sets,
    mfa_backup_codes,
)
from storno_security.stores.sql.overview import SqlAccountOverviewStore
from storno_security.stores.sql.passkeys import (
    SqlPasskeyChallengeStore,
    SqlPasskeyCredentialStore,
    passkey_credentials,
    passkey_user_handles,
)
from storno_security.stores.sql.tokens import (
    SqlRefreshFamilyStore,
    SqlSessionStateStore,
    refresh_families,
    refresh_tokens,
)

__all__ = [
    "SCHEMA_VERSION",
    "DatabaseTimeouts",
    "SqlAccountOverviewStore",
    "SqlApiKeyStore",
    "SqlAuditStore",
    "SqlBackupCodeStore",
    "SqlDirectoryStore",
    "SqlEmailConfirmationStore",
    "SqlLastSeenStore",
    "SqlMfaChallengeStore",
    "SqlMfaFailureStore",
    "SqlPasskeyChallengeStore",
    "SqlPasskeyCredentialStore",
    "SqlRefreshFamilyStore",
    "SqlResetTokenStore",
    "SqlSessionStateStore",
    "SqlStepUpStore",
    "SqlTotpReplayStore",
    "add_direct_read_hooks",
    "api_keys",
    "apply_sqlite_timeouts",
    "audit_events",
    "create_engine",
    "create_schema",
    "invitations",
    "memberships",
    "metadata",
    "mfa_backup_code_sets",
    "mfa_backup_codes",
    "organizations",
    "passkey_credentials",
    "passkey_user_handles",
    "read_transaction",
    "record_locks",
    "records",
    "refresh_families",
    "refresh_tokens",
    "schema_version",
    "schema_versions",
    "timeout_options",
    "users",
]

from storno_security.stores.sql._bundle import sql_bundle

__all__ += ["sql_bundle"]
