"""The production web server (gunicorn's ASGI worker, as in the Dockerfile) in a child
process, on the test database, for tests that need a real server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.processes import ROOT, environment

LOGS = ROOT / "test-artifacts" / "web-server"


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def web_server(env: dict[str, str], *, workers: int = 1, name: str = "web") -> Iterator[Server]:
    """Start `gunicorn mochi_site.asgi:application` (its ASGI worker set in gunicorn.conf.py)
    and yield it (its base URL and log) once `/healthz` answers; stopped (SIGTERM)
    afterwards. `env` overrides the production settings' environment (the database URL,
    MEDIA_ROOT, …)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{name}-{port}.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "mochi_site.asgi:application",  # with gunicorn.conf.py, as in the Dockerfile
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--graceful-timeout",
        "3",
    ]
    overrides = {"SITE_URL": base, "DJANGO_ALLOWED_HOSTS": "127.0.0.1", **env}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment(overrides), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_until_up(base, process, log_path)
        yield Server(base, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 120  # a generous bound: CI machines may be busy
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the web server exited:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(f"{base}/healthz", timeout=10).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still starting
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the web server did not answer:\n{log_path.read_text()[-3000:]}")
