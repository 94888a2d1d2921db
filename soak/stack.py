"""The production stack on this machine: gunicorn, two django-q2 clusters, moto's S3
server, the fake Segmind and the fake Stripe; and the worker killer."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.common import production_server

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/mochi_soak"


def recreate_database(url: str) -> None:
    """A fresh database for every run: the checks judge this run's work alone."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def environment(
    *, database: str, port: int, segmind: str, s3: str, bucket: str, stripe: str
) -> dict[str, str]:
    """What the web and worker processes run with: production settings (DJANGO_DEBUG
    off, JSON logs, Redis cache), shorter task timeouts so that a killed worker's step is
    handed on within the run, and the fakes' addresses."""
    from tests.support.fake_stripe import API_KEY, WEBHOOK_SECRET

    return {
        "DJANGO_SETTINGS_MODULE": "soak.settings",
        "DJANGO_DEBUG": "False",
        "DJANGO_SECRET_KEY": "soak-" + uuid.uuid4().hex * 2,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "False",
        "SITE_URL": f"http://127.0.0.1:{port}",
        "TRUSTED_PROXY_COUNT": "1",
        "DATABASE_URL": database,
        "REDIS_URL": os.environ.get("SOAK_REDIS_URL", "redis://127.0.0.1:6379/13"),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "SEGMIND_BASE_URL": segmind,
        "SEGMIND_API_KEY": "soak-key",
        "SEGMIND_RPM": "1200",
        "SEGMIND_POLL_SECONDS": "2",
        "SEGMIND_TYPICAL_SECONDS": "6",
        "SEGMIND_READ_TIMEOUT_SECONDS": "10",
        "SEGMIND_V1_TIMEOUT_SECONDS": "20",
        "QCLUSTER_WORKERS": "4",
        "QCLUSTER_TIMEOUT": "90",
        "QCLUSTER_RETRY": "120",
        "GENERATION_TASK_GRACE_SECONDS": "30",
        "GENERATION_INGEST_LEASE_SECONDS": "90",
        "AWS_STORAGE_BUCKET_NAME": bucket,
        "AWS_S3_ENDPOINT_URL": s3,
        "AWS_ACCESS_KEY_ID": "soak",
        "AWS_SECRET_ACCESS_KEY": "soak",
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": stripe,
        "SIGNUP_CREDITS": "100",
        "API_RATE_PER_KEY": "6000/min",
        "API_RATE_PER_WORKSPACE": "6000/min",
    }


class Process:
    """A child in its own session, so that a kill takes all its processes with it."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.command, self.env, self.log = name, command, env, log
        self.handle: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    def start(self) -> Process:
        if self._output is None:
            self._output = open(self.log, "ab")  # noqa: SIM115 - closed in stop()
        self.handle = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def check_alive(self) -> None:
        if self.handle is None or self.handle.poll() is not None:
            raise RuntimeError(f"{self.name} exited at start: see {self.log}")

    def kill(self) -> None:
        """SIGKILL to the whole process group: the cluster and every worker it forked."""
        if self.handle and self.handle.poll() is None:
            os.killpg(self.handle.pid, signal.SIGKILL)
            self.handle.wait(timeout=30)

    def stop(self, grace: float = 20) -> None:
        if self.handle and self.handle.poll() is None:
            os.killpg(self.handle.pid, signal.SIGTERM)
            try:
                self.handle.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._output:
            self._output.close()


def web_server(port: int, env: dict[str, str], log: Path) -> Process:
    """The Dockerfile's command: gunicorn with gunicorn.conf.py, 3 workers."""
    return Process("web", production_server(port, workers=3), env, log)


def cluster(n: int, env: dict[str, str], log: Path) -> Process:
    return Process(f"worker-{n}", [sys.executable, "manage.py", "qcluster"], env, log)


@dataclass
class Kill:
    at: float
    worker: str


@dataclass
class WorkerKiller:
    """Kills a random worker cluster with SIGKILL every `low` to `high` seconds and starts
    it again, until stopped."""

    clusters: list[Process]
    low: float = 45
    high: float = 120
    seed: int = 0
    kills: list[Kill] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._random = random.Random(self.seed)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> WorkerKiller:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._random.uniform(self.low, self.high)):
            victim = self._random.choice(self.clusters)
            victim.kill()
            self.kills.append(Kill(time.time(), victim.name))
            logging.getLogger("soak").warning("killed %s with SIGKILL; restarting", victim.name)
            victim.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
