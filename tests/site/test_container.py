"""The production image: its Dockerfile's shape, and its HEALTHCHECK against production
settings (gunicorn answering only the allowed host names)."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.site.test_settings import PRODUCTION
from tests.support.processes import ROOT, environment, manage

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile line, continuations joined."""
    joined = DOCKERFILE.replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_image_is_multi_stage_and_runs_as_a_non_root_user() -> None:
    instructions = _instructions()
    stages = [args for name, args in instructions if name == "FROM"]
    assert len(stages) >= 2
    assert any("--from=build" in args for name, args in instructions if name == "COPY")
    users = [args for name, args in instructions if name == "USER"]
    assert users, "the image must switch to a non-root user"
    assert users[-1].split(":")[0] not in ("root", "0")
    # The static files are collected while building, not at start.
    assert any("collectstatic" in args for name, args in instructions if name == "RUN")
    (command,) = [args for name, args in instructions if name == "CMD"]
    assert "gunicorn" in command


def test_the_health_check_runs_the_health_script() -> None:
    (check,) = [args for name, args in _instructions() if name == "HEALTHCHECK"]
    assert "scripts/healthcheck.py" in check


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def production_server() -> Iterator[str]:
    """gunicorn on production settings (an SQLite file, a media folder), as in the image."""
    with tempfile.TemporaryDirectory(prefix="mochi-container-") as folder:
        env = {
            **PRODUCTION,
            "DATABASE_URL": f"sqlite:///{folder}/db.sqlite3",
            "MEDIA_ROOT": str(Path(folder) / "media"),
            "LOG_LEVEL": "ERROR",
        }
        migrated = manage("migrate", "--noinput", env=env, timeout=120)
        assert migrated.returncode == 0, migrated.stderr
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "mochi_site.asgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
            ],
            cwd=ROOT,
            env=environment(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}/healthz"
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    requests.get(url, timeout=30, headers={"Host": "studio.example.com"})
                    break
                except requests.RequestException:
                    time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def test_the_health_check_passes_on_production_settings(production_server: str) -> None:
    # Production answers only its own host names: 127.0.0.1 is refused...
    assert requests.get(production_server, timeout=30).status_code == 400
    # ...so the health check names an allowed host, and the site is healthy.
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "healthcheck.py"), production_server],
        env=environment({"DJANGO_ALLOWED_HOSTS": PRODUCTION["DJANGO_ALLOWED_HOSTS"]}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_health_check_fails_when_nothing_answers() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "healthcheck.py"), "http://127.0.0.1:9/healthz"],
        env=environment({"DJANGO_ALLOWED_HOSTS": "studio.example.com"}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "unhealthy" in result.stderr
