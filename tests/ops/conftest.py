"""A known state of the whole system for the operator's page and /metrics to report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ, Task

from accounts.models import User, Workspace
from billing import wallets
from billing.models import AuditRun, StripeEvent
from generations import gate, services
from generations.models import STATUS_OF_PHASE, Generation, Phase
from tests.conftest import make_user
from tests.generations.helpers import submit


@pytest.fixture
def operator(db: None) -> User:
    """Staff: signs in to the admin and the operator's page."""
    user = make_user("oscar@example.com")
    User.objects.filter(pk=user.pk).update(is_staff=True)
    user.refresh_from_db()
    return user


@dataclass
class Seeded:
    workspace: Workspace
    now: datetime


def delivered(workspace: Workspace, *, cost_usd: str | None, finished_at: datetime) -> Generation:
    generation = submit(workspace)
    Generation.objects.filter(pk=generation.pk).update(
        phase=Phase.SUCCEEDED,
        status=STATUS_OF_PHASE[Phase.SUCCEEDED],
        video_key=f"videos/{generation.pk}.mp4",
        finished_at=finished_at,
        upstream_done_at=finished_at,
        upstream_cost_usd=Decimal(cost_usd) if cost_usd else None,
    )
    wallets.capture(generation.hold_id, generation.cost, key=generation.hold_key)
    return generation


def place(generation: Generation, phase: Phase, **fields: object) -> None:
    """Put unfinished work in `phase` (after every submit: a submit starts queued work)."""
    Generation.objects.filter(pk=generation.pk).update(
        phase=phase, status=STATUS_OF_PHASE[phase], **fields
    )


@pytest.fixture
def seeded(db: None) -> Seeded:
    """Every figure of the operator's view with a known value (each generation costs 16
    credits: 31 frames × 20 steps):

    - queue: 2 ready tasks (the oldest ready for 120 s), 1 delayed; 1 failed task today;
    - generations: delivered A ($0.05), B ($0.07), D (no cost known) now and C ($0.10)
      two days ago; E failed now after the upstream charged $0.04; F canceled now;
      unfinished: 2 queued (one for two hours: past its deadline), 2 processing (one
      submitted 70 minutes ago: past its deadline), 1 downloading;
    - upstream calls in the last hour: 3 successful submits and one 500;
    - the last audit found one violation; one Stripe event failed every retry.
    """
    now = timezone.now()
    owner = make_user("alice@example.com")
    workspace = Workspace.objects.create_team(name="Studio", owner=owner)
    wallets.grant(workspace, 1000, key="ops-funding")

    delivered(workspace, cost_usd="0.05", finished_at=now)
    delivered(workspace, cost_usd="0.07", finished_at=now)
    delivered(workspace, cost_usd="0.10", finished_at=now - timedelta(days=2))
    delivered(workspace, cost_usd=None, finished_at=now)
    failed = submit(workspace)
    services.finish_failed(failed, "broken_video")
    Generation.objects.filter(pk=failed.pk).update(upstream_cost_usd=Decimal("0.04"))
    services.cancel_generation(submit(workspace))

    waiting, late, slow, rendering, saving = (submit(workspace) for _ in range(5))
    place(waiting, Phase.QUEUED)
    place(late, Phase.QUEUED, created_at=now - timedelta(hours=2))
    place(slow, Phase.PROCESSING, upstream_mode="v2", submit_started_at=now - timedelta(minutes=70))
    place(rendering, Phase.PROCESSING, submit_started_at=now - timedelta(minutes=1))
    place(saving, Phase.DOWNLOADING, submit_started_at=now - timedelta(minutes=3))

    # The queue: only the rows below (submitting above queued real tasks).
    OrmQ.objects.all().delete()
    for lock in (now - timedelta(seconds=120), now - timedelta(seconds=10)):
        OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="ready", lock=lock)
    OrmQ.objects.create(key=Conf.CLUSTER_NAME, payload="later", lock=now + timedelta(minutes=1))
    Task.objects.create(
        id="a" * 32,
        name="poll-broken",
        func="generations.tasks.poll",
        started=now - timedelta(minutes=5),
        stopped=now - timedelta(minutes=5),
        success=False,
    )

    for _ in range(3):
        gate.count_call("submit", "ok")
    gate.count_call("submit", "5xx")

    AuditRun.objects.create(ok=True, ran_at=now - timedelta(days=1))
    AuditRun.objects.create(ok=False, ran_at=now - timedelta(hours=1), violations=["hold x"])
    StripeEvent.objects.create(
        event_id="evt_given_up", type="charge.refunded", payload={}, error="boom", attempts=7
    )
    return Seeded(workspace=workspace, now=now)
