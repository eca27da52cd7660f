"""The offloader's two bounded thread pools (``aio/offload.py``)."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

import pytest

from storno_security.aio.offload import Offloader, default_cpu_workers
from tests.aio.conftest import LoopThread

REQUEST = contextvars.ContextVar("REQUEST", default="none")


@pytest.mark.parametrize(
    "counts", [{"cpu_workers": 0}, {"io_workers": 0}, {"io_workers": True}, {"cpu_workers": 1.5}]
)
def test_a_pool_needs_a_positive_int_of_workers(counts: dict[str, Any]) -> None:
    name = next(iter(counts))
    with pytest.raises(ValueError, match=f"{name} must be a positive int"):
        Offloader(**counts)


def test_the_lanes_run_in_their_own_threads_with_the_callers_context(
    loop_thread: LoopThread,
) -> None:
    pools = Offloader(cpu_workers=1, io_workers=3)
    try:
        assert repr(pools) == "Offloader(cpu_workers=1, io_workers=3)"

        def where(label: str) -> tuple[str, str, str]:
            return label, threading.current_thread().name, REQUEST.get()

        async def run() -> list[tuple[str, str, str]]:
            REQUEST.set("request-1")
            return [await pools.cpu(where, "cpu"), await pools.io(where, label="io")]

        (cpu, cpu_thread, cpu_seen), (io, io_thread, io_seen) = loop_thread.run(run())
        assert (cpu, io) == ("cpu", "io")
        assert cpu_thread.startswith("storno-cpu")
        assert io_thread.startswith("storno-io")
        assert cpu_seen == io_seen == "request-1"
    finally:
        pools.close()
    default = Offloader()
    try:
        assert default.cpu_workers == default_cpu_workers() >= 1
        assert default.io_workers == 16
    finally:
        default.close()
