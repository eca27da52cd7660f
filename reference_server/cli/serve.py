"""``serve``: keys and schema once, then gunicorn workers."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import attrs

from reference_server.cli._common import (
    PROG,
    note,
    positive_int,
    say,
    settings_of,
)
from reference_server.settings import Settings
from storno_security.integrations import observability

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


#: The access log leaves out the query string (``%(U)s`` is the path alone), the referer and
#: the user agent: a token in a URL must never reach a log.
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'


def _bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _gunicorn_options(
    settings: Settings, plan: WorkerPlan, args: argparse.Namespace
) -> dict[str, Any]:
    proxies = ",".join(str(network) for network in settings.trusted_proxies)
    options: dict[str, Any] = {
        "bind": [_bind_address(settings.host, settings.port)],
        "workers": plan.workers,
        "threads": plan.threads,
        "worker_class": "gthread",
        "timeout": args.timeout,
        "graceful_timeout": args.graceful_timeout,
        "keepalive": 5,
        "preload_app": False,
        "proc_name": PROG,
        # X-Forwarded-Proto is believed only from the proxies the app trusts for client IPs
        # (none when STORNO_TRUSTED_PROXIES is empty, rather than gunicorn's loopback default).
        "forwarded_allow_ips": proxies,
        "limit_request_line": 8190,
        "limit_request_fields": 100,
        "limit_request_field_size": 8190,
        "errorlog": "-",
        "loglevel": args.log_level,
        "accesslog": "-" if args.access_log else None,
        "access_log_format": ACCESS_LOG_FORMAT,
    }
    if settings.log_format == "json":  # gunicorn's own lines in the app's JSON too
        options["logconfig_dict"] = observability.json_logging_config(level=args.log_level)
    metrics_dir = os.environ.get(MULTIPROC_ENV)
    if metrics_dir:  # a dead worker's live-only values leave the sums (counters stay)
        options["child_exit"] = lambda _server, worker: observability.mark_worker_dead(
            worker.pid, Path(metrics_dir)
        )
    return options


#: Where prometheus_client's multi-process mode keeps each worker's values.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir(settings: Settings) -> None:
    """Multi-process metrics: every worker writes its values to files that ``/metrics`` adds
    up, so counters survive a worker restart and cover every worker. The directory (the
    variable, else ``DATA_DIR/metrics``) is emptied at each start; set before any import of
    ``prometheus_client`` in a worker."""
    if not settings.metrics:
        return
    directory = Path(os.environ.get(MULTIPROC_ENV) or settings.data_dir / "metrics")
    observability.clear_multiprocess_dir(directory)
    os.environ[MULTIPROC_ENV] = str(directory)


def _run_gunicorn(options: dict[str, Any], url: str) -> None:
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
            from reference_server.app import create_app_from_env

            return create_app_from_env()

    StornoApplication().run()


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
    # Workers read their settings from the environment: pass the flags on the same way.
    if args.data_dir is not None:
        os.environ["STORNO_DATA_DIR"] = str(settings.data_dir)
    os.environ["STORNO_HOST"] = settings.host
    os.environ["STORNO_PORT"] = str(settings.port)
    os.environ["STORNO_WORKERS"] = str(plan.workers)
    prepare_metrics_dir(settings)
    # Once, before any worker starts: keys generated on a first run, the schema created.
    from reference_server.wiring import build_server

    build_server(settings).close()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    url = f"http://{host}:{settings.port}"
    note(
        f"{plan.workers} worker(s) x {plan.threads} threads, data in {settings.data_dir}, "
        f"public URL {settings.public_url}"
    )
    _run_gunicorn(_gunicorn_options(settings, plan, args), url)
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
        help="threads per worker (default 8 for one worker, else 4)",
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
