"""Headless Chromium against live servers, with a CDP virtual authenticator.

The servers are real ``python -m reference_server serve`` processes on free ports: one on SQLite
(with a CORS allow-list), one on PostgreSQL + Redis with two workers, and a "mirror" that
serves the same page and database from another origin. The browser is Debian's ``chromium``
driven through ``chromium-driver`` (Selenium); without them the tests skip, or fail under
``CI=true``.

The spec's per-address rate limits (5 logins a minute) would stop a long flow from one
address: the servers trust the loopback proxy, and the page's requests carry an
``X-Forwarded-For`` of their own (set by CDP, changed with :meth:`Browser.new_address`).

A failing test's screenshot is saved under the test's temporary directory; its path, the
page's status and error lines, and the browser console are added to the failure report (under
``CI=true`` the PNG in base64 too, since CI keeps only its log).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from reference_server.mail import DirectoryEmailSink
from tests.conftest import (
    IN_CI,
    PG_ADMIN_URL,
    REDIS_URL,
    RUN_ID,
    _drop_database,
    _make_database,
    _port_open,
    missing_service,
)
from tests.server.api import fresh_ip

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_SECONDS = 20.0

BASE_ENV = {
    "STORNO_PASSWORD_COST": "4",
    "STORNO_EMAIL_SINK": "directory",
    "STORNO_TRUSTED_PROXIES": "127.0.0.1/32,::1/128",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """``python -m reference_server serve --port <port>``, stopped with SIGTERM."""

    def __init__(self, name: str, base: Path, env: dict[str, str], *, port: int, workers: int = 1):
        self.name = name
        self.port = port
        self.url = f"http://localhost:{port}"
        self.data_dir = base / "data"
        self.err_path = base / f"{name}.err"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("STORNO_")}
        inherited.pop("CI", None)
        inherited["PYTHONPATH"] = os.pathsep.join([str(ROOT), inherited.get("PYTHONPATH", "")])
        full_env = {**inherited, **BASE_ENV, "STORNO_DATA_DIR": str(self.data_dir), **env}
        command = [sys.executable, "-m", "reference_server", "serve", "--port", str(port)]
        with (base / f"{name}.out").open("wb") as out, self.err_path.open("wb") as err:
            self.process = subprocess.Popen(
                [*command, "--workers", str(workers)],
                env=full_env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.err_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as answer:  # noqa: S310 - our loopback server
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)  # waiting for a real process to listen, not for test time
        raise RuntimeError(f"{self.name} did not start: {self.err_path.read_text()[-3000:]}")

    def wait_for_mail(self, to: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not any(m["to"] == to for m in DirectoryEmailSink(self.data_dir / "mail").read_all()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} sent no mail to {to}")
            time.sleep(0.05)  # polling a real process's mail directory, not test time

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


# -- servers ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mirror_port() -> int:
    """The port of the other origin (chosen first: the SQLite server lists it for CORS)."""
    return free_port()


@pytest.fixture(scope="session")
def sqlite_server(
    tmp_path_factory: pytest.TempPathFactory, mirror_port: int
) -> Iterator[LiveServer]:
    base = tmp_path_factory.mktemp("browser-sqlite")
    env = {"STORNO_CORS_ORIGINS": f"http://localhost:{mirror_port}"}
    server = LiveServer("sqlite", base, env, port=free_port())
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mirror_server(
    tmp_path_factory: pytest.TempPathFactory, sqlite_server: LiveServer, mirror_port: int
) -> Iterator[LiveServer]:
    """The same page, keys and database at another origin, its public URL still the first
    server's: passkey ceremonies made here carry the wrong origin."""
    base = tmp_path_factory.mktemp("browser-mirror")
    env = {"STORNO_DATA_DIR": str(sqlite_server.data_dir), "STORNO_PUBLIC_URL": sqlite_server.url}
    server = LiveServer("mirror", base, env, port=mirror_port)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if not _port_open("127.0.0.1", 5432):
        missing_service("postgresql", "127.0.0.1:5432")
    if not _port_open("127.0.0.1", 6379):
        missing_service("redis", "127.0.0.1:6379")
    name = f"storno_browser_{RUN_ID}"
    url = _make_database(PG_ADMIN_URL, name)
    prefix = f"storno-browser:{RUN_ID}:"
    env = {"STORNO_DATABASE_URL": url, "STORNO_REDIS_URL": REDIS_URL, "STORNO_REDIS_PREFIX": prefix}
    base = tmp_path_factory.mktemp("browser-pg")
    try:
        server = LiveServer("pg-redis", base, env, port=free_port(), workers=2)
    except BaseException:
        _drop_database(PG_ADMIN_URL, name, force=True)
        raise
    try:
        yield server
    finally:
        server.stop()
        _drop_database(PG_ADMIN_URL, name, force=True)
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


# -- the browser --------------------------------------------------------------------------------


class Browser:
    """One headless Chromium with a virtual authenticator, and the demo page's controls."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.authenticator = ""
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("WebAuthn.enable", {"enableUI": False})
        self.add_authenticator()
        self.new_address()

    def add_authenticator(self) -> str:
        options = {
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": True,
            "hasUserVerification": True,
            "isUserVerified": True,
            "automaticPresenceSimulation": True,
        }
        answer = self.driver.execute_cdp_cmd(
            "WebAuthn.addVirtualAuthenticator", {"options": options}
        )
        self.authenticator = answer["authenticatorId"]
        return self.authenticator

    def credentials(self) -> list[dict[str, Any]]:
        answer = self.driver.execute_cdp_cmd(
            "WebAuthn.getCredentials", {"authenticatorId": self.authenticator}
        )
        found: list[dict[str, Any]] = answer["credentials"]
        return found

    def new_address(self, address: str | None = None) -> None:
        """Later requests come from a client address of their own (for the rate limits);
        ``address=""`` sends none (a cross-origin request must stay a simple one)."""
        headers = {} if address == "" else {"X-Forwarded-For": address or fresh_ip()}
        self.driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})

    # -- the page ---------------------------------------------------------------------------

    def open(self, url: str) -> None:
        self.driver.get(url)
        deadline = time.monotonic() + WAIT_SECONDS
        while self.driver.execute_script("return document.body.dataset.ready") != "true":
            if time.monotonic() > deadline:
                raise AssertionError(f"the page at {url} did not start")
            time.sleep(0.05)  # polling the page, not waiting for test time

    def fill(self, element_id: str, value: str) -> None:
        element = self.driver.find_element("id", element_id)
        element.clear()
        element.send_keys(value)

    def click(self, element_id: str) -> None:
        self.driver.find_element("id", element_id).click()

    def text(self, element_id: str) -> str:
        text: str = self.driver.find_element("id", element_id).text
        return text

    def wait_text(self, element_id: str, expected: str) -> str:
        """Wait until the element's text contains ``expected`` (or the page shows an error)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            text = self.text(element_id)
            if expected in text and (element_id == "error" or not self.text("error")):
                return text
            if element_id != "error" and self.text("error"):
                raise AssertionError(f"the page says: {self.text('error')!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"#{element_id} is {text!r}, waited for {expected!r}")
            time.sleep(0.05)  # polling the page, not waiting for test time

    def act(self, element_id: str, expected_status: str) -> str:
        self.driver.execute_script("document.getElementById('status').textContent = ''")
        self.click(element_id)
        return self.wait_text("status", expected_status)

    def act_failing(self, element_id: str, expected_error: str) -> str:
        self.driver.execute_script("document.getElementById('error').textContent = ''")
        self.click(element_id)
        return self.wait_text("error", expected_error)


class Totp:
    """Codes of a TOTP secret, each of a later step than the last (MFA-2 accepts a step once,
    and never one before an accepted step). The server runs on the real clock."""

    def __init__(self, secret: str) -> None:
        self._otp = pyotp.TOTP(secret)
        self._step = int(time.time()) // 30 - 2

    def next_code(self) -> str:
        step = max(self._step + 1, int(time.time()) // 30 - 1)
        # The server takes a step until its clock is one step past it: until (step + 2) * 30.
        # A code with less than 10 s of that left could expire on its way through the page:
        # wait for the next step (at most 10 s, the real clock), then choose again.
        left = (step + 2) * 30 - time.time()
        if left < 10:
            time.sleep(max(left, 0) + 0.1)
            step = max(self._step + 1, int(time.time()) // 30 - 1)
        self._step = step
        return str(self._otp.generate_otp(step))


def _chromium_or_skip() -> None:
    if CHROMIUM and CHROMEDRIVER:
        return
    message = (
        "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
    )
    if IN_CI:
        pytest.fail(message + "; CI=true requires them", pytrace=False)
    pytest.skip(message)


@pytest.fixture
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    _chromium_or_skip()
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument("--window-size=1000,1800")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield Browser(driver)
    finally:
        driver.quit()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    browser = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and isinstance(browser, Browser):
        report.sections.append(("browser", _evidence(item, browser)))
    return report


def _evidence(item: pytest.Item, browser: Browser) -> str:
    directory = Path(os.environ.get("STORNO_BROWSER_ARTIFACTS", "browser-failures")).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (item.name.replace("/", "_").replace("[", "-").strip("]") + ".png")
    lines = [f"url: {browser.driver.current_url}"]
    try:
        browser.driver.save_screenshot(str(path))
        lines.append(f"screenshot: {path}")
        for element_id in ("status", "error"):
            lines.append(f"#{element_id}: {browser.text(element_id)!r}")
        for entry in browser.driver.get_log("browser"):
            lines.append(f"console: {entry.get('level')} {entry.get('message')}")
    except Exception as exc:
        lines.append(f"no more evidence: {exc!r}")
    if IN_CI and path.exists():
        lines.append("screenshot (PNG, base64): " + base64.b64encode(path.read_bytes()).decode())
    message = "\n".join(lines)
    sys.stderr.write(f"\n[browser failure] {item.nodeid}\n{message[:2000]}\n")
    return message


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The time the browser tests took (setup, servers and teardown included)."""
    reports = [
        report
        for kind in ("passed", "failed", "error", "skipped")
        for report in terminalreporter.stats.get(kind, [])
        if getattr(report, "nodeid", "").startswith("tests/browser/")
    ]
    if reports:
        seconds = sum(report.duration for report in reports)
        calls = len({report.nodeid for report in reports})
        terminalreporter.write_line(f"browser tests: {calls} tests in {seconds:.1f} s")
