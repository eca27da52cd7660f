"""The Falcon WSGI application: the kit's HTTP routes (``storno_security.integrations.falcon``)
and the server's own resources over one :class:`Server`."""

from __future__ import annotations

import logging

from reference_server.resources import MODULES
from reference_server.settings import Settings
from reference_server.wiring import Server, build_server
from storno_security.integrations.falcon.app import build_app
from storno_security.integrations.falcon.routing import Api, ApiOptions, WsgiApp
from storno_security.integrations.keyholders import register_holder
from storno_security.integrations.observability import configure_json_logging

__all__ = ["create_app", "create_app_from_env"]


def create_app(settings: Settings | None = None, *, server: Server | None = None) -> WsgiApp:
    """Build the application. ``server`` (tests) wins over ``settings``.

    Raises:
        reference_server.settings.SettingsError: a setting is malformed.
        storno_security.integrations.keyfiles.KeyFileError: a key file is unusable.
        storno_security.errors.StoreUnavailableError: the database or Redis is unreachable.
    """
    if server is None:
        server = build_server(settings or Settings.from_env())
    options = ApiOptions(
        public_url=server.settings.public_url,
        cookie_secure=server.settings.cookie_secure,
        max_body_bytes=server.settings.max_body_bytes,
        trusted_proxies=server.settings.trusted_proxies,
        title="storno-security reference server",
    )
    api = Api(kit=server.kit, options=options, state=server, observer=server.observer)
    return build_app(api, MODULES)


def create_app_from_env() -> WsgiApp:
    """Entry point for gunicorn: ``gunicorn 'reference_server.app:create_app_from_env()'``."""
    settings = Settings.from_env()
    if settings.log_format == "json":
        configure_json_logging()
    else:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
    server = build_server(settings)
    if settings.vault_key_file is None:  # `vault retire-old` waits for this process to go
        register_holder(settings.data_dir / "keys" / "vault", server.keys.vault.active_kid)
    return create_app(server=server)
