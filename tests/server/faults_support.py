"""Real components that fail on demand, for the fault tests and ``bench/faults.py``: a loopback
TCP proxy that forwards, slows or holds traffic (in front of PostgreSQL), a Redis server of our
own to kill, and the real ``serve`` command on a free port. Everything is loopback only and
bounded in time."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``. ``delay`` seconds are added before each chunk
    in each direction (a round trip gains twice that); :meth:`hold` stops forwarding (a hung
    database: connections stay open, nothing arrives); :meth:`cut` closes every connection."""

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.delay = 0.0
        #: chunks sent towards the target: about one per database round trip
        self.chunks_up = 0
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.release()
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst, up in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(src, dst, up), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self.delay:
                    time.sleep(self.delay)  # the latency this proxy exists to add
                while not self._flowing.wait(0.1):
                    if self._closed:
                        return
                dst.sendall(data)
                if up:
                    self.chunks_up += 1
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class OwnRedis:
    """A redis-server of this test's own on ``port`` (no persistence), killed at will."""

    def __init__(self, port: int | None = None, *, directory: Path) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self, *options: str) -> OwnRedis:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self._directory), *options),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)  # waiting for a real process to listen
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def request(
    port: int,
    method: str,
    path: str,
    *,
    body: Any = None,
    token: str | None = None,
    ip: str = "10.9.9.9",
    timeout: float = 10,
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request to the local server; status, headers (lower-case), parsed JSON."""
    headers = {"X-Forwarded-For": ip}
    raw = None
    if body is not None:
        raw = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=raw, headers=headers)
        response = conn.getresponse()
        data = response.read()
        answer = {k.lower(): v for k, v in response.getheaders()}
        return response.status, answer, json.loads(data) if data else None
    finally:
        conn.close()


class Served:
    """``storno-security serve`` as a real process on a free port, waited for."""

    TEST_ENV: ClassVar[dict[str, str]] = {
        "STORNO_PASSWORD_COST": "4",
        "STORNO_TRUSTED_PROXIES": "127.0.0.1/32",
        "STORNO_PUBLIC_URL": "http://localhost:8000",
        "STORNO_EMAIL_SINK": "memory",
        "STORNO_COOKIE_SECURE": "false",
    }

    def __init__(self, data_dir: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.log_path = data_dir.parent / f"serve-{self.port}.log"
        full_env = self.environment(data_dir, **env)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "reference_server", "serve", "--port", str(self.port)),
                *("--graceful-timeout", "3", *args),
            ],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log()[-3000:]}")
            try:
                if request(self.port, "GET", "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)  # waiting for a real process to listen
        self.stop()
        raise RuntimeError(f"serve did not answer: {self.log()[-3000:]}")

    @classmethod
    def environment(cls, data_dir: Path, **env: str) -> dict[str, str]:
        """This process's environment without its ``STORNO_`` variables, plus the test's."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("STORNO_")}
        full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")])
        full_env.update(cls.TEST_ENV, STORNO_DATA_DIR=str(data_dir), **env)
        return full_env

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        """The pids whose parent is the master."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    found.append(int(entry.name))
        return found

    @staticmethod
    def running(pid: int) -> bool:
        """Whether ``pid`` runs (a zombie waiting for a reaper has exited)."""
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def register(port: int, email: str, *, ip: str = "10.9.9.9") -> str:
    """A new account's access token."""
    status, _, body = request(
        port,
        "POST",
        "/api/auth/register",
        body={"email": email, "password": "correct horse battery"},
        ip=ip,
    )
    assert status == 201, body
    token: str = body["access_token"]
    return token
