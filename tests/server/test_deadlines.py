"""Deadlines and load shedding (SRV-5), in process: the database timeouts per dialect, the
per-request deadline over the engine, the ASGI front's admission bound, deadline and body
limit. The same behaviour against real failing components is in ``test_faults.py``."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import attrs
import falcon.testing
import pytest
import sqlalchemy as sa

from reference_server.app import create_app
from reference_server.settings import Settings, SettingsError
from reference_server.wiring import Server
from storno_security.errors import StoreUnavailableError
from storno_security.integrations.asgi_front import AsgiFront
from storno_security.integrations.deadline import DEADLINE_ENVIRON_KEY, RequestDeadlines
from storno_security.stores import sql
from tests._fork import in_a_forked_child
from tests.conftest import missing_service
from tests.server.conftest import TEST_ENV

TIMEOUTS = sql.DatabaseTimeouts(connect=3, statement=5, lock=2, pool_size=4, pool_timeout=1)


# -- database timeouts --------------------------------------------------------------------------


@pytest.mark.spec("SRV-5")
def test_timeout_options_speak_each_dialect() -> None:
    pg = sql.timeout_options("postgresql+psycopg://u@h/db", TIMEOUTS)
    assert pg["connect_args"] == {
        "connect_timeout": 3,
        "options": "-c statement_timeout=5000 -c lock_timeout=2000",
    }
    assert (pg["pool_size"], pg["pool_timeout"]) == (4, 1)
    maria = sql.timeout_options("mysql+pymysql://u@h/db", TIMEOUTS)["connect_args"]
    assert maria["read_timeout"] == maria["write_timeout"] == 5
    assert maria["init_command"] == "SET SESSION innodb_lock_wait_timeout = 2"
    assert sql.timeout_options("sqlite:///x.db", TIMEOUTS)["connect_args"] == {"timeout": 2}
    assert "pool_size" not in sql.timeout_options("sqlite://", TIMEOUTS)
    # libpq refuses less than 2 s; fractions round up rather than to "no timeout"
    quick = sql.DatabaseTimeouts(connect=0.5, statement=0.0004, lock=0.25)
    options = sql.timeout_options("postgresql://u@h/db", quick)["connect_args"]
    assert options["connect_timeout"] == 2
    assert options["options"] == "-c statement_timeout=1 -c lock_timeout=250"
    with pytest.raises(ValueError, match="positive"):
        sql.DatabaseTimeouts(statement=0)
    with pytest.raises(ValueError, match="malformed"):
        sql.timeout_options("not a url", TIMEOUTS)


_SHOW = {
    "sqlite": ("PRAGMA busy_timeout", "2000"),
    "postgresql": (
        "SELECT current_setting('statement_timeout') || current_setting('lock_timeout')",
        "5s2s",
    ),
    "mariadb": ("SELECT @@session.innodb_lock_wait_timeout", "2"),
}


@pytest.mark.spec("SRV-5")
@pytest.mark.parametrize("backend", sorted(_SHOW))
def test_the_database_applies_the_timeouts(
    backend: str, sql_urls: dict[str, str | None], tmp_path: Path
) -> None:
    url = sql_urls.get(backend)
    if url is None:
        missing_service(backend, "its test server")
    assert url is not None
    engine = sql.create_engine(url, **sql.timeout_options(url, TIMEOUTS))
    sql.apply_sqlite_timeouts(engine, TIMEOUTS)
    try:
        query, expected = _SHOW[backend]
        with engine.connect() as conn:
            assert str(conn.exec_driver_sql(query).scalar()) == expected
    finally:
        engine.dispose()


@pytest.mark.spec("SRV-5")
def test_settings_read_and_check_the_deadlines(tmp_path: Path) -> None:
    env = {**TEST_ENV, "STORNO_DATA_DIR": str(tmp_path)}
    settings = Settings.from_env(
        {**env, "STORNO_REQUEST_TIMEOUT": "2.5", "STORNO_DB_POOL_SIZE": "6"}
    )
    assert settings.request_timeout == 2.5
    timeouts = settings.database_timeouts()
    assert (timeouts.pool_size, timeouts.max_overflow, timeouts.statement) == (6, 3, 5.0)
    for name, raw in (
        ("STORNO_REQUEST_TIMEOUT", "0"),
        ("STORNO_DB_STATEMENT_TIMEOUT", "nan"),
        ("STORNO_REDIS_TIMEOUT", "inf"),
        ("STORNO_MAX_IN_FLIGHT", "0"),
        ("STORNO_DB_LOCK_TIMEOUT", "soon"),
    ):
        with pytest.raises(SettingsError, match="(?i)" + name.removeprefix("STORNO_")):
            Settings.from_env({**env, name: raw})


# -- the per-request deadline -----------------------------------------------------------------


class SteppingClock:
    """A monotonic clock that reads ``start`` for the first ``fresh`` reads, then ``later``."""

    def __init__(self, *, fresh: int = 1, start: float = 0.0, later: float = 100.0) -> None:
        self.reads = 0
        self.fresh, self.start, self.later = fresh, start, later

    def __call__(self) -> float:
        self.reads += 1
        return self.start if self.reads <= self.fresh else self.later


@pytest.mark.spec("SRV-5")
def test_a_request_past_its_deadline_sends_no_statement_and_answers_503(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    deadlines = RequestDeadlines(10, monotonic=SteppingClock(), poll=3600)
    deadlines.watch(server.data.engine)
    client = falcon.testing.TestClient(deadlines.wsgi(create_app(server=server)))
    body = {"email": "late@example.eu", "password": "correct horse battery"}
    with caplog.at_level(logging.WARNING):
        answer = client.simulate_post("/api/auth/register", json=body)
    assert answer.status_code == 503
    assert answer.json["code"] == "unavailable"
    assert answer.headers["Retry-After"] == "1"
    # an expected 503: one line, no traceback
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1
    assert records[0].exc_info is None
    assert "Traceback" not in caplog.text
    # the account was not created: a fresh deadline registers it
    fresh = falcon.testing.TestClient(create_app(server=server))
    assert fresh.simulate_post("/api/auth/register", json=body).status_code == 201


@pytest.mark.spec("SRV-5")
def test_a_one_statement_read_past_its_deadline_is_not_sent(tmp_path: Path) -> None:
    # the stores' hot reads (session state, API keys, a user's own records) go straight to a
    # kept DBAPI connection, outside SQLAlchemy's Connection: the deadline covers them too
    engine = sql.create_engine(f"sqlite:///{tmp_path / 'reads.db'}")
    sent: list[str] = []

    @sa.event.listens_for(engine, "connect")
    def trace(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.set_trace_callback(sent.append)

    sql.create_schema(engine)
    states = sql.SqlSessionStateStore(engine)
    overviews = sql.SqlAccountOverviewStore(engine)
    keys = sql.SqlApiKeyStore(engine)
    deadlines = RequestDeadlines(10, monotonic=SteppingClock(fresh=10**9), poll=3600)
    deadlines.watch(engine)
    reads = (
        lambda: states.session_state(user_id="u-1", session_id="s-1"),
        lambda: overviews.session_overview(user_id="u-1", session_id="s-1"),
        lambda: overviews.account_overview("u-1"),
        lambda: keys.get("k" * 64),
    )
    try:
        for read in reads:
            before = len(sent)
            with deadlines.request():
                read()  # within the deadline: sent
            assert len(sent) > before
            before = len(sent)
            with deadlines.request(-1.0), pytest.raises(StoreUnavailableError) as refused:
                read()
            assert refused.value.reason == "deadline"
            assert len(sent) == before  # nothing reached the database
            with deadlines.request():
                read()  # the kept connection still serves the next request
            assert len(sent) > before
    finally:
        engine.dispose()


@pytest.mark.spec("SRV-5")
def test_the_watchdog_interrupts_a_one_statement_read_running_past_the_deadline(
    tmp_path: Path,
) -> None:
    engine = sql.create_engine(f"sqlite:///{tmp_path / 'slow.db'}")
    armed, running, release = threading.Event(), threading.Event(), threading.Event()

    @sa.event.listens_for(engine, "connect")
    def hold_when_armed(dbapi_connection: Any, record: Any) -> None:
        def progress() -> int:
            if armed.is_set() and not running.is_set():
                running.set()  # the statement is running now: held here until released
                release.wait(60)
            return 0

        dbapi_connection.set_progress_handler(progress, 1)

    sql.create_schema(engine)
    clock = SteppingClock(fresh=10**9)
    deadlines = RequestDeadlines(10, monotonic=clock, poll=3600)  # expired by hand below
    deadlines.watch(engine)
    overviews = sql.SqlAccountOverviewStore(engine)
    outcome: list[BaseException] = []

    def reader() -> None:
        with deadlines.request():
            try:
                overviews.session_overview(user_id="u-1", session_id="s-1")
            except BaseException as exc:
                outcome.append(exc)

    armed.set()
    worker = threading.Thread(target=reader, daemon=True)
    worker.start()
    try:
        assert running.wait(60), f"the read never ran: {outcome}"
        clock.start = 11.0  # past the deadline
        assert deadlines.expire() == 1  # the read's connection is the request's: it is cut
        release.set()
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], StoreUnavailableError)
        assert deadlines.expire() == 0  # cut once
    finally:
        release.set()
        worker.join()
        engine.dispose()


@pytest.mark.spec("SRV-5")
def test_the_front_deadline_counts_from_admission() -> None:
    clock = SteppingClock(fresh=10**9, start=50.0)
    deadlines = RequestDeadlines(10, monotonic=clock)
    seen: list[float] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        entry = deadlines._active[threading.get_ident()]
        seen.append(entry.deadline)
        start_response("204 No Content", [])
        return []

    deadlines.wsgi(app)({DEADLINE_ENVIRON_KEY: 42.0}, lambda *a: None)
    deadlines.wsgi(app)({}, lambda *a: None)
    assert seen == [42.0, 60.0]
    with deadlines.request(49.0), pytest.raises(StoreUnavailableError):
        deadlines.check()
    deadlines.check()  # no request in this thread: nothing to enforce


@pytest.mark.spec("SRV-5")
def test_the_watchdog_cuts_a_statement_running_past_the_deadline(
    sql_urls: dict[str, str | None],
) -> None:
    url = sql_urls.get("postgresql")
    if url is None:
        missing_service("postgresql", "127.0.0.1:5432")
    assert url is not None
    clock = SteppingClock(fresh=10**9)
    deadlines = RequestDeadlines(10, monotonic=clock, poll=3600)  # expired by hand below
    # a statement timeout far beyond the sleep: only the watchdog can end it early
    patient = attrs.evolve(TIMEOUTS, statement=120)
    engine = sql.create_engine(url, **sql.timeout_options(url, patient))
    deadlines.watch(engine)
    outcome: list[BaseException] = []
    tag = f"storno-watchdog-{id(outcome)}"

    def sleeper() -> None:
        with deadlines.request(), engine.connect() as conn:
            try:
                conn.exec_driver_sql(f"SELECT pg_sleep(60) /* {tag} */")
            except BaseException as exc:
                outcome.append(exc)

    sent = threading.Event()

    @sa.event.listens_for(engine, "before_cursor_execute")
    def mark_sent(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if tag in statement:
            sent.set()

    worker = threading.Thread(target=sleeper)
    worker.start()
    try:
        # wait for the statement to be on its way (an event, not a time); whether the server has
        # started it yet or not, the watchdog's cut ends it
        assert sent.wait(120), f"the sleeper never sent its statement: {outcome}"
        clock.start = 11.0  # past the deadline
        assert deadlines.expire() == 1
        worker.join(timeout=30)
        assert not worker.is_alive()
        assert outcome
        assert isinstance(outcome[0], sa.exc.OperationalError)
        assert deadlines.expire() == 0  # cut once
    finally:
        worker.join()
        engine.dispose()


@pytest.mark.spec("SRV-5")
def test_the_watchdog_interrupts_an_sqlite_statement_running_past_the_deadline() -> None:
    clock = SteppingClock(fresh=10**9)
    deadlines = RequestDeadlines(10, monotonic=clock, poll=3600)  # expired by hand below
    engine = sa.create_engine("sqlite://")
    running = threading.Event()

    @sa.event.listens_for(engine, "connect")
    def add_started(dbapi_connection: Any, record: Any) -> None:
        def started() -> int:
            running.set()  # called by the statement itself: it is running now
            return 1

        dbapi_connection.create_function("started", 0, started)

    deadlines.watch(engine)
    outcome: list[BaseException] = []
    endless = (
        "WITH RECURSIVE c(x) AS (SELECT started() UNION ALL SELECT x + 1 FROM c "
        "WHERE x < 1000000000000) SELECT max(x) FROM c"
    )

    def counter() -> None:
        with deadlines.request(), engine.connect() as conn:
            try:
                conn.exec_driver_sql(endless)
            except BaseException as exc:
                outcome.append(exc)

    worker = threading.Thread(target=counter, daemon=True)
    worker.start()
    try:
        assert running.wait(60), f"the statement never ran: {outcome}"
        clock.start = 11.0  # past the deadline
        assert deadlines.expire() == 1
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert isinstance(outcome[0], sa.exc.OperationalError)
        assert "interrupted" in str(outcome[0])
    finally:
        worker.join()
        engine.dispose()


def test_a_deadline_must_be_positive() -> None:
    for seconds in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            RequestDeadlines(seconds)


class _CountingLock:
    """A lock that counts the threads waiting for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen = threading.Condition()
        self.waiting = 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        with self._seen:
            self.waiting += 1
            self._seen.notify_all()
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def wait_for(self, count: int) -> bool:
        with self._seen:
            return self._seen.wait_for(lambda: self.waiting >= count, timeout=30)


def test_threads_racing_to_the_first_request_start_one_watchdog() -> None:
    deadlines = RequestDeadlines(10, poll=3600)
    lock = _CountingLock()
    deadlines._lock = lock  # type: ignore[assignment]
    deadlines._wake = threading.Condition(lock)  # type: ignore[arg-type]

    def watchdogs() -> int:
        return sum(t.name == "storno-deadlines" for t in threading.enumerate())

    before = watchdogs()
    lock._lock.acquire()  # both threads (past _enter's first look) wait at the lock
    racers = [threading.Thread(target=deadlines._ensure_watchdog) for _ in range(2)]
    for racer in racers:
        racer.start()
    try:
        assert lock.wait_for(2)
    finally:
        lock._lock.release()
        for racer in racers:
            racer.join(timeout=30)
    assert watchdogs() == before + 1


class _SteppedSleep:
    """The watchdog's sleep, one step at a time: each call waits until the test lets it go."""

    def __init__(self) -> None:
        self.calls = 0
        self._allowed = 0
        self._changed = threading.Condition()

    def __call__(self, seconds: float) -> None:
        with self._changed:
            self.calls += 1
            self._changed.notify_all()
            self._changed.wait_for(lambda: self._allowed >= self.calls, timeout=30)

    def called(self, count: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.calls >= count, timeout=30)

    def step(self) -> None:
        with self._changed:
            self._allowed += 1
            self._changed.notify_all()


def _resting(deadlines: RequestDeadlines) -> bool:
    """Whether the watchdog comes to rest (waits for a request) within 30 seconds."""
    give_up = threading.Event()
    timer = threading.Timer(30, give_up.set)
    timer.start()
    try:
        while not give_up.is_set():
            with deadlines._lock:
                if deadlines._idle:
                    return True
            give_up.wait(0.001)  # another thread's progress, bounded by the timer
        return False
    finally:
        timer.cancel()


class _Interruptible:
    def __init__(self) -> None:
        self.interrupted = 0

    def interrupt(self) -> None:
        self.interrupted += 1


@pytest.mark.spec("SRV-5")
def test_an_idle_watchdog_rests_until_a_request_starts() -> None:
    # Polling while no request runs wakes every idle worker 20 times a second for nothing.
    sleep = _SteppedSleep()
    deadlines = RequestDeadlines(10, sleep=sleep)
    looks: list[int] = []
    expire = deadlines.expire
    deadlines.expire = lambda: looks.append(expire()) or 0  # type: ignore[method-assign]

    with deadlines.request():
        assert sleep.called(1)  # the first request started it: it waits one poll
    sleep.step()  # that look finds no request, and none started since the one before
    assert _resting(deadlines)
    assert (sleep.calls, looks) == (1, [0])  # resting: no further poll, no further look

    # A request wakes it. Requests starting between two looks keep it polling without a wake-up.
    late = _Interruptible()
    with deadlines.request(deadline=0):  # already past its deadline
        deadlines._checkout(late)
        assert sleep.called(2)
        assert not deadlines._idle
        sleep.step()
        assert sleep.called(3)  # the request still runs: the next poll
        assert (looks, late.interrupted) == ([0, 1], 1)  # and the look cut its connection
    with deadlines.request():
        pass
    sleep.step()  # none runs, one started since the last look: it polls on
    assert sleep.called(4)
    assert looks == [0, 1, 0]
    sleep.step()  # a quiet poll: it rests again
    assert _resting(deadlines)
    assert (sleep.calls, len(looks), late.interrupted) == (4, 4, 1)


@pytest.mark.spec("SRV-5")
def test_a_connection_given_back_twice_or_never_taken_under_the_request_is_ignored() -> None:
    # The pool's checkin and a kept connection's detach may both give one back; a connection
    # taken before the request began is given back under it.
    deadlines = RequestDeadlines(10, poll=3600)
    before, taken = _Interruptible(), _Interruptible()
    with deadlines.request(deadline=0):
        deadlines._checkin(before)
        deadlines._checkout(taken)
        deadlines._checkin(taken)
        deadlines._checkin(taken)
        assert deadlines.expire() == 0  # past its deadline, but holding nothing to cut
    assert (before.interrupted, taken.interrupted) == (0, 0)


@pytest.mark.spec("SRV-5")
def test_a_forked_child_never_cuts_the_connections_of_the_parents_requests() -> None:
    # The child's copies of the parent's connections are the parent's sockets: a cut there (a
    # shutdown) would break the parent's request. Forked while a parent's thread runs a request
    # past its deadline, holding a connection, and while that thread holds the lock.
    deadlines = RequestDeadlines(10, poll=3600)
    held = _Interruptible()
    inside, forked = threading.Event(), threading.Event()

    def parent_request() -> None:
        with deadlines.request(deadline=0):
            deadlines._checkout(held)
            with deadlines._lock:
                inside.set()
                forked.wait(60)

    thread = threading.Thread(target=parent_request, daemon=True)
    thread.start()
    try:
        assert inside.wait(60)

        def in_the_child() -> str:
            done: list[str] = []

            def work() -> None:  # the lock the parent's thread held is not held here
                with deadlines.request(deadline=0):
                    done.append(f"{deadlines.expire()} {held.interrupted} {len(deadlines._active)}")

            worker = threading.Thread(target=work, daemon=True)
            worker.start()
            worker.join(timeout=30)
            return done[0] if done else "stuck"

        answer = in_a_forked_child(in_the_child)
    finally:
        forked.set()
        thread.join(timeout=60)
    assert answer == "0 0 1"  # nothing cut; only the child's own request is watched
    assert (deadlines.expire(), held.interrupted) == (0, 0)  # the parent's request has ended


@pytest.mark.spec("SRV-5")
def test_a_request_the_forking_thread_was_running_goes_unwatched_in_the_child() -> None:
    # A library user may fork inside a request (a subprocess helper): the child leaves it
    # without error, and the parent's watchdog still watches the parent's own request.
    deadlines = RequestDeadlines(10, poll=3600)
    held = _Interruptible()
    with deadlines.request(deadline=0):
        deadlines._checkout(held)

        def in_the_child() -> str:
            cut = deadlines.expire()
            deadlines._checkin(held)
            deadlines.check()  # not late: the child has no request of this thread's
            return f"{cut} {len(deadlines._active)}"

        assert in_a_forked_child(in_the_child) == "0 0"
        assert (deadlines.expire(), held.interrupted) == (1, 1)


# -- the ASGI front -----------------------------------------------------------------------------


class Gate:
    """A WSGI app that answers 200 when opened (``/slow`` waits for it; others at once)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.environs.append(environ)
        if environ["PATH_INFO"] == "/slow":
            self.open.wait(10)
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok:", body]


async def call(
    front: AsgiFront,
    path: str,
    *,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
) -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query,
        "headers": headers or [],
        "client": ("192.0.2.7", 5000),
        "server": ("127.0.0.1", 8000),
        "http_version": "1.1",
        "scheme": "http",
    }
    chunks = [body[i : i + 3] for i in range(0, len(body), 3)] or [b""]
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    await front(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


@pytest.mark.spec("SRV-5")
def test_the_front_sheds_load_above_the_bound_but_never_a_probe() -> None:
    gate = Gate()
    front = AsgiFront(gate, threads=2, max_in_flight=1, deadline=30, max_body_bytes=100)

    async def scenario() -> None:
        slow = asyncio.create_task(call(front, "/slow"))
        while front.in_flight == 0:
            await asyncio.sleep(0)  # yield to the loop until the slow request is admitted
        status, headers, body = await call(front, "/other")
        assert status == 503
        assert headers[b"retry-after"] == b"1"
        assert b'"overloaded"' in body
        assert (await call(front, "/health"))[0] == 200  # probes skip admission
        gate.open.set()
        assert (await slow)[0] == 200
        assert front.in_flight == 0
        assert (await call(front, "/other"))[0] == 200

    try:
        asyncio.run(scenario())
    finally:
        gate.open.set()
        front.close()


@pytest.mark.spec("SRV-5")
def test_the_front_answers_503_at_the_deadline_and_counts_the_busy_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate()
    front = AsgiFront(gate, threads=1, max_in_flight=5, deadline=0.01, max_body_bytes=100)

    async def scenario() -> None:
        status, headers, body = await call(front, "/slow")
        assert status == 503
        assert b'"timeout"' in body
        assert headers[b"retry-after"] == b"1"
        assert front.in_flight == 1  # its thread still runs: it holds its slot
        assert [r.getMessage() for r in caplog.records] == [
            "POST /slow: no answer by the deadline: 503 timeout"
        ]
        gate.open.set()
        while front.in_flight:
            await asyncio.sleep(0.01)  # the thread finishing, not test time

    try:
        asyncio.run(scenario())
    finally:
        gate.open.set()
        front.close()


@pytest.mark.spec("SRV-5")
def test_the_front_reads_bodies_within_the_limit_and_builds_the_environ(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = Gate()
    log = logging.getLogger("tests.access")
    front = AsgiFront(
        gate, threads=1, max_in_flight=5, deadline=5, max_body_bytes=10, access_log=log
    )

    async def scenario() -> None:
        assert (await call(front, "/x", body=b"0123456789"))[2] == b"ok:0123456789"
        assert (await call(front, "/x", body=b"0123456789A"))[0] == 413  # streamed
        declared = [(b"content-length", b"11")]
        assert (await call(front, "/x", headers=declared))[0] == 413
        headers = [
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"x-forwarded-for", b"10.0.0.2"),
            (b"content-type", b"application/json"),
        ]
        with caplog.at_level(logging.INFO, logger="tests.access"):
            await call(front, "/caf\u00e9", headers=headers, query=b"token=SECRET")

    try:
        asyncio.run(scenario())
    finally:
        front.close()
    assert gate.environs[0]["CONTENT_LENGTH"] == "10"  # came in chunks, no length header
    environ = gate.environs[-1]
    assert environ["PATH_INFO"] == "/caf\u00e9".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "token=SECRET"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_X_FORWARDED_FOR"] == "10.0.0.1,10.0.0.2"
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["REMOTE_ADDR"] == "192.0.2.7"
    assert isinstance(environ[DEADLINE_ENVIRON_KEY], float)
    assert "SECRET" not in caplog.text
    assert '"POST /caf' in caplog.text


@pytest.mark.spec("SRV-5")
def test_the_front_completes_the_lifespan() -> None:
    front = AsgiFront(Gate(), threads=1, max_in_flight=1, deadline=1, max_body_bytes=1)
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Any] = []

    async def receive() -> Any:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    asyncio.run(front({"type": "lifespan"}, receive, send))
    front.close()
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


@pytest.mark.parametrize(
    "setting", [{"threads": 0}, {"max_in_flight": 0}, {"deadline": 0}, {"deadline": -1.0}]
)
def test_the_front_refuses_a_setting_that_is_not_positive(setting: dict[str, Any]) -> None:
    values: dict[str, Any] = {"threads": 1, "max_in_flight": 1, "deadline": 1, **setting}
    with pytest.raises(ValueError, match="must be positive"):
        AsgiFront(Gate(), max_body_bytes=1, **values)


def test_the_front_serves_no_websocket_and_ignores_unknown_lifespan_messages() -> None:
    gate = Gate()
    front = AsgiFront(gate, threads=1, max_in_flight=1, deadline=1, max_body_bytes=1)
    inbox = [
        {"type": "lifespan.startup"},
        {"type": "lifespan.something-new"},
        {"type": "lifespan.shutdown"},
    ]
    sent: list[Any] = []

    async def receive() -> Any:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    try:
        asyncio.run(front({"type": "websocket", "path": "/ws"}, receive, send))
        assert (sent, len(inbox), gate.environs) == ([], 3, [])  # nothing read, nothing sent
        asyncio.run(front({"type": "lifespan"}, receive, send))
    finally:
        front.close()
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_a_client_that_leaves_while_sending_its_body_is_answered_with_an_empty_body() -> None:
    gate = Gate()
    front = AsgiFront(gate, threads=1, max_in_flight=1, deadline=5, max_body_bytes=100)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "headers": [],
        "client": None,
    }
    inbox = [{"type": "http.request", "body": b"part", "more_body": True}]
    inbox.append({"type": "http.disconnect"})
    sent: list[Any] = []

    async def receive() -> Any:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(message)

    try:
        asyncio.run(front(scope, receive, send))
    finally:
        front.close()
    assert sent[1]["body"] == b"ok:"
    environ = gate.environs[0]
    assert "CONTENT_LENGTH" not in environ
    assert (environ["REMOTE_ADDR"], environ["SERVER_NAME"], environ["SERVER_PORT"]) == (
        "",
        "localhost",
        "80",
    )


class Closing:
    """A WSGI app whose answer is an iterable with ``close()`` and its own Content-Length."""

    def __init__(self) -> None:
        self.closed = False
        self.environs: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Closing:
        self.environs.append(environ)
        start_response("201 Created", [("Content-Length", "2"), ("X-Kind", "closing")])
        return self

    def __iter__(self) -> Any:
        return iter([b"o", b"k"])

    def close(self) -> None:
        self.closed = True


def test_the_front_closes_the_answer_and_keeps_its_length() -> None:
    app = Closing()
    front = AsgiFront(app, threads=1, max_in_flight=1, deadline=5, max_body_bytes=100)
    headers = [(b"content-length", b"3"), (b"content-length", b"3")]
    try:
        status, answer_headers, body = asyncio.run(call(front, "/x", body=b"abc", headers=headers))
    finally:
        front.close()
    assert (status, body, app.closed) == (201, b"ok", True)
    assert answer_headers == {b"content-length": b"2", b"x-kind": b"closing"}
    # the length of the body read, once, not the client's header (repeated here)
    assert app.environs[0]["CONTENT_LENGTH"] == "3"
    assert app.environs[0]["wsgi.input"].read() == b"abc"


@pytest.mark.spec("SRV-5")
def test_a_queued_request_cancelled_at_shutdown_gives_back_its_slot() -> None:
    gate = Gate()
    front = AsgiFront(gate, threads=1, max_in_flight=5, deadline=0.01, max_body_bytes=100)

    async def scenario() -> None:
        # the first holds the only thread, the second waits for it: both answer "timeout"
        answers = await asyncio.gather(call(front, "/slow"), call(front, "/slow"))
        assert [a[0] for a in answers] == [503, 503]
        assert front.in_flight == 2
        front.close()  # the queued one is cancelled, the running one finishes
        gate.open.set()
        while front.in_flight:
            await asyncio.sleep(0.01)  # the thread finishing, not test time

    try:
        asyncio.run(scenario())
    finally:
        gate.open.set()
        front.close()
    assert len(gate.environs) == 1  # the cancelled request never ran


def test_a_worker_is_signalled_at_once_when_its_parent_is_already_gone() -> None:
    # SIGUSR1 instead of the default SIGTERM, caught: the process says it got it and exits
    code = textwrap.dedent(
        """
        import signal, sys
        from storno_security.integrations.asgi_front import die_with_parent
        signal.signal(signal.SIGUSR1, lambda *_: print("signalled", flush=True))
        die_with_parent(int(sys.argv[1]), signal.SIGUSR1)
        print("alive")
        """
    )

    def run(expected_parent: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, expected_parent],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    kept = run(str(os.getpid()))  # the parent it expects: nothing happens now
    assert (kept.returncode, kept.stdout) == (0, "alive\n"), kept.stderr
    orphan = run("1")  # its parent already died (the child was re-parented): signalled now
    assert (orphan.returncode, orphan.stdout) == (0, "signalled\nalive\n"), orphan.stderr


def test_a_forked_worker_starts_its_own_watchdog() -> None:
    # A fork copies no thread: the master's watchdog does not watch a worker's requests.
    deadlines = RequestDeadlines(10, poll=3600)
    with deadlines.request():
        pass
    watching = [t for t in threading.enumerate() if t.name == "storno-deadlines"]
    assert len(watching) >= 1

    def in_the_worker() -> str:
        before = sum(t.name == "storno-deadlines" for t in threading.enumerate())
        with deadlines.request():
            after = sum(t.name == "storno-deadlines" for t in threading.enumerate())
        return f"{before} {after}"

    answer = in_a_forked_child(in_the_worker)
    assert answer == "0 1"
