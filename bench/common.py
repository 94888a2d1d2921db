"""Shared set-up for the benchmarks: a dedicated PostgreSQL database and timing helpers.

Benchmarks print their figures and, for each, the ratio against a baseline
measured on the same machine in the same run, so the ratios stay meaningful on
a shared, noisy machine where absolute numbers do not.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accounts.models import User, Workspace

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results"
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/mochi_bench"


def setup_django(**env: str) -> None:
    """Point Django at the benchmark database (created and migrated if needed)."""
    sys.path.insert(0, str(ROOT))
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mochi_site.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    for key, value in env.items():
        os.environ.setdefault(key, value)
    _create_database(url)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)


def _create_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def run_threads(threads: int, seconds: float, work: Callable[[int], int]) -> float:
    """Run `work(thread_index)` in a loop on `threads` threads for `seconds`; each call
    returns how many operations it did. Returns operations per second."""
    from django.db import connection

    stop = time.perf_counter() + seconds
    counts = [0] * threads
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def loop(index: int) -> None:
        try:
            barrier.wait()
            while time.perf_counter() < stop:
                counts[index] += work(index)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    started = time.perf_counter()
    barrier.wait()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return sum(counts) / elapsed


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(name: str, rows: list[dict[str, Any]]) -> None:
    """Print a table of results and save them to bench-results/<name>.json."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(rows, indent=2))
    print(f"\n== {name} ==")
    for row in rows:
        goal = row.get("goal")
        verdict = ""
        if goal is not None and row.get("ratio") is not None:
            met = (
                row["ratio"] >= goal if row.get("higher_is_better", True) else row["ratio"] <= goal
            )
            sign = "≥" if row.get("higher_is_better", True) else "≤"
            verdict = f"  goal {sign} {goal}: {'met' if met else 'NOT met'}"
        ratio = f"  ratio {row['ratio']:.2f}" if row.get("ratio") is not None else ""
        print(f"{row['what']:<58} {row['value']:>12,.1f} {row['unit']:<8}{ratio}{verdict}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def production_server(port: int, *, workers: int) -> list[str]:
    """The production web server's command (the Dockerfile's, with gunicorn.conf.py)."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "mochi_site.asgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]


def wait_for(url: str, timeout: float = 90) -> None:
    """Until `url` answers 200 (a server starting up refuses, or is slow to answer its first)."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Stop a server started with `production_server` at once (gunicorn's quick shutdown):
    the measurement is over, and a graceful stop waits out the graceful timeout for any
    connection the ASGI worker still counts as open."""
    os.killpg(server.pid, signal.SIGINT)
    server.wait(timeout=30)


def seed_generations(workspace: Workspace, user: User, count: int) -> None:
    """Finished generations, newest first, in batches (keys name objects that need not exist:
    the pages sign links to them without reading them)."""
    from django.utils import timezone

    from generations.models import Generation, Phase, Status

    existing = Generation.objects.filter(workspace=workspace).count()
    now = timezone.now()
    batch: list[Generation] = []
    for n in range(existing, count):
        generation_id = uuid.uuid4()
        key = f"workspaces/{workspace.pk}/generations/{generation_id}"
        batch.append(
            Generation(
                id=generation_id,
                workspace=workspace,
                created_by=user,
                prompt=f"A bench clip number {n}: waves on a rocky shore at dusk",
                guidance_scale=4.5,
                fps=16,
                frames=52,
                steps=30,
                seed=n,
                cost=39,
                hold_id=uuid.uuid4(),
                phase=Phase.SUCCEEDED,
                status=Status.SUCCEEDED,
                video_key=key + ".mp4",
                poster_key=key + ".jpg",
                video_bytes=900_000,
                created_at=now - timedelta(seconds=n),
                finished_at=now - timedelta(seconds=n - 1),
            )
        )
        if len(batch) == 5000:
            Generation.objects.bulk_create(batch)
            batch = []
            print(f"  seeded {n + 1:,} generations", file=sys.stderr)
    if batch:
        Generation.objects.bulk_create(batch)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE generations_generation")  # fresh statistics, as in production
