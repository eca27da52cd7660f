"""Logs and metrics (storno_security.integrations.observability): the JSON line, the event
line without personal data, the counters each event and error feeds, who may read the metrics,
and the multi-process mode across real processes."""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import logging
import math
import os
import re
import select
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from storno_security.errors import (
    InvalidAccessTokenError,
    InvalidApiKeyError,
    RateLimitExceededError,
)
from storno_security.events import Outcome, SecurityEvent, SecurityEventType
from storno_security.integrations import observability
from storno_security.integrations.observability import (
    JsonLogFormatter,
    LogEventSink,
    Metrics,
    MetricsAccess,
    Observer,
    RequestLineWriter,
    RequestRecord,
    clear_multiprocess_dir,
    configure_logging,
    json_logging_config,
)
from storno_security.ratelimit import RateLimitStatus
from tests._fork import in_a_forked_child

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _line(record: logging.LogRecord) -> dict[str, object]:
    text = JsonLogFormatter().format(record)
    assert "\n" not in text
    parsed: dict[str, object] = json.loads(text)
    return parsed


def _record(message: str, *args: object, **fields: object) -> logging.LogRecord:
    record = logging.LogRecord("x.y", logging.INFO, __file__, 1, message, args, None)
    if fields:
        record.fields = fields
    return record


def test_a_log_record_is_one_json_line_with_its_fields() -> None:
    line = _line(_record("hello %s", "world\nforged line", route="/api/x", status=200))
    assert line["message"] == "hello world\nforged line"  # escaped inside one line
    assert line["level"] == "info"
    assert line["logger"] == "x.y"
    assert line["route"] == "/api/x"
    assert line["status"] == 200
    assert str(line["time"]).endswith("+00:00")


def test_an_exception_is_kept_in_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = _line(record)
    assert "ValueError: boom" in str(line["exception"])


def test_a_field_never_overrides_the_record() -> None:
    line = _line(_record("m", level="forged", logger="forged"))
    assert line["level"] == "info"
    assert line["logger"] == "x.y"


def test_the_logging_config_is_accepted_by_dictconfig() -> None:
    import logging.config

    config = json_logging_config(level="warning")
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        logging.config.dictConfig(config)
        assert isinstance(root.handlers[0].formatter, JsonLogFormatter)
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])


@contextlib.contextmanager
def bare_root_logger() -> Iterator[logging.Logger]:
    """The root logger without handlers (as in a fresh process), restored afterwards."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    root.handlers[:] = []
    try:
        yield root
    finally:
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])


@pytest.mark.parametrize(
    ("log_format", "formatter"),
    [("json", JsonLogFormatter), ("text", logging.Formatter)],
)
def test_configure_logging_sends_every_logger_to_stderr_in_its_format(
    log_format: str, formatter: type[logging.Formatter]
) -> None:
    with bare_root_logger() as root:
        configure_logging(log_format)
        handlers, level = list(root.handlers), root.level
    (handler,) = handlers
    assert isinstance(handler, logging.StreamHandler)
    assert handler.stream is sys.stderr
    assert type(handler.formatter) is formatter
    assert level == logging.INFO
    assert handler.formatter is not None
    line = handler.formatter.format(_record("hello"))
    if log_format == "json":
        assert json.loads(line)["message"] == "hello"
    else:
        assert line.endswith(" INFO x.y hello")


def _event(
    event_type: SecurityEventType, outcome: Outcome = Outcome.FAILURE, **details: object
) -> SecurityEvent:
    return SecurityEvent(
        type=event_type,
        at=AT,
        outcome=outcome,
        actor_id="user-1",
        organization_id="org-1",
        ip="192.0.2.7",
        user_agent="Mozilla/5.0",
        request_id="req-1",
        details=details,
    )


def test_an_event_line_has_no_person_and_no_address(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    LogEventSink().emit(_event(SecurityEventType.LOGIN_FAILED, method="password", reason="x"))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    line = _line(record)
    assert line["type"] == "login.failed"
    assert line["outcome"] == "failure"
    assert line["request_id"] == "req-1"
    assert line["details"] == {"method": "password", "reason": "x"}
    text = json.dumps(line)
    for personal in ("user-1", "org-1", "192.0.2.7", "Mozilla"):
        assert personal not in text


def _sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_events_feed_their_counters() -> None:
    metrics = Metrics()
    metrics.observe_event(_event(SecurityEventType.LOGIN_FAILED, reason="unknown_user"))
    metrics.observe_event(_event(SecurityEventType.LOGIN_FAILED, reason="unknown_user"))
    metrics.observe_event(_event(SecurityEventType.MFA_FAILED, reason="invalid_code"))
    metrics.observe_event(_event(SecurityEventType.MFA_FAILED, reason="locked"))
    metrics.observe_event(_event(SecurityEventType.TOKEN_REUSE_DETECTED))
    metrics.observe_event(_event(SecurityEventType.LOGIN_SUCCEEDED, Outcome.SUCCESS))
    metrics.observe_event(_event(SecurityEventType.LOGIN_FAILED, reason="Not A Label!"))
    total = "storno_auth_failures_total"
    assert _sample(metrics, total, kind="login", reason="unknown_user") == 2
    assert _sample(metrics, total, kind="login", reason="other") == 1
    assert _sample(metrics, total, kind="mfa", reason="invalid_code") == 1
    assert _sample(metrics, total, kind="mfa", reason="locked") == 0
    assert _sample(metrics, "storno_mfa_lockouts_total") == 1
    assert _sample(metrics, "storno_refresh_reuse_detections_total") == 1
    events = "storno_security_events_total"
    assert _sample(metrics, events, type="login.succeeded", outcome="success") == 1


def test_errors_feed_their_counters() -> None:
    metrics = Metrics()
    status = RateLimitStatus(policy="login", limit=5, remaining=0, reset=60, retry_after=60)
    metrics.observe_error(RateLimitExceededError(status=status))
    metrics.observe_error(InvalidAccessTokenError(reason="expired"))
    metrics.observe_error(InvalidApiKeyError(reason="unknown_key"))
    metrics.observe_error(ValueError("not counted"))
    assert _sample(metrics, "storno_rate_limit_refusals_total", policy="login") == 1
    total = "storno_auth_failures_total"
    assert _sample(metrics, total, kind="access_token", reason="expired") == 1
    assert _sample(metrics, total, kind="api_key", reason="unknown_key") == 1


def test_requests_are_counted_by_template_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    metrics = Metrics()
    observer = Observer(metrics=metrics)
    record = RequestRecord(
        request_id="r1",
        route="/api/users/{user_id}",
        method="GET",
        status=200,
        duration=0.012,
        principal="user",
    )
    observer.request_finished(record, error=None)
    observer.request_finished(
        RequestRecord(
            request_id=None,
            route=None,
            method="BREW",
            status=404,
            duration=0.0,
            principal="anonymous",
        ),
        error=None,
    )
    labels = {"method": "GET", "route": "/api/users/{user_id}", "status": "200"}
    assert _sample(metrics, "storno_http_requests_total", **labels) == 1
    unmatched = {"method": "OTHER", "route": "<unmatched>", "status": "404"}
    assert _sample(metrics, "storno_http_requests_total", **unmatched) == 1
    count = "storno_http_request_duration_seconds_count"
    assert _sample(metrics, count, method="GET", route="/api/users/{user_id}") == 1
    first = _line(caplog.records[0])
    assert {k: first[k] for k in ("event", "request_id", "route", "method", "status")} == {
        "event": "request",
        "request_id": "r1",
        "route": "/api/users/{user_id}",
        "method": "GET",
        "status": 200,
    }
    assert first["duration_ms"] == 12.0
    assert first["principal"] == "user"
    text = metrics.render().decode()
    assert (
        'storno_http_requests_total{method="GET",route="/api/users/{user_id}",status="200"} 1.0'
        in text
    )
    assert metrics.content_type.startswith("text/plain")


def _written(writer_format: str, record: RequestRecord, *, level: str = "INFO") -> list[str]:
    """What an observer with a RequestLineWriter wrote to a pipe for ``record``."""
    read_end, write_end = os.pipe()
    logger = logging.getLogger("storno_security.http")
    before = logger.level
    logger.setLevel(level)
    try:
        writer = RequestLineWriter(write_end, "text" if writer_format == "text" else "json")
        Observer(request_lines=writer).request_finished(record, error=None)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            text = pipe.read().decode()
            return [line + "\n" for line in text.split("\n")[:-1]]  # lines end at "\n" only
    finally:
        logger.setLevel(before)


@contextlib.contextmanager
def _request_logger_at(level: int) -> Iterator[None]:
    logger = logging.getLogger("storno_security.http")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


_SEEN = RequestRecord(
    request_id="r1\nforged",  # a hostile id stays inside its line
    route="/api/users/{user_id}",
    method="get",
    status=200,
    duration=0.0125,
    principal="user",
)


def test_the_direct_request_line_is_the_formatters_line() -> None:
    # The writer skips logging's machinery but must write what the JSON handler would.
    (line,) = _written("json", _SEEN)
    assert line.endswith("}\n")
    written = json.loads(line)
    record = logging.LogRecord("storno_security.http", logging.INFO, __file__, 1, "", (), None)
    record.msg = "GET /api/users/{user_id} 200 12.5ms user"
    record.fields = _SEEN.log_fields()
    expected = json.loads(JsonLogFormatter().format(record))
    assert list(written) == list(expected)  # the same keys in the same order
    assert {k: v for k, v in written.items() if k != "time"} == {
        k: v for k, v in expected.items() if k != "time"
    }
    assert datetime.fromisoformat(written["time"]).tzinfo is not None


@given(
    request_id=st.none() | st.text(max_size=40),
    route=st.none() | st.text(max_size=40),
    status=st.integers(100, 599),
    duration=st.floats(0, 1e4, allow_nan=False),
)
def test_any_direct_request_line_is_one_line_the_formatter_would_write(
    request_id: str | None, route: str | None, status: int, duration: float
) -> None:
    record = attrs.evolve(
        _SEEN, request_id=request_id, route=route, status=status, duration=duration
    )
    (line,) = _written("json", record, level="DEBUG")
    written = json.loads(line)
    expected = logging.LogRecord("storno_security.http", record.level, __file__, 1, "", (), None)
    fields = record.log_fields()
    expected.msg = f"GET {fields['route']} {status} {fields['duration_ms']:.1f}ms user"
    expected.fields = fields
    formatted = json.loads(JsonLogFormatter().format(expected))
    del written["time"], formatted["time"]
    assert written == formatted


def _formatters_line(record: RequestRecord) -> dict[str, Any]:
    expected = logging.LogRecord("storno_security.http", record.level, __file__, 1, "", (), None)
    fields = record.log_fields()
    expected.msg = (
        f"{fields['method']} {fields['route']} {record.status} {fields['duration_ms']:.1f}ms "
        f"{record.principal}"
    )
    expected.fields = fields
    formatted: dict[str, Any] = json.loads(JsonLogFormatter().format(expected))
    del formatted["time"]
    return formatted


@given(
    records=st.lists(
        st.builds(
            RequestRecord,
            request_id=st.none() | st.text(max_size=20),
            route=st.sampled_from([None, "/a", '/q"\\\n\u2028é{x}']),
            method=st.sampled_from(["GET", "post", "BREW"]),
            status=st.sampled_from([200, 404, 500, 503]),
            duration=st.floats(allow_nan=True, allow_infinity=True) | st.floats(0, 1),
            principal=st.sampled_from(["anonymous", "user", "api_key"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_one_writer_writes_the_formatters_line_for_every_record_it_has_seen_before(
    records: list[RequestRecord],
) -> None:
    # The writer keeps each (method, route, status, principal)'s fixed text: a line built
    # from kept text must still be the formatter's, whatever the id and the duration.
    read_end, write_end = os.pipe()
    with _request_logger_at(logging.DEBUG):
        writer = RequestLineWriter(write_end)
        for record in records * 2:
            writer.write(record)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        lines = pipe.read().decode().split("\n")[:-1]
    assert len(lines) == 2 * len(records)
    for line, record in zip(lines, records * 2, strict=True):
        written = json.loads(line)
        assert datetime.fromisoformat(written.pop("time")).tzinfo is not None
        assert written == _formatters_line(record)
        assert list(written) == list(_formatters_line(record))


def test_the_text_line_of_a_kept_series_is_the_text_formats_line() -> None:
    read_end, write_end = os.pipe()
    logger = logging.getLogger("storno_security.http")
    before = logger.level
    logger.setLevel(logging.INFO)
    try:
        writer = RequestLineWriter(write_end, "text")
        writer.write(_SEEN)
        writer.write(attrs.evolve(_SEEN, duration=1.5))
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            first, second = pipe.read().decode().splitlines()
    finally:
        logger.setLevel(before)
    assert first.endswith(" INFO storno_security.http GET /api/users/{user_id} 200 12.5ms user")
    assert second.endswith(" INFO storno_security.http GET /api/users/{user_id} 200 1500.0ms user")


def test_the_direct_text_line_has_the_text_formats_shape() -> None:
    (line,) = _written("text", _SEEN)
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO storno_security\.http "
    assert re.fullmatch(pattern + r"GET /api/users/\{user_id\} 200 12\.5ms user\n", line)


def test_the_direct_request_line_obeys_the_request_loggers_level() -> None:
    assert _written("json", _SEEN, level="WARNING") == []
    failed = RequestRecord(
        request_id=None, route=None, method="POST", status=500, duration=0.0, principal="anonymous"
    )
    (line,) = _written("json", failed, level="WARNING")
    assert json.loads(line)["level"] == "error"
    assert json.loads(line)["route"] == "<unmatched>"
    unavailable = attrs.evolve(failed, status=503)  # expected: an ordinary line
    assert _written("json", unavailable, level="WARNING") == []


def test_a_failed_request_line_write_never_fails_the_request() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)  # a descriptor that is gone: EBADF
    logger = logging.getLogger("storno_security.http")
    before = logger.level
    logger.setLevel(logging.INFO)  # the line is due: the write is tried, and fails
    try:
        metrics = Metrics()
        observer = Observer(metrics=metrics, request_lines=RequestLineWriter(write_end))
        observer.request_finished(_SEEN, error=None)
    finally:
        logger.setLevel(before)
    labels = {"method": "GET", "route": "/api/users/{user_id}", "status": "200"}
    assert _sample(metrics, "storno_http_requests_total", **labels) == 1  # still counted


def test_a_stream_without_a_descriptor_leaves_the_line_to_the_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    assert RequestLineWriter.for_stream(io.StringIO(), "json") is None
    with tempfile.TemporaryFile() as file:
        writer = RequestLineWriter.for_stream(file, "text")
        assert writer is not None
        assert (writer.fd, writer.format) == (file.fileno(), "text")
    Observer(request_lines=None).request_finished(_SEEN, error=None)
    assert [r.getMessage() for r in caplog.records] == ["GET /api/users/{user_id} 200 12.5ms user"]


def test_the_observer_sink_logs_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    metrics = Metrics()
    Observer(metrics=metrics).events.emit(_event(SecurityEventType.TOKEN_REUSE_DETECTED))
    assert [r.name for r in caplog.records] == ["storno_security.events"]
    assert _sample(metrics, "storno_refresh_reuse_detections_total") == 1


@pytest.mark.parametrize(
    ("client", "peer", "forwarded", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1", False, True),
        ("::1", "::1", False, True),
        ("10.0.0.5", "10.0.0.5", False, False),
        # a proxy on this host that is not trusted: every Internet client looks local
        ("127.0.0.1", "127.0.0.1", True, False),
        # a trusted proxy resolved the client: the client's address decides
        ("203.0.113.9", "127.0.0.1", True, False),
        ("127.0.0.2", "127.0.0.1", True, True),
        ("not an address", "not an address", False, False),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1", False, True),
        ("::ffff:10.0.0.5", "::ffff:10.0.0.5", False, False),
    ],
)
def test_who_may_read_the_metrics(client: str, peer: str, forwarded: bool, allowed: bool) -> None:
    assert MetricsAccess().allows(client, peer=peer, forwarded=forwarded) is allowed


def test_metrics_can_be_off_or_opened_to_a_network() -> None:
    assert not MetricsAccess(()).allows("127.0.0.1", peer="127.0.0.1", forwarded=False)
    assert not MetricsAccess(()).enabled
    scrapers = MetricsAccess((ipaddress.ip_network("10.1.0.0/16"),))
    assert scrapers.allows("10.1.2.3", peer="10.1.2.3", forwarded=False)
    assert not scrapers.allows("127.0.0.1", peer="127.0.0.1", forwarded=False)


_WORKER = textwrap.dedent(
    """
    import sys
    from storno_security.integrations.observability import Metrics, RequestRecord
    metrics = Metrics()
    for _ in range(int(sys.argv[1])):
        metrics.observe_request(RequestRecord(request_id=None, route="/health", method="GET",
                                              status=200, duration=0.001, principal="anonymous"))
    """
)

_RENDER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from storno_security.integrations.observability import Metrics, mark_worker_dead
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    for pid in sys.argv[1:]:
        mark_worker_dead(int(pid), directory)
    sys.stdout.write(Metrics(multiprocess_dir=directory).render().decode())
    """
)


def test_multiprocess_mode_adds_up_every_worker(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    (directory).mkdir()
    (directory / "counter_999.db").write_bytes(b"stale")
    clear_multiprocess_dir(directory)
    assert list(directory.iterdir()) == []
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for count in (2, 3):
        worker = subprocess.run(
            [sys.executable, "-c", _WORKER, str(count)], env=env, check=True, timeout=60
        )
        assert worker.returncode == 0
    rendered = subprocess.run(
        [sys.executable, "-c", _RENDER],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    line = 'storno_http_requests_total{method="GET",route="/health",status="200"} 5.0'
    assert line in rendered
    assert 'storno_http_request_duration_seconds_count{method="GET",route="/health"} 5.0' in (
        rendered
    )


def test_a_duration_that_is_no_time_is_counted_but_not_timed() -> None:
    metrics = Metrics()
    for duration in (math.nan, math.inf, -0.5, 0.25):
        metrics.observe_request(attrs.evolve(_SEEN, duration=duration))
    labels = {"method": "GET", "route": "/api/users/{user_id}"}
    assert _sample(metrics, "storno_http_requests_total", status="200", **labels) == 4
    assert _sample(metrics, "storno_http_request_duration_seconds_count", **labels) == 1
    assert _sample(metrics, "storno_http_request_duration_seconds_sum", **labels) == 0.25


def test_series_past_the_remembered_ones_are_still_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(observability, "_SERIES_CACHE", 3)  # the bound (4096), made small
    metrics = Metrics()
    routes = [f"/r/{n}" for n in range(3 + 2)]
    for route in routes:
        metrics.observe_request(attrs.evolve(_SEEN, route=route))
    metrics.observe_request(attrs.evolve(_SEEN, route=routes[-1]))  # not remembered: labels()
    metrics.observe_request(attrs.evolve(_SEEN, route=routes[0]))  # remembered
    total = "storno_http_requests_total"
    assert _sample(metrics, total, method="GET", route=routes[-1], status="200") == 2
    assert _sample(metrics, total, method="GET", route=routes[0], status="200") == 2
    assert _sample(metrics, total, method="GET", route=routes[1], status="200") == 1


def test_lines_past_the_remembered_series_are_still_written_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(observability, "_SERIES_CACHE", 2)  # the bound (4096), made small
    read_end, write_end = os.pipe()
    with _request_logger_at(logging.INFO):
        writer = RequestLineWriter(write_end)
        records = [attrs.evolve(_SEEN, route=f"/r/{n}") for n in range(4)]
        for record in [*records, *records]:
            writer.write(record)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        routes = [json.loads(line)["route"] for line in pipe.read().decode().splitlines()]
    assert routes == [f"/r/{n}" for n in range(4)] * 2
    assert len(writer._parts) == 2  # only the first two series are kept


def _read_now(read_end: int) -> bytes:
    """What the pipe holds now (nothing: b"")."""
    ready, _, _ = select.select([read_end], [], [], 0)
    return os.read(read_end, 1 << 20) if ready else b""


def _write_sizes(monkeypatch: pytest.MonkeyPatch, target: int) -> list[int]:
    """The sizes of the ``os.write`` calls to ``target`` from now on, as they happen."""
    sizes: list[int] = []
    real_write = os.write

    def counted(fd: int, data: bytes) -> int:
        if fd == target:
            sizes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counted)
    return sizes


def test_a_batching_writer_writes_waiting_lines_whole_in_order_at_most_pipe_buf_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read_end, write_end = os.pipe()
    sizes = _write_sizes(monkeypatch, write_end)
    writer = RequestLineWriter(write_end, flush_after=10)
    records = [attrs.evolve(_SEEN, request_id=f"r{n}", route=f"/r/{n}") for n in range(40)]
    writer.flush()  # nothing noted yet: nothing written
    assert sizes == []
    with _request_logger_at(logging.INFO):
        writer.write(records[0])
        assert _read_now(read_end) == b""  # it waits
        for record in records[1:]:
            writer.write(record)
        writer.flush()
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        lines = pipe.read().decode().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [f"r{n}" for n in range(40)]
    assert sum(sizes) > select.PIPE_BUF  # more than one write's worth ...
    assert 1 < len(sizes) < 40  # ... in a few writes, not one a line
    assert max(sizes) <= select.PIPE_BUF
    writes = len(sizes)
    writer.flush()  # nothing waits: nothing written
    assert len(sizes) == writes


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe's (read end, write end), both closed after the test."""
    ends = os.pipe()
    yield ends
    for end in ends:
        os.close(end)


def test_an_error_line_is_written_at_once_with_the_lines_before_it(
    pipe: tuple[int, int],
) -> None:
    read_end, write_end = pipe
    writer = RequestLineWriter(write_end, flush_after=10)
    failed = attrs.evolve(_SEEN, status=500, request_id="bad")
    with _request_logger_at(logging.INFO):
        writer.write(_SEEN)
        writer.write(attrs.evolve(_SEEN, status=503, request_id="busy"))  # an ordinary line
        assert _read_now(read_end) == b""
        writer.write(failed)
    lines = _read_now(read_end).decode().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["r1\nforged", "busy", "bad"]
    assert json.loads(lines[-1])["level"] == "error"


def test_the_background_thread_writes_what_waits(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    writer = RequestLineWriter(write_end, flush_after=0.01)
    with _request_logger_at(logging.INFO):
        writer.write(_SEEN)
    ready, _, _ = select.select([read_end], [], [], 10)  # bounded: the thread runs every 10 ms
    assert ready
    assert json.loads(os.read(read_end, 1 << 16))["request_id"] == "r1\nforged"
    assert "storno-log" in {thread.name for thread in threading.enumerate()}


def test_a_waiting_line_is_rendered_by_the_flush_not_by_the_request(
    monkeypatch: pytest.MonkeyPatch, pipe: tuple[int, int]
) -> None:
    # the request only notes its record: the rendering is the background thread's work
    read_end, write_end = pipe
    rendered: list[str] = []
    real_line = RequestLineWriter._line

    def spied(self: RequestLineWriter, now: float, level: int, record: RequestRecord) -> bytes:
        rendered.append(threading.current_thread().name)
        return real_line(self, now, level, record)

    monkeypatch.setattr(RequestLineWriter, "_line", spied)
    writer = RequestLineWriter(write_end, flush_after=10)
    with _request_logger_at(logging.INFO):
        for n in range(3):
            writer.write(attrs.evolve(_SEEN, request_id=f"w{n}"))
        assert rendered == []
        flusher = threading.Thread(target=writer.flush, name="flusher")
        flusher.start()
        flusher.join()
    assert rendered == ["flusher"] * 3
    lines = _read_now(read_end).decode().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["w0", "w1", "w2"]


def test_a_waiting_line_that_cannot_be_rendered_is_dropped_and_the_rest_written(
    monkeypatch: pytest.MonkeyPatch, pipe: tuple[int, int]
) -> None:
    # Rendering happens in the flush (the background thread): one bad line must neither stop
    # the others nor fail whoever flushes.
    read_end, write_end = pipe
    real_line = RequestLineWriter._line

    def fragile(self: RequestLineWriter, now: float, level: int, record: RequestRecord) -> bytes:
        if record.request_id == "bad":
            raise ValueError("cannot render")
        return real_line(self, now, level, record)

    monkeypatch.setattr(RequestLineWriter, "_line", fragile)
    writer = RequestLineWriter(write_end, flush_after=0.01)
    with _request_logger_at(logging.INFO):
        for request_id in ("before", "bad", "after"):
            writer.write(attrs.evolve(_SEEN, request_id=request_id))
        ready, _, _ = select.select([read_end], [], [], 10)  # bounded: a flush every 10 ms
        assert ready
        first = os.read(read_end, 1 << 16).decode().splitlines()
        writer.write(attrs.evolve(_SEEN, request_id="later"))  # the thread is still there
        ready, _, _ = select.select([read_end], [], [], 10)
        assert ready
        later = os.read(read_end, 1 << 16).decode().splitlines()
    assert [json.loads(line)["request_id"] for line in first] == ["before", "after"]
    assert [json.loads(line)["request_id"] for line in later] == ["later"]


def test_a_waiting_line_keeps_the_time_of_its_request(
    monkeypatch: pytest.MonkeyPatch, pipe: tuple[int, int]
) -> None:
    read_end, write_end = pipe
    clock = iter([1_780_000_000.25, 1_780_000_000.5])
    monkeypatch.setattr(time, "time", lambda: next(clock))
    writer = RequestLineWriter(write_end, flush_after=10)
    with _request_logger_at(logging.INFO):
        writer.write(attrs.evolve(_SEEN, request_id="early"))
        writer.write(attrs.evolve(_SEEN, request_id="later"))
        monkeypatch.setattr(time, "time", lambda: 1_780_000_009.0)  # flushed much later
        writer.flush()
    stamps = [json.loads(line)["time"] for line in _read_now(read_end).decode().splitlines()]
    assert stamps == ["2026-05-28T20:26:40.250+00:00", "2026-05-28T20:26:40.500+00:00"]


def test_at_most_256_lines_wait_the_256th_writes_them_all_in_order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = os.open(tmp_path / "lines", os.O_WRONLY | os.O_CREAT)  # more than a pipe holds
    try:
        sizes = _write_sizes(monkeypatch, out)
        writer = RequestLineWriter(out, flush_after=10)
        with _request_logger_at(logging.INFO):
            for n in range(255):
                writer.write(attrs.evolve(_SEEN, request_id=f"n{n}"))
            assert sizes == []  # 255 wait, unwritten
            writer.write(attrs.evolve(_SEEN, request_id="n255"))
    finally:
        os.close(out)
    lines = (tmp_path / "lines").read_text().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [f"n{n}" for n in range(256)]
    assert len(sizes) > 1
    assert max(sizes) <= select.PIPE_BUF


def test_a_forked_child_writes_only_its_own_lines(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    writer = RequestLineWriter(write_end, flush_after=10)
    with _request_logger_at(logging.INFO):
        writer.write(attrs.evolve(_SEEN, request_id="parent"))

        def child() -> str:
            writer.write(attrs.evolve(_SEEN, request_id="child"))
            writer.flush()
            return "done"

        assert in_a_forked_child(child) == "done"
        from_child = _read_now(read_end).decode().splitlines()
        writer.flush()
        from_parent = _read_now(read_end).decode().splitlines()
    assert [json.loads(line)["request_id"] for line in from_child] == ["child"]
    assert [json.loads(line)["request_id"] for line in from_parent] == ["parent"]


def test_waiting_lines_are_written_when_the_process_exits(tmp_path: Path) -> None:
    script = (
        "import logging, sys\n"
        "from storno_security.integrations.observability import RequestLineWriter, "
        "RequestRecord\n"
        "logging.getLogger('storno_security.http').setLevel(logging.INFO)\n"
        "writer = RequestLineWriter.for_stream(sys.stdout, 'json', flush_after=10)\n"
        "for n in range(3):\n"
        "    writer.write(RequestRecord(request_id=f'x{n}', route='/r', method='GET',\n"
        "                               status=200, duration=0.001, principal='user'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=True
    )
    lines = done.stdout.decode().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == ["x0", "x1", "x2"]


@pytest.mark.parametrize("seconds", [-0.1, 10.5, math.nan, math.inf])
def test_a_batching_delay_out_of_range_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="flush_after"):
        RequestLineWriter(1, flush_after=seconds)


def test_without_metrics_the_observer_sink_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    observer = Observer()
    observer.events.emit(_event(SecurityEventType.TOKEN_REUSE_DETECTED))
    observer.request_finished(_SEEN, error=InvalidAccessTokenError(reason="expired"))
    assert observer.metrics is None
    assert [r.name for r in caplog.records] == ["storno_security.events", "storno_security.http"]
    assert _line(caplog.records[0])["type"] == "session.token_reuse_detected"


def test_the_access_log_writes_time_stamped_lines_to_stdout_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from storno_security.integrations.observability import stdout_access_log

    name = "tests.observability.access"
    access = stdout_access_log(name)
    try:
        assert access.propagate is False  # not also in the JSON stream of stderr
        access.warning("GET /health 200")
        out, err = capsys.readouterr()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} GET /health 200\n", out)
        assert err == ""
    finally:
        for handler in list(access.handlers):
            access.removeHandler(handler)


def test_metrics_without_prometheus_client_name_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    with pytest.raises(ModuleNotFoundError, match="install the 'metrics' extra"):
        Metrics()


def test_the_metrics_event_sink_counts_each_event() -> None:
    from storno_security.integrations.observability import MetricsEventSink

    metrics = Metrics()
    sink = MetricsEventSink(metrics)
    sink.emit(_event(SecurityEventType.TOKEN_REUSE_DETECTED))
    sink.emit(_event(SecurityEventType.TOKEN_REUSE_DETECTED))
    assert _sample(metrics, "storno_refresh_reuse_detections_total") == 2


@pytest.mark.parametrize("moment", [1_780_000_000.9876, 1_780_000_001.0004, 1_780_000_001.5])
def test_the_direct_lines_time_is_the_formatters_time(
    monkeypatch: pytest.MonkeyPatch, moment: float
) -> None:
    # the whole second is rendered once a second and reused: never a stale one
    monkeypatch.setattr(time, "time", lambda: moment)
    (json_line,) = _written("json", _SEEN)
    expected = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    assert json.loads(json_line)["time"] == expected
    (text_line,) = _written("text", _SEEN)
    local = datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S")
    assert text_line.startswith(f"{local},{int(moment * 1000) % 1000:03d} INFO ")


def test_one_writer_renders_each_new_second_afresh(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="storno_security.http")
    read_end, write_end = os.pipe()
    writer = RequestLineWriter(write_end)
    moments = iter([1_780_000_000.25, 1_780_000_000.75, 1_780_000_001.125, 1_780_000_000.5])
    monkeypatch.setattr(time, "time", lambda: next(moments))
    for _ in range(4):
        writer.write(_SEEN)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        stamps = [json.loads(line)["time"] for line in pipe.read().decode().splitlines()]
    assert stamps == [
        "2026-05-28T20:26:40.250+00:00",
        "2026-05-28T20:26:40.750+00:00",
        "2026-05-28T20:26:41.125+00:00",
        "2026-05-28T20:26:40.500+00:00",  # a clock stepped back: still its own second
    ]
