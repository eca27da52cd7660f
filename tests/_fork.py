"""Run a piece of a test in a child forked from the test process (what a pre-fork server does
to its workers), and get back what it returns."""

from __future__ import annotations

import os
from collections.abc import Callable


def in_a_forked_child(work: Callable[[], str]) -> str:
    """What ``work`` returns when run in a child forked from this process (it leaves at once
    after, with ``os._exit``: no test teardown runs twice)."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.write(write_end, work().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(child, 0)
    return answer
