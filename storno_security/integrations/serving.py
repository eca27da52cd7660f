"""Running a kit application under gunicorn as it may face a private network: uvicorn's worker
class in front (slow clients hold no thread, SRV-5), a worker count that respects where the
rate limits live, JSON logs, multi-process metrics, and a Redis check before any worker starts.

The application is loaded in each worker by the ``load`` callable (nothing is shared across
``fork``); :func:`run_gunicorn` blocks until the master exits.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from storno_security.integrations import observability

__all__ = [
    "MULTIPROC_ENV",
    "WorkerPlan",
    "bind_address",
    "gunicorn_options",
    "plan_workers",
    "prepare_metrics_dir",
    "redis_eviction_problem",
    "run_gunicorn",
]

#: Where prometheus_client's multi-process mode keeps each worker's values.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@attrs.frozen
class WorkerPlan:
    """How many processes and threads to run, and why when it differs from the request."""

    workers: int
    threads: int
    note: str | None = None


def plan_workers(
    *,
    shared_limits: bool,
    limits_uri: str,
    requested: int | None,
    threads: int | None,
    cores: int | None,
) -> WorkerPlan:
    """One process when rate limits live in memory (``shared_limits`` false: they would be
    counted per process), else the request or ``min(2 * cores + 1, 8)``."""
    if not shared_limits:
        note = None
        if requested is not None and requested > 1:
            note = (
                f"running 1 worker, not {requested}: rate limits are in memory "
                f"({limits_uri}) and would be counted per process; "
                "set STORNO_REDIS_URL or STORNO_RATELIMIT_URI to run several workers"
            )
        return WorkerPlan(workers=1, threads=threads or 8, note=note)
    workers = requested or min(2 * (cores or 1) + 1, 8)
    return WorkerPlan(workers=workers, threads=threads or 4)


def bind_address(host: str, port: int) -> str:
    """gunicorn's form of a listening address (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def gunicorn_options(
    *,
    host: str,
    port: int,
    workers: int,
    timeout: int,
    graceful_timeout: int,
    log_level: str,
    json_logs: bool,
    proc_name: str,
) -> dict[str, Any]:
    """The gunicorn settings: uvicorn's event loop reads requests (slow clients hold no
    thread); with :data:`MULTIPROC_ENV` set, a dead worker's live-only values leave the sums."""
    options: dict[str, Any] = {
        "bind": [bind_address(host, port)],
        "workers": workers,
        "worker_class": "storno_security.integrations.asgi_worker.UvicornWorker",
        "timeout": timeout,
        "graceful_timeout": graceful_timeout,
        "keepalive": 5,
        "preload_app": False,
        "proc_name": proc_name,
        "errorlog": "-",
        "loglevel": log_level,
    }
    if json_logs:  # gunicorn's own lines in the app's JSON too
        options["logconfig_dict"] = observability.json_logging_config(level=log_level)
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    if metrics_dir:
        options["child_exit"] = lambda _server, worker: observability.mark_worker_dead(
            worker.pid, Path(metrics_dir)
        )
    return options


def prepare_metrics_dir(default: Path) -> None:
    """Multi-process metrics: every worker writes its values to files that ``/metrics`` adds
    up, so counters survive a worker restart and cover every worker. The directory (the
    variable, else ``default``) is emptied at each start; call before any worker imports
    ``prometheus_client``."""
    directory = Path(os.environ.get(MULTIPROC_ENV) or default)
    observability.clear_multiprocess_dir(directory)
    os.environ[MULTIPROC_ENV] = str(directory)


def run_gunicorn(
    options: dict[str, Any], *, load: Callable[[], Any], on_ready: Callable[[], None]
) -> None:
    """Run gunicorn with ``options``; each worker calls ``load`` for its application."""
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in options.items():
                self.cfg.set(name, value)
            if "control_socket_disable" in self.cfg.settings:
                # gunicorn >= 25.1 opens a control socket at one path per user ($HOME):
                # two servers would fight over it, and nothing here uses it.
                self.cfg.set("control_socket_disable", True)
            self.cfg.set("when_ready", lambda _server: on_ready())

        def load(self) -> Any:
            return load()

    Application().run()


def redis_eviction_problem(url: str, *, timeout: float) -> tuple[str | None, str | None]:
    """``(problem, note)`` of the Redis at ``url`` for the shared security state: a problem
    when it may evict keys (it must be ``noeviction``); a note when it cannot be reached
    (start degraded) or will not say its policy."""
    import redis

    from storno_security.errors import StoreUnavailableError
    from storno_security.stores.redis import eviction_policy

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        policy = eviction_policy(client)
    except StoreUnavailableError:
        return None, "Redis is unreachable: starting degraded (/ready answers 503 until it answers)"
    finally:
        client.close()
    if policy is None:
        return None, "Redis will not tell its maxmemory-policy: make sure it is noeviction"
    if policy != "noeviction":
        return (
            f"Redis' maxmemory-policy is {policy!r}: it could evict MFA challenges, replay "
            "guards and step-up tokens; set maxmemory-policy noeviction"
        ), None
    return None, None
