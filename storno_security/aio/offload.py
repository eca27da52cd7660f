"""Blocking work off the event loop, in bounded thread pools.

A password hash costs about 0.3 s of CPU (bcrypt at cost 12). Run on the event loop, one login
stalls every other request for that long; run in an unbounded pool, a burst of logins takes
every core and the loop waits for CPU just the same. :class:`Offloader` keeps two lanes:

* ``cpu``: flows that hash a password (register, login, password change and reset,
  re-authentication by password). At most ``cpu_workers`` run at once, by default one less than
  the machine's cores (at least one), so a core is always left to the loop; the rest queue.
* ``io``: flows that only wait on synchronous stores (refresh, logout, authorization, the
  account's reads). More threads, since they mostly wait.

Each call runs in a copy of the caller's :mod:`contextvars` context, so the request context
(:func:`storno_security.events.request_context`) reaches the events the flow reports.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["Offloader", "default_cpu_workers"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


def default_cpu_workers() -> int:
    """One less than the CPUs this process may use, at least one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


class Offloader:
    """Two bounded thread pools for the blocking parts of a request (see the module docstring).

    Args:
        cpu_workers: threads of the ``cpu`` lane (password hashing); default
            :func:`default_cpu_workers`.
        io_workers: threads of the ``io`` lane (synchronous stores); default 16.

    Raises:
        ValueError: a worker count below 1.
    """

    def __init__(self, *, cpu_workers: int | None = None, io_workers: int = 16) -> None:
        cpu = default_cpu_workers() if cpu_workers is None else cpu_workers
        for name, value in (("cpu_workers", cpu), ("io_workers", io_workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int")
        self.cpu_workers = cpu
        self.io_workers = io_workers
        self._cpu = ThreadPoolExecutor(cpu, thread_name_prefix="storno-cpu")
        self._io = ThreadPoolExecutor(io_workers, thread_name_prefix="storno-io")

    def __repr__(self) -> str:
        return f"Offloader(cpu_workers={self.cpu_workers}, io_workers={self.io_workers})"

    async def cpu(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``function(*args, **kwargs)`` in the ``cpu`` lane and wait for its result (or
        its exception)."""
        return await self._run(self._cpu, function, *args, **kwargs)

    async def io(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run ``function(*args, **kwargs)`` in the ``io`` lane and wait for its result (or
        its exception)."""
        return await self._run(self._io, function, *args, **kwargs)

    async def _run(
        self,
        pool: ThreadPoolExecutor,
        function: Callable[_P, _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        context = contextvars.copy_context()
        call = functools.partial(context.run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(pool, call)

    def close(self) -> None:
        """Stop both pools once their queued work is done (no new work is accepted)."""
        self._cpu.shutdown(wait=True)
        self._io.shutdown(wait=True)
