"""The kit: every flow that joins two capabilities, as one object."""

from __future__ import annotations

from storno_security.kit.admin import AdminFlows

__all__ = ["Kit"]


class Kit(AdminFlows):
    """The account and session flows of the library, built from one policy, one key set and
    one store bundle (see :mod:`storno_security.kit`).

    Args:
        stores: every store (``memory_bundle()``, ``sql_bundle(engine, redis=...)``).
        policy: the policies (:class:`~storno_security.kit.KitPolicy`).
        keys: the secret keys (:class:`~storno_security.kit.KitKeys`).
        clock: the time source (default: the system clock).
        events: a sink that gets every security event besides the audit log (logs, metrics).
        mailer: delivers confirmation, reset and invitation mail (default: none sent).
        defer: runs work that must not show in an answer's timing (default: at once).
        google: verifies Google ID tokens (default: Google sign-in off).
        companies: finds a company by id for ``X-Company`` (default: no company scoping).
        rate_limits: the rate-limit policies by name (default: the spec's, RL-1, RL-2).

    Raises:
        TypeError: an argument is not of its type.

    Thread-safe: every flow is a sequence of atomic store operations.
    """

    def __repr__(self) -> str:
        return f"Kit(issuer={self.policy.tokens.issuer!r}, stores={type(self.directory).__name__})"
