"""HTTP resources, one module per area. Each module has ``register(app, services)`` and
``OPENAPI_PATHS`` (its part of ``/openapi.json``)."""

from __future__ import annotations

from types import ModuleType

from reference_server.resources import (
    account,
    auth,
    meta,
    password_reset,
    secure_data,
    tenancy,
)

__all__ = ["MODULES"]

#: Every resource module, in the order their routes are added.
MODULES: tuple[ModuleType, ...] = (meta, auth, password_reset, account, tenancy, secure_data)
