"""A deadline for each request's database work (SRV-5).

A request gets an absolute deadline when its thread starts it (or the one its ASGI front set
when it accepted it, so that time spent queued counts). Over a watched engine:

* a statement that would start after the deadline is not sent: the store call raises
  :class:`~storno_security.errors.StoreUnavailableError` (an expected 503, logged in one line);
* a statement, commit or liveness ping still running at the deadline has its connection cut by
  a watchdog thread (the socket is shut down; SQLite is interrupted), so the driver raises at
  once and the pool drops the connection. A hung database (a silent network, a lost reply,
  a lock no timeout covers) therefore holds a thread for the deadline at most, not for ever.
  The watchdog looks every ``poll`` seconds while requests come, and rests (no wake-up at all)
  while none runs.

The database's own timeouts (:class:`~storno_security.stores.sql.DatabaseTimeouts`) still
apply within it; this is the bound on their sum over one request.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from storno_security import _process
from storno_security.errors import StoreUnavailableError
from storno_security.stores.sql import add_direct_read_hooks

__all__ = ["DEADLINE_ENVIRON_KEY", "RequestDeadlines"]

#: The WSGI environ key where a front puts the request's absolute deadline
#: (``time.monotonic()`` seconds), so that its queueing counts.
DEADLINE_ENVIRON_KEY = "storno.deadline"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Request:
    __slots__ = ("connections", "cut", "deadline")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.connections: list[Any] = []  # in use by the request now
        self.cut: list[Any] = []  # cut by the watchdog already


class RequestDeadlines:
    """Per-thread request deadlines over the engines it :meth:`watch`\\ es.

    Args:
        seconds: the time a request may take.
        monotonic: the clock (``time.monotonic``; tests pass a frozen one).
        poll: how often the watchdog looks for requests past their deadline while requests
            come; once a look finds none running and none started since the one before, it
            sleeps until the next request starts (an idle process is not woken).
        sleep: how the watchdog waits ``poll`` (``time.sleep``; tests pass their own).
    """

    def __init__(
        self,
        seconds: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        poll: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not seconds > 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        self.seconds = seconds
        self._monotonic = monotonic
        self._poll = poll
        self._sleep = sleep
        self._watchdog_process: int | None = None
        self._fresh_state()
        _INSTANCES.add(self)

    def _fresh_state(self) -> None:
        """The state of a process that has run no request: at construction, and in a forked
        child (see :func:`_after_fork`)."""
        self._lock = threading.Lock()
        self._active: dict[int, _Request] = {}
        # The watchdog's rest, under _lock: a request that starts while it is idle wakes it.
        self._wake = threading.Condition(self._lock)
        self._idle = False
        self._started = False  # a request started since the watchdog's last look

    # -- requests ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def request(self, deadline: float | None = None) -> Iterator[None]:
        """Run a request in this thread until ``deadline`` (default: ``seconds`` from now)."""
        ident = self._enter(deadline)
        try:
            yield
        finally:
            self._leave(ident)

    def _enter(self, deadline: float | None) -> int:
        if self._watchdog_process != _process.generation():  # the first request of a process
            self._ensure_watchdog()
        ident = threading.get_ident()
        entry = _Request(deadline if deadline is not None else self._monotonic() + self.seconds)
        with self._lock:
            self._active[ident] = entry
            self._started = True
            if self._idle:  # the first request after a quiet spell: one wake-up, not a poll
                self._idle = False
                self._wake.notify()
        return ident

    def _leave(self, ident: int) -> None:
        with self._lock:
            self._active.pop(ident, None)

    def check(self) -> None:
        """Raise if this thread's request is past its deadline.

        Raises:
            StoreUnavailableError: the deadline has passed (``reason="deadline"``).
        """
        entry = self._active.get(threading.get_ident())
        if entry is not None and self._monotonic() >= entry.deadline:
            raise _late()

    def wsgi(self, app: WsgiApp) -> WsgiApp:
        """``app`` with each request under a deadline (the front's, when it set one)."""

        def deadline_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            ident = self._enter(environ.get(DEADLINE_ENVIRON_KEY))  # request(), without a
            try:  # generator per call: this wraps every request
                return app(environ, start_response)
            finally:
                self._leave(ident)

        return deadline_app

    # -- engines -------------------------------------------------------------------------------

    def watch(self, engine: sa.Engine) -> None:
        """Apply the deadline to ``engine``'s statements and connections, the stores' direct
        reads (:func:`~storno_security.stores.sql.add_direct_read_hooks`) included."""
        event.listen(engine, "before_cursor_execute", self._before_statement)
        event.listen(engine, "checkout", self._checkout)
        event.listen(engine, "checkin", self._checkin)
        event.listen(engine, "detach", self._checkin)  # kept by a store for its direct reads
        event.listen(engine, "do_connect", self._before_connect)
        dialect = engine.dialect
        ping = dialect.do_ping

        def do_ping(dbapi_connection: Any) -> bool:
            # The pool pings a connection before its checkout event: hold it while it does.
            self._checkout(dbapi_connection)
            try:
                return ping(dbapi_connection)
            finally:
                self._checkin(dbapi_connection)

        setattr(dialect, "do_ping", do_ping)  # noqa: B010 - this engine's dialect object only
        # the stores' one-statement reads, sent on a kept connection outside the pool's events
        add_direct_read_hooks(engine, before=self._before_direct_read, after=self._checkin)

    def _before_statement(self, *args: Any) -> None:
        self.check()

    def _before_connect(self, *args: Any) -> None:
        self.check()  # no new connection for a request past its deadline

    def _before_direct_read(self, dbapi_connection: Any) -> None:
        entry = self._active.get(threading.get_ident())  # check() and _checkout() in one look
        if entry is not None:
            if self._monotonic() >= entry.deadline:
                raise _late()
            with self._lock:
                entry.connections.append(dbapi_connection)

    def _checkout(self, dbapi_connection: Any, *args: Any) -> None:
        entry = self._active.get(threading.get_ident())
        if entry is not None:
            with self._lock:
                entry.connections.append(dbapi_connection)

    def _checkin(self, dbapi_connection: Any, *args: Any) -> None:
        entry = self._active.get(threading.get_ident())
        if entry is not None:
            with self._lock:
                try:  # noqa: SIM105 - suppress() costs 3 calls, after every read of every request
                    entry.connections.remove(dbapi_connection)
                except ValueError:
                    pass  # given back after the request ended, or never taken under it

    # -- watchdog ------------------------------------------------------------------------------

    def _ensure_watchdog(self) -> None:
        # _enter looked first, without the lock: this process had no watchdog then
        with self._lock:
            if self._watchdog_process == _process.generation():  # started meanwhile
                return
            self._watchdog_process = _process.generation()  # a forked child starts its own
        threading.Thread(target=self._watch, name="storno-deadlines", daemon=True).start()

    def _watch(self) -> None:
        while True:  # a daemon thread: until the process ends
            with self._lock:
                while not self._active and not self._started:  # quiet since the last look
                    self._idle = True
                    self._wake.wait()  # until a request starts (_enter)
                self._started = False
            self._sleep(self._poll)
            self.expire()

    def expire(self) -> int:
        """Cut the connections of every request past its deadline (the watchdog calls this),
        each once, also those it takes after its deadline (a pool's liveness ping); the number
        cut."""
        now = self._monotonic()
        connections: list[Any] = []
        with self._lock:
            for entry in self._active.values():
                if entry.deadline <= now:
                    fresh = [c for c in entry.connections if all(c is not d for d in entry.cut)]
                    entry.cut += fresh
                    connections += fresh
        for connection in connections:
            _cut(connection)
        return len(connections)


#: Every RequestDeadlines alive, for the fork hook below.
_INSTANCES: weakref.WeakSet[RequestDeadlines] = weakref.WeakSet()


def _after_fork() -> None:
    """In a forked child (one thread, the forking one): nothing of the parent's requests or
    watchdog holds. Its requests' connections are the parent's sockets, which a cut (a
    ``shutdown``) would break in the parent too; its lock may have been held by a parent's
    thread, which no longer exists to release it; its watchdog's rest had the parent's
    watchdog as waiter. A request the forking thread was running goes unwatched in the child
    (leaving it later is harmless), and the child's first request starts its own watchdog."""
    for deadlines in list(_INSTANCES):
        deadlines._fresh_state()


os.register_at_fork(after_in_child=_after_fork)


def _late() -> StoreUnavailableError:
    return StoreUnavailableError("request deadline passed", reason="deadline")


def _cut(dbapi_connection: Any) -> None:
    """Make a blocked driver call on ``dbapi_connection`` fail now."""
    interrupt = getattr(dbapi_connection, "interrupt", None)
    if callable(interrupt):  # sqlite3: the running statement stops with "interrupted"
        with contextlib.suppress(Exception):
            interrupt()
        return
    fileno = getattr(dbapi_connection, "fileno", None)
    if not callable(fileno):  # pragma: no cover - PyMySQL: its read timeout bounds it
        return
    # shutdown acts on the socket, not the descriptor: a duplicate reaches it without closing
    # the driver's own descriptor under it. A connection closed meanwhile has nothing to cut.
    with contextlib.suppress(Exception), socket.socket(fileno=os.dup(fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)
