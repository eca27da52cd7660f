"""``serve``: keys and schema once, then gunicorn workers."""

from __future__ import annotations

import argparse
import os
from typing import Any

import attrs

from reference_server.cli._common import (
    PROG,
    UsageError,
    note,
    positive_int,
    say,
    settings_of,
)
from reference_server.settings import Settings

# -- serve ----------------------------------------------------------------------------------------


@attrs.frozen
class WorkerPlan:
    """How many processes and threads ``serve`` runs, and why when it differs from the request."""

    workers: int
    threads: int
    note: str | None = None


def plan_workers(
    settings: Settings, *, requested: int | None, threads: int | None, cores: int | None
) -> WorkerPlan:
    """Workers for ``settings``: one process when rate limits live in memory (they would be per
    process otherwise), else the request or ``min(2 * cores + 1, 8)``."""
    if not settings.shares_state_across_processes:
        note = None
        if requested is not None and requested > 1:
            note = (
                f"running 1 worker, not {requested}: rate limits are in memory "
                f"({settings.effective_ratelimit_uri}) and would be counted per process; "
                "set STORNO_REDIS_URL or STORNO_RATELIMIT_URI to run several workers"
            )
        return WorkerPlan(workers=1, threads=threads or 8, note=note)
    workers = requested or min(2 * (cores or 1) + 1, 8)
    return WorkerPlan(workers=workers, threads=threads or 4)


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _gunicorn_options(
    settings: Settings, plan: WorkerPlan, args: argparse.Namespace
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bind": [_bind_address(settings.host, settings.port)],
        "workers": plan.workers,
        # uvicorn's event loop reads requests (slow clients hold no thread); the app runs in
        # plan.threads threads behind an admission bound and a deadline (SRV-5)
        "worker_class": "storno_security.integrations.asgi_worker.UvicornWorker",
        "timeout": args.timeout,
        "graceful_timeout": args.graceful_timeout,
        "keepalive": 5,
        "preload_app": False,
        "proc_name": PROG,
        "errorlog": "-",
        "loglevel": args.log_level,
    }
    return options


def _run_gunicorn(options: dict[str, Any], url: str, threads: int, access_log: bool) -> None:
    from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

    class StornoApplication(BaseApplication):  # type: ignore[misc]
        """gunicorn with our options and the app factory (each worker builds its services)."""

        def load_config(self) -> None:
            for name, value in options.items():
                self.cfg.set(name, value)
            if "control_socket_disable" in self.cfg.settings:
                # gunicorn >= 25.1 opens a control socket at one path per user ($HOME):
                # two servers would fight over it, and nothing here uses it.
                self.cfg.set("control_socket_disable", True)

            def when_ready(server: Any) -> None:
                say(f"{PROG}: serving on {url}")

            self.cfg.set("when_ready", when_ready)

        def load(self) -> Any:
            from reference_server.app import create_asgi_app

            return create_asgi_app(Settings.from_env(), threads=threads, access_log=access_log)

    StornoApplication().run()


def _check_redis(settings: Settings) -> None:
    """Refuse a Redis that may evict the shared state (REF-6, exit 2 with one line); start
    degraded when it cannot be reached (workers reconnect when it answers)."""
    if settings.redis_url is None:
        return
    import redis

    from storno_security.errors import StoreUnavailableError
    from storno_security.stores.redis import eviction_policy

    timeout = settings.redis_timeout
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        policy = eviction_policy(client)
    except StoreUnavailableError:
        policy = "unreachable"
        note("Redis is unreachable: starting degraded (/ready answers 503 until it answers)")
    finally:
        client.close()
    if policy is None:
        note("Redis will not tell its maxmemory-policy: make sure it is noeviction")
    elif policy not in ("noeviction", "unreachable"):
        raise UsageError(
            f"Redis' maxmemory-policy is {policy!r}: it could evict MFA challenges, replay "
            "guards and step-up tokens; set maxmemory-policy noeviction"
        )


def cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.workers is not None:
        overrides["workers"] = args.workers
    settings = settings_of(args, **overrides)
    plan = plan_workers(
        settings, requested=settings.workers, threads=args.threads, cores=os.cpu_count()
    )
    if plan.note:
        note(plan.note)
    mismatch = settings.listen_mismatch()
    if mismatch:
        note(mismatch)
    # Workers read their settings from the environment: pass the flags on the same way.
    if args.data_dir is not None:
        os.environ["STORNO_DATA_DIR"] = str(settings.data_dir)
    os.environ["STORNO_HOST"] = settings.host
    os.environ["STORNO_PORT"] = str(settings.port)
    os.environ["STORNO_WORKERS"] = str(plan.workers)
    # Once, before any worker starts: keys generated on a first run, the schema created.
    from reference_server.wiring import build_server

    build_server(settings).close()
    _check_redis(settings)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}"
    note(
        f"{plan.workers} worker(s) x {plan.threads} threads, data in {settings.data_dir}, "
        f"public URL {settings.public_url}"
    )
    _run_gunicorn(_gunicorn_options(settings, plan, args), url, plan.threads, args.access_log)
    return 0


def add_parser(commands: Any, data: argparse.ArgumentParser) -> None:
    serve = commands.add_parser(
        "serve",
        parents=[data],
        help="run the HTTP server (gunicorn)",
        description="Prepare keys and schema once, then run gunicorn workers. With in-memory "
        "rate limits one worker runs (several threads); with Redis several workers run.",
    )
    serve.add_argument("--host", help="address to listen on (STORNO_HOST, default 127.0.0.1)")
    serve.add_argument(
        "--port", type=positive_int, help="port to listen on (STORNO_PORT, default 8000)"
    )
    serve.add_argument(
        "--workers",
        type=positive_int,
        help="worker processes (STORNO_WORKERS; default min(2 x cores + 1, 8), "
        "or 1 with in-memory rate limits)",
    )
    serve.add_argument(
        "--threads",
        type=positive_int,
        help="request threads per worker (default 8 for one worker, else 4)",
    )
    serve.add_argument(
        "--timeout",
        type=positive_int,
        default=30,
        help="seconds before a silent worker is killed and restarted (default 30)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=positive_int,
        default=30,
        help="seconds a worker may finish its requests on shutdown (default 30)",
    )
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="log each request to stdout (path only: query strings are never logged)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error", "critical"),
        help="gunicorn log level (default info)",
    )
    serve.set_defaults(func=cmd_serve)
