"""Fairness and limits: the per-workspace running limit, queue positions, the shared rate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Workspace
from billing import wallets
from generations import services
from generations.fake_segmind import FakeSegmind
from generations.models import RUNNING_PHASES, STATUS_OF_PHASE, Generation, Phase, Status
from tests.conftest import make_user
from tests.generations.helpers import submit
from tests.support.processes import ROOT, database_url, environment
from tests.support.queue import run_tasks


@pytest.mark.django_db
def test_twenty_jobs_in_one_workspace_run_at_most_four_at_a_time(
    fake: FakeSegmind, studio: Workspace, settings: Any
) -> None:
    settings.MAX_RUNNING_PER_WORKSPACE = 4
    jobs = [submit(studio, prompt=f"clip {n}") for n in range(20)]
    assert [g.phase for g in jobs[:4]] == [Phase.SUBMITTING] * 4
    assert all(g.phase == Phase.QUEUED for g in jobs[4:])

    positions = services.queue_positions(Generation.objects.filter(pk__in=[g.pk for g in jobs]))
    assert [positions[g.pk] for g in jobs[4:]] == list(range(1, 17))
    assert services.progress(jobs[7]).queue_position == 4
    assert services.progress(jobs[7]).eta_seconds

    most = 0

    def observe() -> bool:
        nonlocal most
        running = Generation.objects.filter(workspace=studio, phase__in=RUNNING_PHASES).count()
        most = max(most, running)
        return (
            not Generation.objects.filter(workspace=studio)
            .exclude(phase__in=[Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED])
            .exists()
        )

    run_tasks(until=observe, timeout=90)
    assert most == 4
    finished = list(Generation.objects.filter(workspace=studio).order_by("started_at"))
    assert all(g.status == Status.SUCCEEDED for g in finished)
    assert [g.pk for g in finished] == [g.pk for g in jobs]  # first in, first started
    assert wallets.balance(studio).available == 1000 - 20 * jobs[0].cost


@pytest.mark.django_db
def test_one_workspaces_queue_does_not_hold_up_another(
    fake: FakeSegmind, studio: Workspace, settings: Any
) -> None:
    settings.MAX_RUNNING_PER_WORKSPACE = 1
    for n in range(3):
        submit(studio, prompt=f"busy {n}")
    other = Workspace.objects.create_team(name="Other", owner=make_user("olga@example.com"))
    wallets.grant(other, 100, key="funding")
    assert submit(other).phase == Phase.SUBMITTING


@pytest.mark.django_db
def test_a_place_in_line_counts_only_its_own_workspaces_earlier_waiting_work(
    studio: Workspace,
) -> None:
    other = Workspace.objects.create_team(name="Other", owner=make_user("olga@example.com"))
    start = timezone.now() - timedelta(minutes=1)

    def row(workspace: Workspace, second: int, phase: Phase = Phase.QUEUED) -> Generation:
        return Generation(
            id=uuid.uuid4(),
            workspace=workspace,
            prompt="waiting",
            guidance_scale=4.5,
            fps=16,
            frames=52,
            steps=30,
            seed=second,
            cost=39,
            hold_id=uuid.uuid4(),
            phase=phase,
            status=STATUS_OF_PHASE[phase],
            created_at=start + timedelta(seconds=second),
        )

    # Interleaved in time: studio's line at seconds 0, 2, 4, 6, 8; the other's at 1, 3, 5;
    # a running one (second 7) is no longer in line.
    mine = Generation.objects.bulk_create([row(studio, s) for s in (0, 2, 4, 6, 8)])
    theirs = Generation.objects.bulk_create([row(other, s) for s in (1, 3, 5)])
    running = Generation.objects.bulk_create([row(studio, 7, Phase.PROCESSING)])

    with CaptureQueriesContext(connection) as queries:
        positions = services.queue_positions([mine[4], theirs[2], mine[1], *running])
    assert positions == {mine[4].pk: 5, theirs[2].pk: 3, mine[1].pk: 2}
    assert len(queries) == 1
    assert services.queue_positions([mine[0]]) == {mine[0].pk: 1}
    assert services.queue_positions(running) == {}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_share_the_request_rate() -> None:
    """Both processes take slots as fast as they can; together they get SEGMIND_RPM."""
    start = time.time() + 4  # both processes are up by then and start together
    code = (
        "import json, os, time\n"
        "from generations import gate\n"
        "time.sleep(max(0, float(os.environ['START_AT']) - time.time()))\n"
        "taken, tries, end = 0, 0, time.time() + 2\n"
        "while time.time() < end:\n"
        "    tries += 1\n"
        "    if gate.take_slot() == 0:\n"
        "        taken += 1\n"
        "    else:\n"
        "        time.sleep(0.01)\n"
        "print(json.dumps([taken, tries]))\n"
    )
    env = {
        "DATABASE_URL": database_url(),
        "SEGMIND_RPM": "12",
        "LOG_LEVEL": "ERROR",
        "START_AT": str(start),
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", "import django; django.setup()\n" + code],
            cwd=ROOT,
            env=environment(env),
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    # Each asked for more than the whole budget (a window per process would give 12 each)...
    assert all(tries > 12 for _, tries in results), results
    # ...and together they got 12: one window shared through the database.
    assert sum(taken for taken, _ in results) == 12


@pytest.mark.django_db
def test_a_429_stops_every_call_until_the_reset_time_it_names(
    fake: FakeSegmind, studio: Workspace, settings: Any
) -> None:
    fake.state.rate_limit_reset_seconds = 1.5
    fake.add_fault("429", "submit")
    first, second = submit(studio, prompt="first"), submit(studio, prompt="second")
    run_tasks(
        until=lambda: all(
            Generation.objects.get(pk=g.pk).status == Status.SUCCEEDED for g in (first, second)
        ),
        timeout=60,
    )
    calls = fake.calls()
    (limited,) = [c for c in calls if c["status"] == "429"]
    later = [c for c in calls if c["at"] > limited["at"]]
    assert later, calls
    # Nobody (not the refused generation, not the other one) called before the reset.
    assert min(c["at"] for c in later) - limited["at"] >= 1.4
