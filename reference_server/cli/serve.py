"""``serve``: keys and schema once, then gunicorn workers."""

from __future__ import annotations

import argparse
import os
from typing import Any

from reference_server.cli._common import (
    PROG,
    UsageError,
    note,
    positive_int,
    say,
    settings_of,
)
from reference_server.settings import Settings
from storno_security.integrations import serving
from storno_security.integrations.serving import WorkerPlan

# -- serve ----------------------------------------------------------------------------------------


def plan_workers(
    settings: Settings, *, requested: int | None, threads: int | None, cores: int | None
) -> WorkerPlan:
    """Workers for ``settings`` (see :func:`storno_security.integrations.serving.plan_workers`)."""
    return serving.plan_workers(
        shared_limits=settings.shares_state_across_processes,
        limits_uri=settings.effective_ratelimit_uri,
        requested=requested,
        threads=threads,
        cores=cores,
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
    if settings.metrics:
        serving.prepare_metrics_dir(settings.data_dir / "metrics")
    # Once, before any worker starts: keys generated on a first run, the schema created.
    from reference_server.wiring import build_server

    build_server(settings).close()
    if settings.redis_url is not None:  # refuse an evicting Redis (REF-6); start degraded
        problem, remark = serving.redis_eviction_problem(
            settings.redis_url, timeout=settings.redis_timeout
        )
        if problem:
            raise UsageError(problem)
        if remark:
            note(remark)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}"
    note(
        f"{plan.workers} worker(s) x {plan.threads} threads, data in {settings.data_dir}, "
        f"public URL {settings.public_url}"
    )
    options = serving.gunicorn_options(
        host=settings.host,
        port=settings.port,
        workers=plan.workers,
        timeout=args.timeout,
        graceful_timeout=args.graceful_timeout,
        log_level=args.log_level,
        json_logs=settings.log_format == "json",
        proc_name=PROG,
    )

    def load() -> Any:
        from reference_server.app import create_asgi_app

        return create_asgi_app(
            Settings.from_env(), threads=plan.threads, access_log=args.access_log
        )

    serving.run_gunicorn(options, load=load, on_ready=lambda: say(f"{PROG}: serving on {url}"))
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
