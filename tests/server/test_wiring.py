"""The server's wiring: work deferred until after the answer (mail) runs on one background
thread, and a failure there is logged rather than lost."""

from __future__ import annotations

import logging
import threading

import pytest

from reference_server.wiring import _background_runner


def test_a_failed_background_task_is_logged_and_the_next_one_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = _background_runner()
    done = threading.Event()
    ran: list[str] = []

    def send_mail() -> None:
        ran.append(threading.current_thread().name)
        raise ConnectionRefusedError("the mail relay refused the connection")

    with caplog.at_level(logging.ERROR, logger="reference_server"):
        run(send_mail)  # returns at once: the caller's answer is not held up
        run(done.set)
        assert done.wait(10)
    assert len(ran) == 1
    assert ran[0].startswith("storno-background")
    [record] = [r for r in caplog.records if r.name == "reference_server"]
    assert record.getMessage() == "background task failed"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ConnectionRefusedError)
