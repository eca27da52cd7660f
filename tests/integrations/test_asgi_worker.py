"""The gunicorn worker class (storno_security.integrations.asgi_worker): uvicorn's, without
proxy headers, uvicorn's access log or server header, and ending before it boots when its
master is already gone. Each worker runs in a process of its own, as under gunicorn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

_WORKER = textwrap.dedent(
    """
    import sys
    from gunicorn.config import Config
    from gunicorn.glogging import Logger
    from storno_security.integrations.asgi_worker import UvicornWorker

    class Application:
        def wsgi(self):
            return lambda scope, receive, send: None

    def booted(worker):
        print("booted", flush=True)
        sys.exit(0)  # instead of serving

    cfg = Config()
    cfg.set("post_worker_init", booted)
    worker = UvicornWorker(1, int(sys.argv[1]), [], Application(), 30, cfg, Logger(cfg))
    config = worker.config
    print(config.proxy_headers, config.access_log, config.server_header, flush=True)
    worker.init_process()
    """
)


def _worker(master: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WORKER, str(master)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_worker_of_a_live_master_boots_without_proxy_headers() -> None:
    worker = _worker(os.getpid())  # this process is its master
    assert (worker.returncode, worker.stdout) == (0, "False False False\nbooted\n"), worker.stderr


def test_a_worker_whose_master_is_gone_ends_before_it_boots() -> None:
    worker = _worker(1)  # not its parent: the master died and the worker was re-parented
    assert (worker.returncode, worker.stdout) == (-signal.SIGTERM, "False False False\n")
