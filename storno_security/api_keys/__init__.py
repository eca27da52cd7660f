"""API keys: ``af_`` keys with a public id, a 256-bit secret and a checksum; stored as SHA-256
only; nested scopes; expiry; immediate revocation; ``last_used_at`` without a write per request
(KEY-1, KEY-2, KEY-3, KEY-5).

Typical wiring::

    manager = ApiKeyManager(MemoryApiKeyStore(), clock=SystemClock())
    created = manager.create("user-1", "org-1", name="CI", scope="read")
    print(created.key)  # shown once
    principal = manager.verify(request.headers["Authorization"])
"""

from storno_security.api_keys.format import (
    API_KEY_PREFIX,
    CHECKSUM_LENGTH,
    KEY_ID_LENGTH,
    KEY_LENGTH,
    LEGACY_KEY_ID_PREFIX,
    LEGACY_KEY_LENGTH,
    SECRET_LENGTH,
    GeneratedApiKey,
    ParsedApiKey,
    generate_api_key,
    hash_api_key,
    is_legacy_key_id,
    legacy_key_id,
    parse_api_key,
)
from storno_security.api_keys.manager import ApiKeyEvent, ApiKeyManager, CreatedApiKey
from storno_security.api_keys.policy import ApiKeyPolicy
from storno_security.api_keys.principal import ApiKeyPrincipal
from storno_security.api_keys.scopes import (
    API_KEY_FORBIDDEN_FAMILIES,
    ApiKeyScope,
    is_forbidden_for_api_keys,
)
from storno_security.api_keys.storage import ApiKeyInfo, ApiKeyRecord, ApiKeyStore

__all__ = [
    "API_KEY_FORBIDDEN_FAMILIES",
    "API_KEY_PREFIX",
    "CHECKSUM_LENGTH",
    "KEY_ID_LENGTH",
    "KEY_LENGTH",
    "LEGACY_KEY_ID_PREFIX",
    "LEGACY_KEY_LENGTH",
    "SECRET_LENGTH",
    "ApiKeyEvent",
    "ApiKeyInfo",
    "ApiKeyManager",
    "ApiKeyPolicy",
    "ApiKeyPrincipal",
    "ApiKeyRecord",
    "ApiKeyScope",
    "ApiKeyStore",
    "CreatedApiKey",
    "GeneratedApiKey",
    "ParsedApiKey",
    "generate_api_key",
    "hash_api_key",
    "is_forbidden_for_api_keys",
    "is_legacy_key_id",
    "legacy_key_id",
    "parse_api_key",
]
