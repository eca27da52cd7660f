"""One small HTTP client for the server tests, over Falcon's test client or a real server.

The end-to-end suite is written once against :class:`Api` and runs over every backend. Each
test acts from its own client IP (sent as ``X-Forwarded-For``; the test servers trust the
loopback proxy), so the spec's per-IP rate limits hold without one test eating another's quota.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs
import pyotp

from storno_security.clock import Clock

_IP_COUNTER = itertools.count(1)
_IP_LOCK = threading.Lock()


def fresh_ip() -> str:
    """A client address of its own for one test (10.x.y.z, never reused in a run)."""
    with _IP_LOCK:
        n = next(_IP_COUNTER)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def fresh_email(tag: str = "user") -> str:
    return f"{tag}-{secrets.token_hex(5)}@example.eu"


@attrs.frozen
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    cookies: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


Mailbox = Callable[[], list[dict[str, str]]]


class Api:
    """Base: ``request`` plus helpers; subclasses send the bytes."""

    kind = "abstract"
    clock: Clock | None = None

    def __init__(self, *, ip: str | None = None, mailbox: Mailbox | None = None) -> None:
        self.ip = ip or fresh_ip()
        self.mailbox = mailbox

    def mail_token(self, to: str, path: str) -> str:
        """The token of the latest mail to ``to`` whose link goes to ``path``."""
        assert self.mailbox is not None, "this Api has no mailbox"
        for mail in reversed(self.mailbox()):
            if mail["to"] != to:
                continue
            found = re.search(re.escape(path) + r"\?token=([A-Za-z0-9_%.-]+)", mail["body"])
            if found:
                return unquote(found.group(1))
        raise AssertionError(f"no mail to {to} with a {path} link")

    def confirm_email(self, email: str) -> Response:
        """Follow the confirmation link mailed to ``email`` (ACC-5)."""
        return self.post(
            "/api/auth/confirm-email", {"token": self.mail_token(email, "/confirm-email")}
        )

    def with_ip(self, ip: str | None = None) -> Api:
        raise NotImplementedError

    def now(self) -> datetime:
        return self.clock.now() if self.clock is not None else datetime.now(UTC)

    def send(
        self, method: str, path: str, *, body: bytes | None, headers: dict[str, str]
    ) -> Response:
        raise NotImplementedError

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        token: str | None = None,
        api_key: str | None = None,
        company: str | None = None,
        organization: str | None = None,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str | None = None,
    ) -> Response:
        sent: dict[str, str] = {"X-Forwarded-For": self.ip}
        body = raw
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent["Content-Type"] = "application/json"
        if content_type is not None:
            sent["Content-Type"] = content_type
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if api_key is not None:
            sent["Authorization"] = api_key
        if company is not None:
            sent["X-Company"] = company
        if organization is not None:
            sent["X-Organization"] = organization
        sent.update(headers or {})
        return self.send(method, path, body=body, headers=sent)

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json_body: Any = None, **kwargs: Any) -> Response:
        return self.request("POST", path, json_body=json_body, **kwargs)

    def put(self, path: str, json_body: Any = None, **kwargs: Any) -> Response:
        return self.request("PUT", path, json_body=json_body, **kwargs)

    def patch(self, path: str, json_body: Any = None, **kwargs: Any) -> Response:
        return self.request("PATCH", path, json_body=json_body, **kwargs)

    def delete(self, path: str, json_body: Any = None, **kwargs: Any) -> Response:
        return self.request("DELETE", path, json_body=json_body, **kwargs)

    # -- flows used by many tests -----------------------------------------------------------

    def register(
        self,
        email: str | None = None,
        password: str = "correct horse battery",  # noqa: S107
        *,
        confirm: bool = False,
    ) -> User:
        email = email or fresh_email()
        response = self.post(
            "/api/auth/register", {"email": email, "password": password, "name": "Test User"}
        )
        assert response.status == 201, response.json
        if confirm:
            confirmed = self.confirm_email(email)
            assert confirmed.status == 200, confirmed.json
        data = response.json
        return User(
            api=self,
            email=email,
            password=password,
            user_id=data["user"]["id"],
            organization_id=data["organization_id"],
            access_token=data["access_token"],
            refresh_token=data["refresh_token"],
        )

    def totp_code(self, secret: str, *, steps_ahead: int = 0) -> str:
        moment = self.now() + timedelta(seconds=30 * steps_ahead)
        return str(pyotp.TOTP(secret).at(moment))


@attrs.define
class User:
    api: Api
    email: str
    password: str
    user_id: str
    organization_id: str
    access_token: str
    refresh_token: str

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.api.get(path, token=self.access_token, **kwargs)

    def post(self, path: str, json_body: Any = None, **kwargs: Any) -> Response:
        return self.api.post(path, json_body, token=self.access_token, **kwargs)

    def put(self, path: str, json_body: Any = None, **kwargs: Any) -> Response:
        return self.api.put(path, json_body, token=self.access_token, **kwargs)

    def patch(self, path: str, json_body: Any = None, **kwargs: Any) -> Response:
        return self.api.patch(path, json_body, token=self.access_token, **kwargs)

    def delete(self, path: str, json_body: Any = None, **kwargs: Any) -> Response:
        return self.api.delete(path, json_body, token=self.access_token, **kwargs)


class FalconApi(Api):
    """In-process, through ``falcon.testing.TestClient``; the app's clock is frozen."""

    kind = "falcon"

    def __init__(
        self,
        client: Any,
        *,
        clock: Clock | None,
        ip: str | None = None,
        mailbox: Mailbox | None = None,
    ) -> None:
        super().__init__(ip=ip, mailbox=mailbox)
        self.client = client
        self.clock = clock

    def with_ip(self, ip: str | None = None) -> FalconApi:
        return FalconApi(self.client, clock=self.clock, ip=ip, mailbox=self.mailbox)

    def send(
        self, method: str, path: str, *, body: bytes | None, headers: dict[str, str]
    ) -> Response:
        path, _, query = path.partition("?")
        result = self.client.simulate_request(
            method, path, query_string=query or None, body=body, headers=headers
        )
        return Response(
            status=result.status_code,
            headers={k.lower(): v for k, v in result.headers.items()},
            body=result.content,
            cookies={name: cookie.value for name, cookie in result.cookies.items()},
        )


class HttpApi(Api):
    """Over a real socket to a running server (gunicorn on loopback)."""

    kind = "http"

    def __init__(
        self, base_url: str, *, ip: str | None = None, mailbox: Mailbox | None = None
    ) -> None:
        super().__init__(ip=ip, mailbox=mailbox)
        self.base_url = base_url
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80

    def mail_token(self, to: str, path: str) -> str:
        """As :meth:`Api.mail_token`; a real server sends mail after its answer (on a background
        thread), so the mail is waited for, a few seconds at most."""
        deadline = time.monotonic() + 10
        while True:
            try:
                return super().mail_token(to, path)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)  # waiting for a real process's mail thread, not for test time

    def with_ip(self, ip: str | None = None) -> HttpApi:
        clone = HttpApi(self.base_url, ip=ip, mailbox=self.mailbox)
        if hasattr(self, "server"):
            clone.server = self.server  # type: ignore[attr-defined]
        return clone

    def send(
        self, method: str, path: str, *, body: bytes | None, headers: dict[str, str]
    ) -> Response:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            raw = conn.getresponse()
            data = raw.read()
            header_list = raw.getheaders()
        finally:
            conn.close()
        cookies: dict[str, str] = {}
        for name, value in header_list:
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                cookie_name, _, cookie_value = pair.partition("=")
                cookies[cookie_name.strip()] = cookie_value.strip()
        return Response(
            status=raw.status,
            headers={k.lower(): v for k, v in header_list},
            body=data,
            cookies=cookies,
        )
