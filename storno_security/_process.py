"""Which process this is, known without a system call.

State kept per process (a connection per thread, a watchdog thread, a request-id prefix) must
be made again in a forked child. Asking ``os.getpid()`` on every request costs a system call
each time; :func:`generation` is a counter that each child made by ``os.fork`` (gunicorn's
workers, ``multiprocessing``) increments once, at the fork, so comparing it is a plain read.
"""

from __future__ import annotations

import os

__all__ = ["generation"]

_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1


os.register_at_fork(after_in_child=_forked)


def generation() -> int:
    """This process's fork generation: the same value for the life of a process, a different
    one in each child forked from it (compared with a value kept from before)."""
    return _generation
