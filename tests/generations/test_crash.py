"""Crash safety with real workers: a worker process is SIGKILLed at each dangerous point.
Afterwards (the reaper, a restarted worker) the job is terminal, its hold resolved exactly
once, no credit is orphaned, and a submit whose outcome is unknown is never sent again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from accounts.models import Workspace
from billing import wallets
from billing.audit import run_audit
from billing.models import Transfer
from generations import storage, tasks
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, Status
from tests.generations.helpers import submit
from tests.support.processes import ROOT, database_url, environment

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LOGS = ROOT / "test-artifacts" / "crash"


@pytest.fixture
def media(settings: Any) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mochi-crash-media-") as folder:
        settings.MEDIA_ROOT = Path(folder)
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": folder},
            },
        }
        yield Path(folder)


@pytest.fixture
def start_worker(fake: FakeSegmind, media: Path, settings: Any) -> Iterator[Any]:
    """Start `qcluster` (one worker) that dies once at `crash_at`."""
    call_command("createcachetable", "mochi_cache", verbosity=0)  # the workers' shared cache
    clusters: list[subprocess.Popen[bytes]] = []
    marker = Path(tempfile.mkdtemp()) / "crashed"

    timings = {
        "SEGMIND_POLL_SECONDS": 1,
        "SEGMIND_TYPICAL_SECONDS": 1,
        "SEGMIND_READ_TIMEOUT_SECONDS": 3,
        "SEGMIND_V1_TIMEOUT_SECONDS": 8,
        "GENERATION_TASK_GRACE_SECONDS": 2,
        "GENERATION_INGEST_LEASE_SECONDS": 5,
    }
    for name, value in timings.items():  # the test process plays the reaper with the same
        setattr(settings, name, value)

    def start(crash_at: str) -> Path:
        env = environment(
            {
                **{name: str(value) for name, value in timings.items()},
                "CRASH_AT": crash_at,
                "CRASH_MARKER": str(marker),
                "DATABASE_URL": database_url(),
                "MEDIA_ROOT": str(media),
                "SEGMIND_BASE_URL": fake.url,
                "SEGMIND_API_KEY": "test-key",
                "SEGMIND_API_MODE": settings.SEGMIND_API_MODE,
                "SEGMIND_RPM": "100000",
                "QCLUSTER_WORKERS": "1",
                "LOG_LEVEL": "WARNING",
            }
        )
        LOGS.mkdir(parents=True, exist_ok=True)
        log = open(LOGS / f"worker-{crash_at}.log", "wb")  # noqa: SIM115 - closed with the process
        clusters.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.support.crash_worker"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        return marker

    yield start
    for cluster in clusters:
        if cluster.poll() is None:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()


def _settle(generation: Generation, timeout: float = 90) -> Generation:
    """Let the worker run; play the reaper every second (as the schedule does each minute)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        generation.refresh_from_db()
        if generation.is_terminal:
            return generation
        tasks.reap()
        time.sleep(1)
    raise AssertionError(f"{generation.pk} still {generation.phase} after {timeout} s")


def _one_resolution(generation: Generation) -> Transfer:
    resolutions = list(Transfer.objects.filter(pending_id=generation.hold_id))
    assert len(resolutions) == 1
    return resolutions[0]


@pytest.mark.parametrize(
    ("mode", "crash_at", "outcome", "posts"),
    [
        ("v2", "before_submit", Status.SUCCEEDED, 1),
        ("v2", "after_accept", Status.FAILED, 1),
        ("v2", "during_poll", Status.SUCCEEDED, 1),
        ("v2", "before_capture", Status.SUCCEEDED, 1),
        ("v1", "before_submit", Status.SUCCEEDED, 1),
        ("v1", "after_render", Status.FAILED, 1),
        ("v1", "before_capture", Status.SUCCEEDED, 1),
    ],
)
def test_a_worker_killed_mid_job(
    mode: str,
    crash_at: str,
    outcome: Status,
    posts: int,
    start_worker: Any,
    fake: FakeSegmind,
    studio: Workspace,
    settings: Any,
) -> None:
    settings.SEGMIND_API_MODE = mode
    fake.state.latency = 1.5
    marker = start_worker(crash_at)
    generation = submit(studio)

    generation = _settle(generation)
    assert marker.exists(), "the worker was meant to die at " + crash_at
    assert generation.status == outcome
    resolution = _one_resolution(generation)
    if outcome == Status.SUCCEEDED:
        assert resolution.phase == "post"
        assert storage.exists(generation.video_key)
        assert wallets.balance(studio) == wallets.Balance(
            available=1000 - generation.cost, held=0, owed=0
        )
    else:
        assert resolution.phase == "void"
        assert wallets.balance(studio) == wallets.Balance(available=1000, held=0, owed=0)
    time.sleep(2)  # anything still queued for it must not post again
    assert len(fake.calls("submit" if mode == "v2" else "v1")) == posts
    assert run_audit(record=False).ok
