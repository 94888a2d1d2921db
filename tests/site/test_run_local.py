"""`make run`'s launcher (scripts/run-local.sh): it starts the web server, the worker and
the demo upstream, and Ctrl-C (SIGINT to the terminal's process group) stops them all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.processes import ROOT, environment, manage


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _session(session: int) -> dict[int, str]:
    """The live processes of a session (the launcher and its servers): pid -> command."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # fields: state, ppid, pgrp, session, ...; zombies have exited already.
        if int(fields[3]) == session and fields[0] != "Z":
            found[int(entry.name)] = command
    return found


def _wait_for(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return False


@pytest.fixture
def local_env() -> Iterator[dict[str, str]]:
    """A fresh checkout's configuration (nothing set), in its own folder, migrated as
    `make run` does first."""
    with tempfile.TemporaryDirectory(prefix="mochi-run-") as folder:
        env = environment(
            {
                "DATABASE_URL": f"sqlite:///{folder}/db.sqlite3",
                "MEDIA_ROOT": str(Path(folder) / "media"),
                "MOCHI_PORT": str(_free_port()),
                "DEMO_UPSTREAM_PORT": str(_free_port()),
                "PY": sys.executable,
            }
        )
        for name in ("SEGMIND_API_KEY", "SEGMIND_BASE_URL", "SITE_URL", "DJANGO_DEBUG"):
            env.pop(name, None)
        for command in (("migrate", "--noinput"), ("createcachetable",)):
            result = manage(*command, env=env, timeout=120)
            assert result.returncode == 0, result.stderr
        yield env


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as output:
        # Its own session and process group, as a job in a terminal: Ctrl-C signals
        # the whole foreground group.
        return subprocess.Popen(
            ["bash", "scripts/run-local.sh"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,  # stands for the terminal: not /dev/null
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_it_starts_web_worker_and_demo_upstream_and_ctrl_c_stops_them_all(
    local_env: dict[str, str], tmp_path: Path
) -> None:
    site = f"http://127.0.0.1:{local_env['MOCHI_PORT']}"
    upstream = f"http://127.0.0.1:{local_env['DEMO_UPSTREAM_PORT']}"
    launcher = _start(local_env, tmp_path / "run.log")
    try:

        def healthy() -> bool:
            try:
                return requests.get(f"{site}/healthz", timeout=2).status_code == 200
            except requests.RequestException:  # not up yet, or slow to answer its first
                return False

        assert _wait_for(healthy, 60), (tmp_path / "run.log").read_text()
        credits = requests.get(
            f"{upstream}/v1/get-user-credits", headers={"x-api-key": "demo-key"}, timeout=5
        )
        assert credits.status_code == 200
        servers = _session(launcher.pid)
        commands = " | ".join(servers.values())
        for part in ("gunicorn mochi_site.asgi:application", "qcluster", "fake_segmind"):
            assert part in commands
        # Nothing reads the terminal: in a background process group that stops a process
        # (ffmpeg in the demo upstream did, and no video ever finished).
        for pid, command in servers.items():
            if "manage.py" in command or "gunicorn" in command:
                assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null", command

        os.killpg(launcher.pid, signal.SIGINT)  # Ctrl-C
        assert launcher.wait(timeout=60) is not None
        assert _wait_for(lambda: not _session(launcher.pid), 30), _session(launcher.pid)
        for port in (local_env["MOCHI_PORT"], local_env["DEMO_UPSTREAM_PORT"]):
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", int(port))) != 0
    finally:
        for pid in _session(launcher.pid):
            os.kill(pid, signal.SIGKILL)
        launcher.wait(timeout=30)


def test_a_port_in_use_is_named_with_the_setting_that_changes_it(
    local_env: dict[str, str], tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(local_env["MOCHI_PORT"])))
        taken.listen()
        launcher = _start(local_env, tmp_path / "run.log")
        assert launcher.wait(timeout=30) != 0
    output = (tmp_path / "run.log").read_text()
    assert f"Port {local_env['MOCHI_PORT']} on 127.0.0.1 is already in use" in output
    assert "MOCHI_PORT=" in output
    assert not _session(launcher.pid)
