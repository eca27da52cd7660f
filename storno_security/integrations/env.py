"""Parsers of environment-variable values for a server's settings: each takes the raw text and
returns the value or raises ``ValueError`` (the caller names the variable). Blank optional
values mean "not set"."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "Network",
    "boolean",
    "database_url",
    "integer",
    "masked_url",
    "missing_extra",
    "networks",
    "number",
    "optional_boolean",
    "optional_integer",
    "path",
    "required_text",
    "text",
    "words",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def masked_url(url: str | None) -> str:
    """A URL for ``repr``: any password replaced by ``***``."""
    if url is None:
        return "None"
    parts = urlsplit(url)
    if parts.password is None:
        return repr(url)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return repr(parts._replace(netloc=netloc).geturl())


def text(raw: str) -> str | None:
    """Stripped text, or ``None`` when blank."""
    return raw.strip() or None


def required_text(raw: str) -> str:
    """Stripped text that must not be blank."""
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def path(raw: str) -> Path | None:
    """A path, or ``None`` when blank."""
    return Path(raw) if raw.strip() else None


def integer(raw: str) -> int:
    """A decimal integer."""
    return int(raw.strip(), 10)


def number(raw: str) -> float:
    """A decimal number."""
    return float(raw.strip())


def optional_integer(raw: str) -> int | None:
    """A decimal integer, or ``None`` when blank."""
    return integer(raw) if raw.strip() else None


def boolean(raw: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off``, in any case."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def optional_boolean(raw: str) -> bool | None:
    """A :func:`boolean`, or ``None`` when blank."""
    return boolean(raw) if raw.strip() else None


def words(raw: str) -> tuple[str, ...]:
    """Comma-separated words, blanks dropped."""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def networks(raw: str) -> tuple[Network, ...]:
    """Comma-separated IP networks (host bits allowed)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip()
    )


def database_url(raw: str) -> str:
    """A SQLAlchemy URL of a supported database (SQLite, PostgreSQL, MySQL/MariaDB).

    Raises:
        ValueError: not a database URL, or another database; the message says which.
    """
    try:
        import sqlalchemy as sa
    except ImportError:  # pragma: no cover - the server extra brings SQLAlchemy
        raise ValueError("needs SQLAlchemy (the 'sql' extra)") from None
    try:
        parsed = sa.make_url(raw)
    except (sa.exc.ArgumentError, ValueError):
        raise ValueError("is not a database URL") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ValueError(
            f"must be SQLite, PostgreSQL or MySQL/MariaDB, not {parsed.get_backend_name()!r}"
        )
    return raw


#: The extra of this package that brings each optional module.
_EXTRAS = {
    "psycopg": "postgres",
    "pymysql": "mysql",
    "redis": "redis",
    "prometheus_client": "metrics",
    "falcon": "server",
    "gunicorn": "server",
    "uvicorn": "server",
    "uvicorn_worker": "server",
    "jsonschema": "server",
    "sqlalchemy": "sql",
    "aiosqlite": "async",
    "asyncmy": "async",
    "fastapi": "fastapi",
    "flask": "flask",
    "facturx": "xml-schemas",
}


def missing_extra(exc: ModuleNotFoundError) -> str:
    """One line naming the extra that brings the missing module."""
    top = (exc.name or "").split(".")[0]
    extra = _EXTRAS.get(top, "server")
    return (
        f"the Python module {top!r} is missing: install the '{extra}' extra "
        f"(pip install 'storno-security[{extra}]')"
    )
