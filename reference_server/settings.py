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
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import attrs

from storno_security.integrations import env as parse

if TYPE_CHECKING:
    from storno_security.stores.sql import DatabaseTimeouts

__all__ = ["ENV_PREFIX", "SETTINGS_VARIABLES", "Settings", "SettingsError"]

ENV_PREFIX = "STORNO_"


class SettingsError(ValueError):
    """A setting is malformed, unknown or inconsistent; the message names the variable."""


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise SettingsError(f"{attribute.name} must be at least 1, got {value}")


def _seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 < value <= 3600:
        raise SettingsError(f"{attribute.name} must be 0 < seconds <= 3600, got {value}")


Network = parse.Network


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the server reads from its environment. Build with :meth:`from_env`."""

    data_dir: Path = attrs.field(default=Path("storno-data"), converter=Path)
    database_url: str | None = attrs.field(default=None, repr=lambda url: parse.masked_url(url))
    redis_url: str | None = attrs.field(default=None, repr=lambda url: parse.masked_url(url))
    redis_prefix: str = "storno:"
    ratelimit_uri: str | None = attrs.field(default=None, repr=lambda url: parse.masked_url(url))
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
    # deadlines (SRV-5): each dependency's, and one per request over them all
    request_timeout: float = attrs.field(default=10.0, validator=_seconds)
    max_in_flight: int = attrs.field(default=64, validator=_positive)
    db_connect_timeout: float = attrs.field(default=3.0, validator=_seconds)
    db_statement_timeout: float = attrs.field(default=5.0, validator=_seconds)
    db_lock_timeout: float = attrs.field(default=3.0, validator=_seconds)
    db_pool_size: int = attrs.field(default=10, validator=_positive)
    db_pool_timeout: float = attrs.field(default=3.0, validator=_seconds)
    redis_timeout: float = attrs.field(default=1.0, validator=_seconds)
    #: Unset: ``http://localhost:<port>`` when listening on a loopback or wildcard address.
    public_url: str = attrs.field(
        default=attrs.Factory(lambda self: _derived_public_url(self.host, self.port), True)
    )
    cors_origins: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    #: Unset: on when the public URL is localhost.
    demo_page: bool | None = None
    #: who may read ``/metrics``: loopback by default, ``()`` when off (``STORNO_METRICS``)
    metrics: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    log_format: str = "json"
    #: How long a request line may wait to be written with the next ones (0: at once).
    log_flush_ms: int = attrs.field(default=100, validator=attrs.validators.instance_of(int))

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
        for origin in self.cors_origins:
            if origin != _origin_of(origin):
                raise SettingsError(
                    f"STORNO_CORS_ORIGINS takes origins (scheme://host[:port]), got {origin!r}"
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
        if not 0 <= self.log_flush_ms <= 10_000:
            raise SettingsError(f"STORNO_LOG_FLUSH_MS must be 0 to 10000, got {self.log_flush_ms}")
        if self.log_format not in ("json", "text"):
            raise SettingsError(f"STORNO_LOG_FORMAT must be json or text, got {self.log_format!r}")
        if self.database_url is not None:
            try:
                parse.database_url(self.database_url)
            except ValueError as exc:
                raise SettingsError(f"STORNO_DATABASE_URL {exc}") from None
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
    def demo_page_on(self) -> bool:
        """Whether the demo page is served: the setting, else on for a localhost public URL."""
        return self.demo_page if self.demo_page is not None else self.is_local

    @property
    def is_local(self) -> bool:
        return urlsplit(self.public_url).hostname in _LOCAL_HOSTS

    def listen_mismatch(self) -> str | None:
        """One line when a localhost public URL is not the address ``serve`` listens on (a
        browser at the listening address would fail every passkey ceremony), else ``None``."""
        parts = urlsplit(self.public_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if not self.is_local or (port == self.port and self.host in _ANY_LOCAL):
            return None
        listening = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return (
            f"public URL {self.public_url} is not the listening address {listening}: passkeys "
            "and mailed links work only at the public URL (unset STORNO_PUBLIC_URL to follow "
            "--host and --port)"
        )

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

    def database_timeouts(self) -> DatabaseTimeouts:
        """The engine's :class:`~storno_security.stores.sql.DatabaseTimeouts`."""
        from storno_security.stores.sql import DatabaseTimeouts as Timeouts

        return Timeouts(
            connect=self.db_connect_timeout,
            statement=self.db_statement_timeout,
            lock=self.db_lock_timeout,
            pool_size=self.db_pool_size,
            max_overflow=max(1, self.db_pool_size // 2),
            pool_timeout=self.db_pool_timeout,
        )

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


_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_ANY_LOCAL = (*_LOCAL_HOSTS, "0.0.0.0", "::")  # noqa: S104 - names, nothing is bound here


def _derived_public_url(host: str, port: int) -> str:
    """``http://localhost:<port>`` for a loopback or wildcard ``host`` (WebAuthn takes no IP
    address as relying-party id); any other host needs its https URL named."""
    if host not in _ANY_LOCAL:
        raise SettingsError(f"STORNO_PUBLIC_URL must be set when listening on {host}")
    return f"http://localhost:{port}"


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def _metrics(raw: str) -> tuple[Network, ...]:
    value = raw.strip().lower()
    if value in ("off", "none", ""):
        return ()
    if value in ("localhost", "loopback"):
        return (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    return parse.networks(raw)


_PARSERS: dict[str, Callable[[str], object]] = {
    "data_dir": parse.required_text,
    "database_url": parse.text,
    "redis_url": parse.text,
    "redis_prefix": parse.required_text,
    "ratelimit_uri": parse.text,
    "public_url": parse.required_text,
    "token_issuer": parse.text,
    "token_audience": parse.required_text,
    "password_cost": parse.integer,
    "cookie_secure": parse.boolean,
    "trusted_proxies": parse.networks,
    "jwt_key_file": parse.path,
    "vault_key_file": parse.path,
    "xml_key_file": parse.path,
    "xml_cert_file": parse.path,
    "license_public_key_file": parse.path,
    "license_issuer": parse.required_text,
    "instance_id": parse.text,
    "google_client_id": parse.text,
    "email_sink": parse.required_text,
    "deletion_grace_days": parse.integer,
    "audit_retention_days": parse.integer,
    "api_fail_open": parse.boolean,
    "max_body_bytes": parse.integer,
    "host": parse.required_text,
    "port": parse.integer,
    "workers": parse.optional_integer,
    "request_timeout": parse.number,
    "max_in_flight": parse.integer,
    "db_connect_timeout": parse.number,
    "db_statement_timeout": parse.number,
    "db_lock_timeout": parse.number,
    "db_pool_size": parse.integer,
    "db_pool_timeout": parse.number,
    "redis_timeout": parse.number,
    "cors_origins": parse.words,
    "demo_page": parse.optional_boolean,
    "metrics": _metrics,
    "log_format": parse.required_text,
    "log_flush_ms": parse.integer,
}

#: Every environment variable the server reads.
SETTINGS_VARIABLES = frozenset(ENV_PREFIX + name.upper() for name in _PARSERS)
