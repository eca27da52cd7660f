"""Wiring: the kit and everything else the server uses, built once per process from
:class:`Settings`.

State lives in SQL (SQLite by default; PostgreSQL or MariaDB by URL). With ``STORNO_REDIS_URL``
the short-lived shared state (challenges, replay guards, markers, counters) and the rate limits
go to Redis, so several workers or hosts share them; the session epochs stay where they
persist.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import attrs

from reference_server.data import ServerData
from reference_server.mail import (
    DirectoryEmailSink,
    EmailSink,
    KitMailer,
    LogEmailSink,
    MemoryEmailSink,
)
from reference_server.settings import Settings
from storno_security.audit import AuditPolicy
from storno_security.clock import Clock, SystemClock
from storno_security.errors import InvalidLicenseError
from storno_security.integrations._common import ApiError
from storno_security.integrations.deadline import RequestDeadlines
from storno_security.integrations.keyfiles import KeyMaterial, load_key_material
from storno_security.integrations.observability import Metrics, MetricsAccess, Observer
from storno_security.kit import Kit, KitKeys, KitPolicy, Purge
from storno_security.license import Entitlements, LicenseKey, LicensePolicy, LicenseVerifier
from storno_security.mfa import MfaPolicy
from storno_security.oidc import (
    CachingJwksFetcher,
    GoogleIdTokenPolicy,
    GoogleIdTokenVerifier,
    JwksFetcher,
)
from storno_security.passkeys import PasskeyPolicy
from storno_security.passwords import PasswordPolicy
from storno_security.ratelimit import spec_policies
from storno_security.stores import sql
from storno_security.tokens import TokenPolicy
from storno_security.xmlsig import SchemaRegistry, XmlSigner, XmlVerifier

__all__ = ["FREE_PLAN", "GOOGLE_JWKS_URL", "Server", "build_server", "run_now"]

log = logging.getLogger("reference_server")

GOOGLE_JWKS_URL = "https://www.googleapis.com/oauth2/v3/certs"

#: What an organization without a usable license may use (when licensing is on).
FREE_PLAN = Entitlements(plan="free", features=frozenset(), max_companies=1, max_users=1)


@attrs.define
class Server:
    """Everything a handler needs; one per process."""

    settings: Settings
    clock: Clock
    kit: Kit
    data: ServerData
    keys: KeyMaterial
    email: EmailSink
    license_verifier: LicenseVerifier | None
    xml_signer: XmlSigner
    xml_verifier: XmlVerifier
    schemas: SchemaRegistry
    deadlines: RequestDeadlines
    observer: Observer = attrs.field(factory=Observer)

    def readiness(self) -> dict[str, str]:
        """Each dependency's state: ``ok`` or ``unavailable`` (for ``/ready``)."""
        return {
            name: "ok" if probe() else "unavailable"
            for name, probe in (("database", self.data.ping), *self.kit.stores.probes())
        }

    def entitlements(self, organization_id: str) -> Entitlements | None:
        """What the organization may use: its license's entitlements, the free plan without a
        usable one, or None when this installation verifies no licenses (no vendor key: no
        plan to enforce)."""
        if self.license_verifier is None:
            return None
        token = self.data.licenses.token(organization_id)
        if token is None:
            return FREE_PLAN
        try:
            status = self.license_verifier.verify(token, expected_organization_id=organization_id)
        except InvalidLicenseError:
            return FREE_PLAN
        return status.entitlements or FREE_PLAN

    def require_plan(
        self, organization_id: str, *, feature: str | None = None, **used: int
    ) -> None:
        """Refuse (403 ``plan_limit``) what the organization's plan does not allow: ``feature``,
        or one more of ``companies`` / ``users`` beyond ``used``."""
        plan = self.entitlements(organization_id)
        if plan is None:
            return
        if feature is not None and feature not in plan.features:
            raise ApiError(403, "plan_limit", f"The {plan.plan} plan does not include {feature}.")
        limits = {"companies": plan.max_companies, "users": plan.max_users}
        for name, count in used.items():
            limit = limits[name]
            if limit is not None and count >= limit:
                raise ApiError(403, "plan_limit", f"The {plan.plan} plan allows {limit} {name}.")

    def purge_deleted_accounts(self) -> Purge:
        """The purge after the deletion grace period (ACC-4): the kit forgets the accounts and
        the organizations nobody is left in; the server deletes its own rows of those
        organizations and clears the accounts' ids from its rows.

        Raises:
            StoreError: a store failed; run it again (it resumes).
        """
        purged = self.kit.purge_deleted_accounts()
        for user_id in purged.user_ids:
            self.data.forget_user(user_id)
        self.data.delete_organizations(purged.organization_ids)
        return purged

    def close(self) -> None:
        self.kit.stores.close()
        self.data.dispose()


def run_now(task: Callable[[], None]) -> None:
    """Runs work at once, in the request (tests: the mail is there when the answer is)."""
    task()


def _background_runner() -> Callable[[Callable[[], None]], None]:
    """Runs work after the answer is sent (one thread), so its time does not show in it."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="storno-background")

    def run(task: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                task()
            except Exception:  # a background failure is logged, never lost silently
                log.exception("background task failed")

        executor.submit(guarded)

    return run


def _email_sink(settings: Settings) -> EmailSink:
    if settings.email_sink == "memory":
        return MemoryEmailSink()
    if settings.email_sink == "directory":
        log.warning("STORNO_EMAIL_SINK=directory writes mail (with links) to disk")
        return DirectoryEmailSink(settings.data_dir / "mail")
    return LogEmailSink()


def _google_jwks_loader(url: str) -> Callable[[], Mapping[str, Any]]:
    def load() -> Mapping[str, Any]:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - fixed https URL
            data: Mapping[str, Any] = json.loads(response.read(1_000_000))
            return data

    return load


def kit_policy(settings: Settings) -> KitPolicy:
    """The kit's policy from the settings."""
    cost = settings.password_cost
    return KitPolicy(
        tokens=TokenPolicy(
            issuer=settings.effective_token_issuer, audience=settings.token_audience
        ),
        passwords=PasswordPolicy(cost=cost, insecure_low_cost=cost < 10),
        mfa=MfaPolicy() if cost >= 10 else MfaPolicy.insecure_for_tests(),
        passkeys=PasskeyPolicy(
            rp_id=settings.rp_id, rp_name="storno-security", allowed_origins=(settings.origin,)
        ),
        audit=AuditPolicy(retention=timedelta(days=settings.audit_retention_days)),
        deletion_grace=settings.deletion_grace,
    )


def build_server(
    settings: Settings,
    *,
    clock: Clock | None = None,
    email: EmailSink | None = None,
    google_fetcher: JwksFetcher | None = None,
    create_keys: bool = True,
    run_later: Callable[[Callable[[], None]], None] | None = None,
) -> Server:
    """Build the kit, the server's data and the other capabilities; create the schema.

    Raises:
        storno_security.integrations.keyfiles.KeyFileError: a key file is unusable.
        storno_security.errors.StoreUnavailableError: the database or Redis is unreachable.
        storno_security.errors.StoreError: Redis would lose revocations (no persistence).
    """
    clock = clock or SystemClock()
    keys = load_key_material(
        settings.data_dir,
        jwt_key_file=settings.jwt_key_file,
        vault_key_file=settings.vault_key_file,
        xml_key_file=settings.xml_key_file,
        xml_cert_file=settings.xml_cert_file,
        create=create_keys,
        now=clock.now(),
    )
    url, timeouts = settings.effective_database_url, settings.database_timeouts()
    data = ServerData(url, **sql.timeout_options(url, timeouts))
    sql.apply_sqlite_timeouts(data.engine, timeouts)
    deadlines = RequestDeadlines(settings.request_timeout)
    deadlines.watch(data.engine)
    data.create_schema()
    bundle = sql.sql_bundle(
        data.engine,
        redis_url=settings.redis_url,
        redis_timeout=settings.redis_timeout,
        redis_prefix=settings.redis_prefix,
        rate_limits=settings.effective_ratelimit_uri,
    )
    sink = email or _email_sink(settings)
    policy = kit_policy(settings)
    observer = Observer(
        metrics=Metrics(multiprocess_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        if settings.metrics
        else None,
        access=MetricsAccess(settings.metrics),
    )
    google = None
    if settings.google_client_id:
        fetcher = google_fetcher or CachingJwksFetcher(
            _google_jwks_loader(GOOGLE_JWKS_URL), clock=clock
        )
        google = GoogleIdTokenVerifier(
            GoogleIdTokenPolicy(client_ids=(settings.google_client_id,)),
            fetcher=fetcher,
            clock=clock,
        )
    kit = Kit(
        bundle,
        policy=policy,
        keys=KitKeys(jwt=keys.jwt, vault=keys.vault, pseudonym=keys.pseudonym),
        clock=clock,
        mailer=KitMailer(
            sink,
            public_url=settings.public_url,
            invitation_days=policy.invitation_lifetime.days,
        ),
        defer=run_later or _background_runner(),
        google=google,
        events=observer.events,
        companies=data.company_lookup,
        rate_limits={p.name: p for p in spec_policies(api_fail_open=settings.api_fail_open)},
    )
    license_verifier = None
    if settings.license_public_key_file is not None:
        license_key = LicenseKey.from_pem(settings.license_public_key_file.read_bytes())
        license_verifier = LicenseVerifier(
            [license_key],
            LicensePolicy(issuer=settings.license_issuer),
            clock=clock,
            last_seen=bundle.license_last_seen,
            instance_id=settings.instance_id,
        )
    return Server(
        settings=settings,
        clock=clock,
        kit=kit,
        data=data,
        keys=keys,
        email=sink,
        license_verifier=license_verifier,
        xml_signer=XmlSigner(keys.xml.private_key, keys.xml.certificate, clock=clock),
        xml_verifier=XmlVerifier(expected_certificate=keys.xml.certificate, clock=clock),
        schemas=SchemaRegistry(),
        deadlines=deadlines,
        observer=observer,
    )
