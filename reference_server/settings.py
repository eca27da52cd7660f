"""Server settings: environment variables with a ``STORNO_`` prefix, secure defaults.

Every setting has a default that runs a single-host server: SQLite in the data directory,
in-memory rate limits, keys generated on first run. Each variable is documented in
``docs/server.md``; an unknown ``STORNO_`` variable is refused, so a typo never silently leaves
a default in place.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import attrs

__all__ = ["ENV_PREFIX", "SETTINGS_VARIABLES", "Settings", "SettingsError"]

ENV_PREFIX = "STORNO_"


class SettingsError(ValueError):
    """A setting is malformed, unknown or inconsistent; the message names the variable."""


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise SettingsError(f"{attribute.name} must be at least 1, got {value}")


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the server reads from its environment. Build with :meth:`from_env`."""

    data_dir: Path = attrs.field(default=Path("storno-data"), converter=Path)
    database_url: str | None = attrs.field(default=None, repr=lambda url: _masked(url))
    redis_url: str | None = attrs.field(default=None, repr=lambda url: _masked(url))
    redis_prefix: str = "storno:"
    ratelimit_uri: str | None = attrs.field(default=None, repr=lambda url: _masked(url))
    public_url: str = "http://localhost:8000"
    token_issuer: str | None = None
    token_audience: str = "storno-api"  # noqa: S105 - an audience, not a secret
    password_cost: int = 12
    cookie_secure: bool = True
    trusted_proxies: tuple[Network, ...] = ()
    jwt_key_file: Path | None = None
    vault_key_file: Path | None = None
    xml_key_file: Path | None = None
    xml_cert_file: Path | None = None
    license_public_key_file: Path | None = None
    license_issuer: str = "https://license.storno.example"
    instance_id: str | None = None
    google_client_id: str | None = None
    email_sink: str = "log"
    deletion_grace_days: int = attrs.field(default=30, validator=_positive)
    audit_retention_days: int = attrs.field(default=183, validator=_positive)
    api_fail_open: bool = False
    max_body_bytes: int = attrs.field(default=1_048_576, validator=_positive)
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8000, validator=_positive)
    workers: int | None = None
    #: who may read ``/metrics``: loopback by default, ``()`` when off (``STORNO_METRICS``)
    metrics: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    log_format: str = "json"

    def __attrs_post_init__(self) -> None:
        parts = urlsplit(self.public_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(
                f"STORNO_PUBLIC_URL must be an http(s) URL, got {self.public_url!r}"
            )
        if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
            raise SettingsError(
                "STORNO_PUBLIC_URL must use https except on localhost "
                "(WebAuthn and Secure cookies need a secure origin)"
            )
        if self.email_sink not in ("log", "memory", "directory"):
            raise SettingsError(
                f"STORNO_EMAIL_SINK must be log, memory or directory, got {self.email_sink!r}"
            )
        if not 4 <= self.password_cost <= 31:
            raise SettingsError(f"STORNO_PASSWORD_COST must be 4..31, got {self.password_cost}")
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme == "https" and not self.cookie_secure:
            raise SettingsError(
                "STORNO_COOKIE_SECURE=false is refused with an https STORNO_PUBLIC_URL: the "
                "refresh cookie would travel over plain http"
            )
        if self.password_cost < 10 and not local:
            raise SettingsError(
                f"STORNO_PASSWORD_COST={self.password_cost} is below 10: allowed only with a "
                "localhost STORNO_PUBLIC_URL (tests and development)"
            )
        for network in self.trusted_proxies:
            if network.prefixlen == 0:
                raise SettingsError(
                    f"STORNO_TRUSTED_PROXIES={network} would let every client choose its "
                    "address (and rate-limit bucket): name your proxies"
                )
        for network in self.metrics:
            if network.prefixlen == 0:
                raise SettingsError(
                    f"STORNO_METRICS={network} would show the metrics to everyone: name the "
                    "networks of your scrapers"
                )
        if self.log_format not in ("json", "text"):
            raise SettingsError(f"STORNO_LOG_FORMAT must be json or text, got {self.log_format!r}")
        if self.database_url is not None:
            _check_database_url(self.database_url)
        if (self.xml_key_file is None) != (self.xml_cert_file is None):
            raise SettingsError("STORNO_XML_KEY_FILE and STORNO_XML_CERT_FILE go together")

    # -- derived values ------------------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        """The SQLAlchemy URL: the setting, or a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'storno.db').resolve()}"

    @property
    def effective_ratelimit_uri(self) -> str:
        """Rate-limit storage: the setting, else Redis when configured, else memory."""
        if self.ratelimit_uri:
            return self.ratelimit_uri
        return self.redis_url or "memory://"

    @property
    def effective_token_issuer(self) -> str:
        """The ``iss`` of access tokens: the setting, else the public URL."""
        return self.token_issuer or self.public_url.rstrip("/")

    @property
    def origin(self) -> str:
        """The browser origin of the public URL (scheme://host[:port]), for WebAuthn."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def rp_id(self) -> str:
        """The WebAuthn relying-party id: the host of the public URL."""
        host = urlsplit(self.public_url).hostname
        assert host is not None  # checked in __attrs_post_init__
        return host

    @property
    def deletion_grace(self) -> timedelta:
        return timedelta(days=self.deletion_grace_days)

    @property
    def shares_state_across_processes(self) -> bool:
        """Whether rate limits hold across processes (and so more than one worker is safe)."""
        return not self.effective_ratelimit_uri.startswith("memory://")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read ``STORNO_*`` variables; keyword ``overrides`` win over the environment.

        Raises:
            SettingsError: a value is malformed or a ``STORNO_`` variable is unknown.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for key, raw in env.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key[len(ENV_PREFIX) :].lower()
            parse = _PARSERS.get(name)
            if parse is None:
                known = ", ".join(sorted(SETTINGS_VARIABLES))
                raise SettingsError(f"unknown setting {key}; known settings: {known}")
            try:
                values[name] = parse(raw)
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"{key}: {exc}") from None
        values.update(overrides)
        try:
            return cls(**values)  # type: ignore[arg-type]
        except SettingsError:
            raise
        except (TypeError, ValueError) as exc:
            raise SettingsError(str(exc)) from None


def _masked(url: str | None) -> str:
    """A URL for ``repr``: any password replaced by ``***``."""
    if url is None:
        return "None"
    parts = urlsplit(url)
    if parts.password is None:
        return repr(url)
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return repr(parts._replace(netloc=netloc).geturl())


def _check_database_url(url: str) -> None:
    try:
        import sqlalchemy as sa
    except ImportError:  # pragma: no cover - the server extra brings SQLAlchemy
        raise SettingsError("STORNO_DATABASE_URL needs SQLAlchemy (the 'server' extra)") from None
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise SettingsError("STORNO_DATABASE_URL is not a database URL") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise SettingsError(
            "STORNO_DATABASE_URL must be SQLite, PostgreSQL or MySQL/MariaDB, "
            f"not {parsed.get_backend_name()!r}"
        )


def _text(raw: str) -> str | None:
    return raw.strip() or None


def _required_text(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _path(raw: str) -> Path | None:
    return Path(raw) if raw.strip() else None


def _int(raw: str) -> int:
    return int(raw.strip(), 10)


def _optional_int(raw: str) -> int | None:
    return _int(raw) if raw.strip() else None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _networks(raw: str) -> tuple[Network, ...]:
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in raw.split(",") if part.strip()
    )


def _metrics(raw: str) -> tuple[Network, ...]:
    value = raw.strip().lower()
    if value in ("off", "none", ""):
        return ()
    if value in ("localhost", "loopback"):
        return (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    return _networks(raw)


_PARSERS: dict[str, Callable[[str], object]] = {
    "data_dir": _required_text,
    "database_url": _text,
    "redis_url": _text,
    "redis_prefix": _required_text,
    "ratelimit_uri": _text,
    "public_url": _required_text,
    "token_issuer": _text,
    "token_audience": _required_text,
    "password_cost": _int,
    "cookie_secure": _bool,
    "trusted_proxies": _networks,
    "jwt_key_file": _path,
    "vault_key_file": _path,
    "xml_key_file": _path,
    "xml_cert_file": _path,
    "license_public_key_file": _path,
    "license_issuer": _required_text,
    "instance_id": _text,
    "google_client_id": _text,
    "email_sink": _required_text,
    "deletion_grace_days": _int,
    "audit_retention_days": _int,
    "api_fail_open": _bool,
    "max_body_bytes": _int,
    "host": _required_text,
    "port": _int,
    "workers": _optional_int,
    "metrics": _metrics,
    "log_format": _required_text,
}

#: Every environment variable the server reads.
SETTINGS_VARIABLES = frozenset(ENV_PREFIX + name.upper() for name in _PARSERS)
