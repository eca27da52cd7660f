"""Fixtures of the kit tests: a Kit over a store bundle, a frozen clock, a mail catcher, a
software passkey authenticator, and helpers that walk a user through the flows."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import attrs
import pyotp
import pytest

from storno_security.clock import FrozenClock
from storno_security.events import SecurityEvent
from storno_security.kit import Caller, Kit, KitKeys, KitPolicy, Mail, Session
from storno_security.mfa import MfaPolicy
from storno_security.passkeys import PasskeyPolicy
from storno_security.passwords import PasswordPolicy
from storno_security.rbac import Company
from storno_security.stores.memory import memory_bundle
from storno_security.stores.sql import sql_bundle
from storno_security.tokens import TokenPolicy
from tests.conftest import REDIS_URL, _port_open, get_sql_engine, missing_service
from tests.passkeys.authenticator import SoftAuthenticator

ORIGIN = "https://app.example.eu"
RP_ID = "app.example.eu"
PASSWORD = "a long passphrase"

#: One RSA key for the whole run: key generation is slow and not what these tests test.
_KEYS: list[KitKeys] = []


def kit_keys() -> KitKeys:
    if not _KEYS:
        _KEYS.append(KitKeys.generate(rsa_bits=2048))
    return _KEYS[0]


def kit_policy(**overrides: Any) -> KitPolicy:
    values: dict[str, Any] = {
        "tokens": TokenPolicy(issuer="https://api.example.eu", audience="example-api"),
        "passwords": PasswordPolicy(cost=4, insecure_low_cost=True),
        "mfa": MfaPolicy.insecure_for_tests(),
        "passkeys": PasskeyPolicy(rp_id=RP_ID, rp_name="Example", allowed_origins=(ORIGIN,)),
    }
    values.update(overrides)
    return KitPolicy(**values)


@attrs.define
class MailCatcher:
    sent: list[Mail] = attrs.field(factory=list)

    def send(self, mail: Mail) -> None:
        self.sent.append(mail)

    def last(self, kind: str, to: str | None = None) -> Mail:
        for mail in reversed(self.sent):
            if mail.kind == kind and (to is None or mail.to == to):
                return mail
        raise AssertionError(f"no {kind} mail to {to}")


@attrs.define
class EventCatcher:
    events: list[SecurityEvent] = attrs.field(factory=list)

    def emit(self, event: SecurityEvent) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[SecurityEvent]:
        return [e for e in self.events if e.type.value == kind]


@attrs.define
class World:
    """A kit and what surrounds it in a test."""

    kit: Kit
    clock: FrozenClock
    mail: MailCatcher
    events: EventCatcher
    companies: dict[str, Company]
    authenticator: SoftAuthenticator = attrs.field(factory=SoftAuthenticator)
    #: The access token of each caller made by :meth:`caller`, by its ``jti``.
    tokens: dict[str, str] = attrs.field(factory=dict)

    def email(self) -> str:
        return f"user-{uuid.uuid4().hex[:10]}@example.eu"

    def register(self, email: str | None = None, *, confirm: bool = True) -> Session:
        address = email or self.email()
        registration = self.kit.register(address, PASSWORD)
        assert registration.session is not None
        if confirm:
            self.kit.confirm_email(self.mail.last("email_confirmation", address).token or "")
        return registration.session

    def caller(self, session: Session) -> Caller:
        caller = self.kit.authenticate(f"Bearer {session.tokens.access_token}")
        assert caller is not None
        assert caller.claims is not None
        self.tokens[caller.claims.token_id] = session.tokens.access_token
        return caller

    def login(self, email: str) -> Session:
        result = self.kit.login(email, PASSWORD)
        assert isinstance(result, Session)
        return result

    def totp(self, secret: str, *, offset: int = 0) -> str:
        return str(pyotp.TOTP(secret).at(self.clock.now(), counter_offset=offset))

    def enable_mfa(self, session: Session) -> str:
        """Turn MFA on (re-authenticated with the password); the TOTP secret."""
        caller = self.caller(session)
        enrolment = self.kit.begin_totp_enrolment(caller, current_password=PASSWORD)
        self.kit.confirm_totp_enrolment(caller, self.totp(enrolment.secret))
        self.clock.advance(timedelta(seconds=30))
        return enrolment.secret

    def join(self, inviter: Session, member: Session, *, role: str = "viewer") -> str:
        """``inviter`` invites ``member`` to their default organization, and it is accepted;
        the organization's id."""
        invitation = self.kit.invite(self.caller(inviter), member.user.email or "", role=role)
        self.kit.accept_invitation(self.caller(member), invitation.invitation_id)
        return invitation.organization_id

    def without_default(self) -> tuple[Session, list[str]]:
        """A member of two organizations, joined one after the other, who gave their own (the
        default one) away and was removed from it: two live memberships, none the default.
        The two organizations' ids, oldest first."""
        member = self.register()
        joined = []
        others = [self.register(), self.register()]
        for other in others:
            self.clock.advance(timedelta(minutes=1))
            joined.append(self.join(other, member))
        own = self.kit.default_organization_id(member.user.user_id)
        self.join(member, others[0], role="admin")
        self.kit.transfer_ownership(self.caller(member), others[0].user.user_id)
        self.kit.remove_member(self.caller(others[0]), member.user.user_id, organization=own)
        return member, joined

    def company(self, organization_id: str) -> str:
        company_id = str(uuid.uuid4())
        self.companies[company_id] = Company(company_id=company_id, organization_id=organization_id)
        return company_id


BundleFactory = Callable[[], Any]


#: The kit's flows run over every backend: memory; SQL alone on SQLite, PostgreSQL and
#: MariaDB; and SQL with Redis for the short-lived state and rate limits.
BACKENDS = ("memory", "sqlite", "postgresql", "mariadb", "postgresql+redis")


@pytest.fixture(params=BACKENDS)
def bundle_factory(
    request: pytest.FixtureRequest,
    sql_urls: dict[str, str | None],
    sql_engines: dict[str, Any],
    redis_prefix: str,
) -> Iterator[BundleFactory]:
    """A maker of store bundles, per backend (SQL bundles share the run's database: each test
    makes its own users, so tests do not see each other's rows)."""
    backend = str(request.param)
    if backend == "memory":
        yield memory_bundle
        return
    sql_backend, _, cache = backend.partition("+")
    engine = get_sql_engine(sql_backend, sql_urls, sql_engines)
    redis_url = None
    if cache == "redis":
        if not _port_open("127.0.0.1", 6379):
            missing_service("redis", "127.0.0.1:6379")
        redis_url = REDIS_URL
    yield lambda: attrs.evolve(
        sql_bundle(engine, redis_url=redis_url, redis_prefix=redis_prefix),
        closers=(),  # the engine is the run's; sql_engines disposes of it
    )


class Meanwhile:
    """The bundle's directory store, through which another request can act *between* two
    steps of a flow: :meth:`before` runs an action just before the flow's next call of a
    directory method, once. The store itself is the real one; only the timing is chosen, the
    way a concurrent request would choose it."""

    def __init__(self, directory: Any) -> None:
        self._directory = directory
        self._pending: dict[str, list[Any]] = {}

    def before(self, method: str, action: Callable[[], object], *, call: int = 1) -> None:
        """Run ``action`` before the ``call``-th next call of ``method`` (then no more)."""
        if not callable(getattr(self._directory, method, None)):
            raise AttributeError(f"a directory store has no {method}()")
        self._pending[method] = [call, action]

    @property
    def pending(self) -> list[str]:
        """The methods whose action has not run yet."""
        return sorted(self._pending)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._directory, name)
        if name not in self._pending:
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            waiting = self._pending.get(name)
            if waiting is not None:
                waiting[0] -= 1
                if waiting[0] == 0:
                    del self._pending[name]
                    waiting[1]()
            return target(*args, **kwargs)

        return call


@attrs.define
class RacedWorld(World):
    """A world whose kit reads and writes the directory through :class:`Meanwhile`."""

    meanwhile: Meanwhile = attrs.field(kw_only=True)


WorldMaker = Callable[..., Any]


def build_world(
    clock: FrozenClock, bundle: Any, *, meanwhile: bool = False, **overrides: Any
) -> World:
    """A world over ``bundle``: a :class:`RacedWorld` with ``meanwhile``; other keywords
    replace the kit's arguments (``policy``, ``defer``, ``companies``...)."""
    mail = MailCatcher()
    events = EventCatcher()
    companies: dict[str, Company] = {}
    raced = Meanwhile(bundle.directory) if meanwhile else None
    arguments: dict[str, Any] = {
        "policy": kit_policy(),
        "keys": kit_keys(),
        "clock": clock,
        "events": events,
        "mailer": mail,
        "companies": companies.get,
    }
    arguments.update(overrides)
    stores = bundle if raced is None else attrs.evolve(bundle, directory=raced)
    parts: dict[str, Any] = {
        "kit": Kit(stores, **arguments),
        "clock": clock,
        "mail": mail,
        "events": events,
        "companies": companies,
    }
    if raced is None:
        return World(**parts)
    return RacedWorld(**parts, meanwhile=raced)


@pytest.fixture
def make_world(clock: FrozenClock, bundle_factory: BundleFactory) -> Iterator[WorldMaker]:
    """Makes worlds over the backend's stores (arguments as :func:`build_world`)."""
    bundles: list[Any] = []

    def make(**options: Any) -> World:
        bundle = bundle_factory()
        bundles.append(bundle)
        return build_world(clock, bundle, **options)

    yield make
    for bundle in bundles:
        bundle.close()


@pytest.fixture
def world(clock: FrozenClock, bundle_factory: BundleFactory) -> Iterator[World]:
    bundle = bundle_factory()
    yield build_world(clock, bundle)
    bundle.close()


@pytest.fixture
def raced(make_world: WorldMaker) -> RacedWorld:
    """A world in which another request can act between two steps of a flow."""
    made: RacedWorld = make_world(meanwhile=True)
    return made
