"""In-memory stores: thread-safe, per process, for tests, single-process apps and defaults.

Each "exactly once" operation runs under one lock, so it is atomic among the threads of one
process. State is lost on restart and is not shared between processes: use the SQL or Redis
stores when several workers serve the same users.
"""

from storno_security.stores.memory.accounts import (
    MemoryEmailConfirmationStore,
    MemoryResetTokenStore,
)
from storno_security.stores.memory.api_keys import MemoryApiKeyStore
from storno_security.stores.memory.audit import MemoryAuditStore
from storno_security.stores.memory.directory import MemoryDirectoryStore
from storno_security.stores.memory.license import MemoryLastSeenStore
from storno_security.stores.memory.mfa import (
    MemoryBackupCodeStore,
    MemoryMfaChallengeStore,
    MemoryMfaFailureStore,
    MemoryStepUpStore,
    MemoryTotpReplayStore,
)
from storno_security.stores.memory.passkeys import (
    MemoryPasskeyChallengeStore,
    MemoryPasskeyCredentialStore,
)
from storno_security.stores.memory.ratelimit import MemoryRateLimitStorage
from storno_security.stores.memory.tokens import MemoryRefreshFamilyStore, MemorySessionStateStore

__all__ = [
    "MemoryApiKeyStore",
    "MemoryAuditStore",
    "MemoryBackupCodeStore",
    "MemoryDirectoryStore",
    "MemoryEmailConfirmationStore",
    "MemoryLastSeenStore",
    "MemoryMfaChallengeStore",
    "MemoryMfaFailureStore",
    "MemoryPasskeyChallengeStore",
    "MemoryPasskeyCredentialStore",
    "MemoryRateLimitStorage",
    "MemoryRefreshFamilyStore",
    "MemoryResetTokenStore",
    "MemorySessionStateStore",
    "MemoryStepUpStore",
    "MemoryTotpReplayStore",
]

from storno_security.stores.memory._bundle import memory_bundle

__all__ += ["memory_bundle"]
