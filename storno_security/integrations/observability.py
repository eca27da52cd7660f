"""Logs and metrics for operators, framework-agnostic: one JSON line per request, the library's
security events in the same stream, and Prometheus metrics (``prometheus_client``, the
``metrics`` extra), in one process or across gunicorn workers.

What a log line or a metric may hold is decided here, once: a request line has the request id,
the route *template* (``/api/users/{user_id}``, never the path a client sent), the method, the
status, the duration and the kind of principal (``anonymous``, ``user``, ``api_key``). Never a
header, a cookie, a token, a query string, a body or an address. An event line has the event's
type, outcome, id, request id and its details, which :mod:`storno_security.events` has already
checked to hold no secret and no personal data; the people (actor, subject) and the client
address stay in the audit log, which pseudonymises them on account deletion (logs cannot).

    observer = Observer(metrics=Metrics())
    kit = Kit(..., events=observer.events)      # security events: log lines and counters
    # per request, from the framework's hooks:
    observer.request_finished(RequestRecord(...), error=exc_or_none)

Metric labels come from closed sets (route templates, status codes, the library's error
reasons, event types), so a client cannot grow the number of series.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import logging
import math
import os
import re
import select
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from storno_security import _process
from storno_security.errors import (
    InvalidAccessTokenError,
    InvalidApiKeyError,
    RateLimitExceededError,
)
from storno_security.events import SecurityEvent, SecurityEventType

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "LOOPBACK",
    "REQUEST_LOGGER",
    "SECURITY_EVENT_LOGGER",
    "JsonLogFormatter",
    "LogEventSink",
    "Metrics",
    "MetricsAccess",
    "MetricsEventSink",
    "Observer",
    "Principal",
    "RequestLineWriter",
    "RequestRecord",
    "clear_multiprocess_dir",
    "configure_json_logging",
    "json_logging_config",
    "mark_worker_dead",
]

#: The logger of the one line per request.
REQUEST_LOGGER: Final = "storno_security.http"
#: The logger of security events.
SECURITY_EVENT_LOGGER: Final = "storno_security.events"
#: The loopback networks: where ``/metrics`` answers by default.
LOOPBACK: Final = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

Principal = Literal["anonymous", "user", "api_key"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LABEL_RE: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
#: Latency buckets in seconds: a token check takes well under a millisecond, a bcrypt login
#: about a quarter of a second at cost 12.
_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The route label of a request that matched no route (404, 405): one series for all of them.
UNMATCHED: Final = "<unmatched>"
#: The JSON of a log line (one encoder, not one per line: ``json.dumps`` with options builds one
#: each call).
_LINE_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
#: One string as that encoder writes it (quoted and escaped).
_json_string: Final[Callable[[str], str]] = json.encoder.encode_basestring
#: The most one ``write`` of waiting request lines holds: what a pipe writes atomically.
_CHUNK: Final = select.PIPE_BUF
#: At most this many request lines wait for the background thread: the request that adds the
#: last writes them all (a bound on memory and on what a crash loses, at any request rate).
_MAX_WAITING: Final = 256
#: At most this many (method, route, status) series keep their children at hand.
_SERIES_CACHE: Final = 4096


def _label(value: object, *, default: str = "other") -> str:
    """A label value from a closed set: a short snake-case word, else ``default``."""
    return value if isinstance(value, str) and _LABEL_RE.fullmatch(value) else default


def method_label(method: str) -> str:
    """The HTTP method, or ``OTHER`` for anything outside the usual seven."""
    upper = method.upper()
    return upper if upper in _METHODS else "OTHER"


# --- the request record ----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RequestRecord:
    """One finished request, as it may be logged and counted.

    Attributes:
        request_id: the request id the answer carried, or ``None``.
        route: the route template that matched (``/api/users/{user_id}``), or ``None`` when
            none did; never the path the client sent (it may hold a token or an id).
        method: the HTTP method.
        status: the status code answered.
        duration: seconds from the request's arrival to its answer (monotonic clock).
        principal: who sent it: ``anonymous``, ``user`` (an access token) or ``api_key``.
    """

    request_id: str | None
    route: str | None
    method: str
    status: int
    duration: float
    principal: Principal

    def log_fields(self) -> dict[str, Any]:
        """The fields of the request's log line."""
        return {
            "event": "request",
            "request_id": self.request_id,
            "route": self.route or UNMATCHED,
            "method": method_label(self.method),
            "status": self.status,
            "duration_ms": round(self.duration * 1000, 3),
            "principal": self.principal,
        }

    @property
    def level(self) -> int:
        """The line's level: ``ERROR`` for a 5xx other than 503, else ``INFO``. A 500 is a bug;
        a 503 is expected (a dependency is down, and its one warning line is logged where the
        error is mapped), so it stays an ordinary request line."""
        return logging.ERROR if self.status >= 500 and self.status != 503 else logging.INFO


def _request_message(fields: dict[str, Any]) -> str:
    """The text of the request line (the text format's whole line; a field of the JSON one)."""
    return "{} {} {} {:.1f}ms {}".format(
        fields["method"],
        fields["route"],
        fields["status"],
        fields["duration_ms"],
        fields["principal"],
    )


# --- JSON logs -------------------------------------------------------------------------------


class JsonLogFormatter(logging.Formatter):
    """Each record as one JSON object on one line: ``time`` (UTC, ISO 8601, milliseconds),
    ``level``, ``logger``, ``message``, the fields passed with ``extra={"fields": {...}}``, and
    ``exception`` (the traceback as text) when there is one.

    Messages and fields are JSON-escaped, so a value holding a line break or a quote cannot
    forge a second line. Use it for every handler of a process, so a log shipper reads one
    format.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for name, value in fields.items():
                line.setdefault(str(name), value)
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return _LINE_ENCODER.encode(line)


def json_logging_config(*, level: str = "INFO") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` configuration sending every logger to stderr in
    JSON (gunicorn's ``logconfig_dict`` takes it too, for its own error log)."""
    formatter = f"{__name__}.JsonLogFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True},
            "gunicorn.access": {"level": level.upper(), "handlers": [], "propagate": True},
        },
    }


def configure_json_logging(*, level: str = "INFO") -> None:
    """Send every logger of the process to stderr in JSON (see :func:`json_logging_config`)."""
    import logging.config

    logging.config.dictConfig(json_logging_config(level=level))


def configure_logging(log_format: str) -> None:
    """The process's logging: ``json`` (:func:`configure_json_logging`) or plain text lines."""
    if log_format == "json":
        configure_json_logging()
    else:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )


@attrs.define
class RequestLineWriter:
    """The request line, written straight to a file descriptor in the format
    :func:`configure_logging` gave the process, without the ``logging`` module's machinery per
    record (a ``LogRecord``, a look at the caller's frames, the handler's lock and flush): the
    same bytes a handler with :class:`JsonLogFormatter` (or the text format) would write, at
    about a fifth of the cost, which on a cheap route is most of the library's time.

    It still obeys the request logger (``storno_security.http``): nothing is written when that
    logger is disabled or its level is above the line's. Lines are written whole, at most
    ``PIPE_BUF`` bytes a ``write``, so lines from several threads or processes sharing the
    descriptor never interleave. A failed write is dropped, as a logging handler would: a full
    disk never fails a request.

    With ``flush_after`` (seconds, 0 by default) lines wait to be rendered and written together
    by a background thread, up to ``PIPE_BUF`` bytes in one ``write``: a request only notes its
    record and the time (the line's time stamp), and costs neither the rendering nor a system
    call, which in a threaded worker also saves hand-overs of the interpreter lock. A line
    waits at most ``flush_after``, and at most 256 lines wait (the request that adds the 256th
    writes them all); an ``ERROR`` line is written at once with every line before it; lines are
    written in the order they were noted; what waits is written at exit. A process killed outright
    (``SIGKILL``) loses at most the last ``flush_after`` of lines. A forked child writes only
    its own lines.

    Use :meth:`for_stream`; give it to :attr:`Observer.request_lines`.
    """

    fd: int
    format: Literal["json", "text"] = "json"
    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger(REQUEST_LOGGER))
    flush_after: float = attrs.field(default=0.0, kw_only=True)
    # the records waiting (flush_after > 0), as (time, level, record), and their process
    _waiting: list[tuple[float, int, RequestRecord]] = attrs.field(
        factory=list, init=False, repr=False
    )
    _owner: int = attrs.field(default=-1, init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    # held by the one flush that takes and writes what waits, so flushes keep the lines' order
    _flushing: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)
    # set when a line starts to wait: the background thread sleeps until then (not idle-polling)
    _due: threading.Event = attrs.field(factory=threading.Event, init=False, repr=False)
    # the time stamp's whole second, rendered once a second: (second, text)
    _second: tuple[int, str] = attrs.field(default=(-1, ""), init=False, repr=False)
    # the fixed text of the lines of each (method, route, status, principal) seen
    _parts: dict[tuple[str, str | None, int, str], tuple[str, ...]] = attrs.field(
        factory=dict, init=False, repr=False
    )

    @classmethod
    def for_stream(
        cls, stream: Any, log_format: str, *, flush_after: float = 0.0
    ) -> RequestLineWriter | None:
        """A writer to ``stream``'s descriptor (``sys.stderr``, where :func:`configure_logging`
        sends every logger), or ``None`` when the stream has none (then the logger writes)."""
        try:
            fd = int(stream.fileno())
        except (AttributeError, OSError, ValueError):
            return None
        return cls(fd, "text" if log_format == "text" else "json", flush_after=flush_after)

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.flush_after) and 0 <= self.flush_after <= 10):
            raise ValueError(f"flush_after must be 0 to 10 seconds, got {self.flush_after!r}")

    def write(self, record: RequestRecord) -> None:
        """Write ``record``'s line (the fields of :meth:`RequestRecord.log_fields`)."""
        logger = self.logger
        level = record.level
        if logger.disabled or not logger.isEnabledFor(level):
            return
        now = time.time()  # the line's time: the request's end, whenever it is written
        if self.flush_after == 0:
            self._send(self._line(now, level, record))
            return
        start = False
        with self._lock:
            if self._owner != _process.generation():  # a new process: what waits is not ours
                self._owner = _process.generation()
                self._waiting = []
                # a parent's may be held by its (gone) thread
                self._due, self._flushing = threading.Event(), threading.Lock()
                start = True  # threads do not survive a fork: this process needs its own
            waiting = self._waiting
            wake = not waiting
            waiting.append((now, level, record))
            now_too = level >= logging.ERROR or len(waiting) >= _MAX_WAITING
        if start:
            threading.Thread(target=self._flush_every, name="storno-log", daemon=True).start()
            atexit.register(self.flush)
        if now_too:
            self.flush()
        elif wake:
            self._due.set()

    def flush(self) -> None:
        """Write the lines that wait (the background thread and exit call it)."""
        if self._owner != _process.generation():
            return  # nothing of this process waits
        with self._flushing:  # one flush at a time: lines taken first are written first
            with self._lock:
                waiting, self._waiting = self._waiting, []
            chunk: list[bytes] = []
            size = 0
            for now, level, record in waiting:
                try:
                    data = self._line(now, level, record)
                except Exception:  # noqa: S112 - dropped, as a failed write is; the rest are written
                    continue
                if size + len(data) > _CHUNK and chunk:
                    self._send(b"".join(chunk))
                    chunk, size = [], 0
                chunk.append(data)
                size += len(data)
            if chunk:
                self._send(b"".join(chunk))

    def _flush_every(self) -> None:
        while True:  # a daemon thread: until the process ends
            self._due.wait()  # until a line waits
            time.sleep(self.flush_after)  # the lines of the next flush_after join it
            self._due.clear()  # before taking them: a line after this wakes the next round
            self.flush()

    def _line(self, now: float, level: int, record: RequestRecord) -> bytes:
        """The bytes of ``record``'s line, stamped ``now``."""
        second = int(now)
        cached = self._second
        if cached[0] != second:  # the same text as isoformat() / the text format's asctime
            moment = datetime.fromtimestamp(second, UTC if self.format == "json" else None)
            sep = "T" if self.format == "json" else " "
            cached = self._second = (second, moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S"))
        millis = int((now - second) * 1000)
        duration_ms = round(record.duration * 1000, 3)
        key = (record.method, record.route, record.status, record.principal)
        parts = self._parts.get(key)
        if parts is None:
            parts = self._render_parts(record, level)
            if len(self._parts) < _SERIES_CACHE:
                self._parts[key] = parts
        if self.format == "json" and math.isfinite(duration_ms):
            request_id = record.request_id
            text = (
                f"{parts[0]}{cached[1]}.{millis:03d}+00:00{parts[1]}{duration_ms:.1f}"
                f"{parts[2]}{'null' if request_id is None else _json_string(request_id)}"
                f"{parts[3]}{duration_ms!r}{parts[4]}"
            )
        elif self.format == "json":  # an infinite duration: the encoder's Infinity
            text = self._generic_json(cached[1], millis, level, record)
        else:
            text = f"{cached[1]},{millis:03d}{parts[0]}{duration_ms:.1f}{parts[1]}"
        return (text + "\n").encode("utf-8", "backslashreplace")

    def _send(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            return

    def _render_parts(self, record: RequestRecord, level: int) -> tuple[str, ...]:
        """The line's fixed text around its time, duration and request id, for one (method,
        route, status, principal): rendered once by the generic encoder, then reused."""
        name = logging.getLevelName(level)
        fields = record.log_fields()
        head = f"{fields['method']} {fields['route']} {fields['status']} "
        tail = f"ms {fields['principal']}"
        if self.format == "json":
            # the message's text around its duration, escaped as the encoder escapes it
            middle = _LINE_ENCODER.encode({"level": name.lower(), "logger": self.logger.name})
            after_id = _LINE_ENCODER.encode({k: fields[k] for k in ("route", "method", "status")})
            parts: tuple[str, ...] = (
                '{"time":"',
                '",' + middle[1:-1] + ',"message":' + _json_string(head)[:-1],
                _json_string(tail)[1:] + ',"event":"request","request_id":',
                "," + after_id[1:-1] + ',"duration_ms":',
                ',"principal":' + _json_string(fields["principal"]) + "}",
            )
        else:
            parts = (f" {name} {self.logger.name} {head}", tail)
        return parts

    def _generic_json(self, stamp: str, millis: int, level: int, record: RequestRecord) -> str:
        fields = record.log_fields()
        line: dict[str, Any] = {
            "time": f"{stamp}.{millis:03d}+00:00",
            "level": logging.getLevelName(level).lower(),
            "logger": self.logger.name,
            "message": _request_message(fields),
        }
        for key, value in fields.items():
            line.setdefault(key, value)
        return _LINE_ENCODER.encode(line)


def stdout_access_log(name: str) -> logging.Logger:
    """A logger that writes its lines, time-stamped, to stdout only (an access log)."""
    access = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    access.addHandler(handler)
    access.propagate = False
    return access


def event_log_fields(event: SecurityEvent) -> dict[str, Any]:
    """The fields of a security event's log line: type, outcome, ids and checked details.

    The actor, subject, organization, client address and user agent are left out: they are
    personal data, kept in the audit log (where account deletion pseudonymises them), and the
    ``request_id`` joins a line to its audit entry.
    """
    return {
        "event": "security",
        "type": event.type.value,
        "outcome": event.outcome.value,
        "event_id": event.event_id,
        "request_id": event.request_id,
        "details": dict(event.details),
    }


@attrs.frozen
class LogEventSink:
    """An :class:`~storno_security.events.EventSink` writing each event as one log line
    (``storno_security.events``; failures at WARNING, the rest at INFO). Never raises for a
    logging failure: ``logging`` reports its own errors and carries on."""

    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger(SECURITY_EVENT_LOGGER))

    def emit(self, event: SecurityEvent) -> None:
        level = logging.WARNING if event.outcome.value == "failure" else logging.INFO
        self.logger.log(level, event.type.value, extra={"fields": event_log_fields(event)})


# --- metrics ---------------------------------------------------------------------------------


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "metrics need prometheus_client: install the 'metrics' extra "
            "(pip install 'storno-security[metrics]')",
            name="prometheus_client",
        ) from None
    return prometheus_client


class Metrics:
    """The Prometheus metrics of one application.

    ``storno_http_requests_total{method,route,status}``,
    ``storno_http_request_duration_seconds{method,route}`` (histogram),
    ``storno_auth_failures_total{kind,reason}`` (``kind``: ``login``, ``mfa``,
    ``access_token``, ``api_key``), ``storno_rate_limit_refusals_total{policy}``,
    ``storno_mfa_lockouts_total`` (second-factor attempts refused by the lockout),
    ``storno_refresh_reuse_detections_total``, and
    ``storno_security_events_total{type,outcome}``.

    Args:
        registry: where the metrics are registered; a new registry by default (so two
            applications in one process never collide).
        multiprocess_dir: the ``PROMETHEUS_MULTIPROC_DIR`` of a multi-process server (gunicorn
            workers): :meth:`render` then adds up every worker's files. The variable must be
            set in the environment before ``prometheus_client`` is first imported (``serve``
            does); this argument only chooses how to render.

    Raises:
        ModuleNotFoundError: ``prometheus_client`` is not installed (the message names the
            ``metrics`` extra).
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        multiprocess_dir: str | Path | None = None,
    ) -> None:
        pc = _prometheus()
        self._pc = pc
        self.registry: CollectorRegistry = registry or pc.CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = Path(multiprocess_dir) if multiprocess_dir else None
        r = self.registry
        self.requests = pc.Counter(
            "storno_http_requests",
            "HTTP requests answered, by route template and status",
            ("method", "route", "status"),
            registry=r,
        )
        self.latency = pc.Histogram(
            "storno_http_request_duration_seconds",
            "Time from a request's arrival to its answer",
            ("method", "route"),
            buckets=_BUCKETS,
            registry=r,
        )
        self.auth_failures = pc.Counter(
            "storno_auth_failures",
            "Failed authentications, by credential kind and the library's reason",
            ("kind", "reason"),
            registry=r,
        )
        self.rate_limit_refusals = pc.Counter(
            "storno_rate_limit_refusals",
            "Requests refused by a rate limit, by policy",
            ("policy",),
            registry=r,
        )
        self.mfa_lockouts = pc.Counter(
            "storno_mfa_lockouts",
            "Second-factor attempts refused because the user is locked out",
            registry=r,
        )
        self.refresh_reuse = pc.Counter(
            "storno_refresh_reuse_detections",
            "Refresh tokens presented again after use (the session family was revoked)",
            registry=r,
        )
        self._request_series: dict[tuple[str, str | None, int], tuple[Any, Any]] = {}
        self.events = pc.Counter(
            "storno_security_events",
            "Security events reported by the library, by type and outcome",
            ("type", "outcome"),
            registry=r,
        )

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` of :meth:`render`'s text."""
        return str(self._pc.CONTENT_TYPE_LATEST)

    def render(self) -> bytes:
        """The text exposition format: this process's metrics, or, in multi-process mode,
        the sum over every worker (live or dead) since the directory was last cleared."""
        if self.multiprocess_dir is None:
            return bytes(self._pc.generate_latest(self.registry))
        from prometheus_client import multiprocess

        registry = self._pc.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return bytes(self._pc.generate_latest(registry))

    def observe_request(self, record: RequestRecord) -> None:
        """Count one finished request and its duration."""
        method = method_label(record.method)
        key = (method, record.route, record.status)
        series = self._request_series.get(key)
        if series is None:  # labels() validates and takes a lock: once per series, not per call
            route = record.route or UNMATCHED
            series = (
                self.requests.labels(method, route, str(record.status)),
                self.latency.labels(method, route),
            )
            if len(self._request_series) < _SERIES_CACHE:
                self._request_series[key] = series
        series[0].inc()
        if math.isfinite(record.duration) and record.duration >= 0:
            series[1].observe(record.duration)

    def observe_error(self, error: BaseException) -> None:
        """Count what the answer to a refused request says about the attack surface: a bad
        access token or API key, a rate-limit refusal. (Login and MFA failures come from the
        library's events, :meth:`observe_event`.)"""
        if isinstance(error, RateLimitExceededError):
            policy = getattr(error.status, "policy", None)
            self.rate_limit_refusals.labels(_label(policy)).inc()
        elif isinstance(error, InvalidAccessTokenError):
            self.auth_failures.labels("access_token", _label(error.reason)).inc()
        elif isinstance(error, InvalidApiKeyError):
            self.auth_failures.labels("api_key", _label(error.reason)).inc()

    def observe_event(self, event: SecurityEvent) -> None:
        self.events.labels(event.type.value, event.outcome.value).inc()
        if event.outcome.value != "failure":
            return
        reason = _label(event.details.get("reason"))
        if event.type in (SecurityEventType.LOGIN_FAILED, SecurityEventType.MFA_FAILED):
            if reason == "locked":
                self.mfa_lockouts.inc()
                return
            kind = "login" if event.type is SecurityEventType.LOGIN_FAILED else "mfa"
            self.auth_failures.labels(kind, reason).inc()
        elif event.type is SecurityEventType.TOKEN_REUSE_DETECTED:
            self.refresh_reuse.inc()


@attrs.frozen
class MetricsEventSink:
    """An :class:`~storno_security.events.EventSink` counting events in :class:`Metrics`."""

    metrics: Metrics

    def emit(self, event: SecurityEvent) -> None:
        self.metrics.observe_event(event)


@attrs.frozen
class MetricsAccess:
    """Who may read ``/metrics``: clients in ``networks`` (none: the endpoint is off).

    A request that names a forwarded client (``Forwarded``, ``X-Forwarded-For``,
    ``X-Real-IP``) is refused unless a trusted proxy forwarded it (and so the client address
    was taken from the header): a reverse proxy on the same host would otherwise make every
    Internet client look like ``127.0.0.1``.
    """

    networks: tuple[Network, ...] = LOOPBACK

    @property
    def enabled(self) -> bool:
        return bool(self.networks)

    def allows(self, client_ip: str, *, peer: str | None, forwarded: bool) -> bool:
        """Whether the client at ``client_ip`` may read the metrics.

        Args:
            client_ip: the client address, as resolved through the trusted proxies.
            peer: the address of the connection's other end.
            forwarded: the request carries a forwarding header.
        """
        if not self.networks:
            return False
        if forwarded and client_ip == peer:
            return False  # forwarded by a proxy that is not trusted: the peer is not the client
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack socket's view of an IPv4 client
        return any(address in network for network in self.networks)


# --- the observer ----------------------------------------------------------------------------


@attrs.define
class Observer:
    """The logs and metrics of one application: hand :attr:`events` to the kit, call
    :meth:`request_finished` at the end of every request.

    Attributes:
        metrics: the Prometheus metrics, or ``None`` (logs only).
        access: who may read the metrics.
        logger: the request logger (``storno_security.http``).
        event_log: the security-event sink for logs.
    """

    metrics: Metrics | None = None
    access: MetricsAccess = attrs.field(factory=MetricsAccess)
    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger(REQUEST_LOGGER))
    event_log: LogEventSink = attrs.field(factory=LogEventSink)
    #: Writes the request line straight to the process's log stream, when the process's
    #: logging is :func:`configure_logging`'s (the server sets it); ``None``: :attr:`logger`.
    request_lines: RequestLineWriter | None = None

    @property
    def events(self) -> _ObserverSink:
        """The sink to give the kit (``Kit(..., events=observer.events)``)."""
        return _ObserverSink(self)

    def request_finished(self, record: RequestRecord, *, error: BaseException | None) -> None:
        """Log one line for the request and count it (and what its error says)."""
        if self.request_lines is not None:
            self.request_lines.write(record)
        elif self.logger.isEnabledFor(level := record.level):
            fields = record.log_fields()
            self.logger.log(level, "%s", _request_message(fields), extra={"fields": fields})
        if self.metrics is not None:
            self.metrics.observe_request(record)
            if error is not None:
                self.metrics.observe_error(error)


@attrs.frozen
class _ObserverSink:
    observer: Observer

    def emit(self, event: SecurityEvent) -> None:
        self.observer.event_log.emit(event)
        if self.observer.metrics is not None:
            self.observer.metrics.observe_event(event)


# --- multi-process mode ----------------------------------------------------------------------


def clear_multiprocess_dir(directory: Path) -> None:
    """Create ``directory`` (mode 0700) or empty it of a former run's metric files: call it in
    the server's master process before any worker starts."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path in _metric_files(directory.iterdir()):
        path.unlink(missing_ok=True)


def _metric_files(paths: Iterable[Path]) -> Iterable[Path]:
    return (p for p in paths if p.suffix == ".db" and p.is_file())


def mark_worker_dead(pid: int, directory: Path) -> None:
    """Tell the metric files that worker ``pid`` exited (gunicorn's ``child_exit`` hook): its
    counters stay in the sums, its live-only gauges go."""
    _prometheus()
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
