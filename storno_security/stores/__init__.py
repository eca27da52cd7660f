"""Store implementations of the capability storage protocols.

* :mod:`storno_security.stores.memory`: thread-safe, in-process; the default and the reference
  semantics for the contract tests.
* :mod:`storno_security.stores.sql`: SQLAlchemy 2 (SQLite, PostgreSQL, MariaDB/MySQL); needs the
  ``sql`` extra plus a driver (``postgres`` or ``mysql`` extra).
* :mod:`storno_security.stores.redis`: redis-py; needs the ``redis`` extra.

Importing this package imports neither SQLAlchemy nor redis-py: only importing
``storno_security.stores.sql`` or ``storno_security.stores.redis`` does, so an application pulls
in what it uses.
"""

from storno_security.stores._ratelimit_uri import storage_from_uri

__all__ = ["storage_from_uri"]
