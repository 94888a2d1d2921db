"""Queue entry points (django-q2 workers) for generations, and how they are enqueued.

Tasks take a generation id and run one step of `generations.pipeline`; each step is
safe to run twice. A step that must wait (the next poll, a backoff, the rate limit)
is enqueued with a delay: its queue row only becomes visible to workers then.

Each task also carries a ticket, recorded on the generation when it is queued: only
the generation's latest task may run its step, and only once. A second delivery of
the same task, or a late task whose step the reaper queued again meanwhile, does
nothing, so a generation never has two chains of polls.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

from generations import gate, pipeline, services
from generations.models import POLLED_PHASES, RUNNING_PHASES, Generation, Phase

logger = logging.getLogger(__name__)

STEPS = ("submit", "poll", "ingest")


class _DelayedBroker(ORM):
    """The ORM broker hands out rows whose `lock` is in the past; a row written with a
    `lock` in the future is a task that runs no earlier than that."""

    def __init__(self, delay: float) -> None:
        super().__init__(list_key=Conf.CLUSTER_NAME)
        self.delay = delay

    def enqueue(self, task: str) -> int:
        row = self.get_connection().create(
            key=self.list_key, payload=task, lock=timezone.now() + timedelta(seconds=self.delay)
        )
        return int(row.pk)


def enqueue(step: str, generation_id: uuid.UUID | str, *, delay: float = 0.0) -> str:
    """Queue one pipeline step for a generation, `delay` seconds from now; returns the
    task's ticket."""
    if step not in STEPS:
        raise ValueError(step)
    ticket = uuid.uuid4().hex
    options = {"broker": _DelayedBroker(delay)} if delay > 0 else {}
    # One transaction: a worker that takes the task at once finds its ticket recorded.
    with transaction.atomic():
        Generation.objects.filter(pk=generation_id).update(
            task_id=ticket,
            next_check_at=timezone.now()
            + timedelta(seconds=delay + settings.GENERATION_TASK_GRACE_SECONDS),
        )
        async_task(
            f"generations.tasks.{step}",
            str(generation_id),
            ticket,
            task_name=f"{step}-{generation_id}",
            group="generations",
            # The generation row records each step's outcome; a result row per poll would
            # only add writes (failures are kept by django-q2 regardless).
            save=False,
            **options,
        )
    return ticket


def claim_ticket(generation_id: str, ticket: str) -> bool:
    """Whether this task may run its step: it is the generation's latest queued task and
    no other delivery of it has started (0 rows: a duplicate, or superseded)."""
    if not ticket:
        return True  # queued before tasks carried tickets
    return bool(
        Generation.objects.filter(pk=generation_id, task_id=ticket).update(
            task_id=f"{ticket}:taken"
        )
    )


def submit(generation_id: str, ticket: str = "") -> None:
    if claim_ticket(generation_id, ticket):
        pipeline.submit(generation_id)


def poll(generation_id: str, ticket: str = "") -> None:
    if claim_ticket(generation_id, ticket):
        pipeline.poll(generation_id)


def ingest(generation_id: str, ticket: str = "") -> None:
    if claim_ticket(generation_id, ticket):
        pipeline.ingest(generation_id)


def reap() -> dict[str, int]:
    """Every minute: give up on work past its deadline, requeue steps whose task was
    lost, start queued work that nothing started, and probe an open breaker."""
    now = timezone.now()
    counts = {"failed": 0, "requeued": 0, "dispatched": 0}
    gate.probe_account()

    unfinished = Generation.objects.filter(phase__in=[Phase.QUEUED, *RUNNING_PHASES])
    for generation in unfinished.filter(
        phase=Phase.QUEUED,
        created_at__lt=now - timedelta(seconds=settings.GENERATION_QUEUE_TIMEOUT_SECONDS),
    ):
        counts["failed"] += services.finish_failed(generation, "queue_timeout")

    for generation in unfinished.filter(phase__in=RUNNING_PHASES):
        in_flight = generation.phase == Phase.SUBMITTING and generation.submit_started_at
        overdue = generation.next_check_at is None or generation.next_check_at < now
        if now > generation.deadline or (in_flight and overdue):
            if in_flight:
                # The worker died during the POST: its outcome is unknown.
                pipeline.ambiguous(generation, "no outcome from the upstream call")
            else:
                services.finish_failed(generation, "upstream_expired", detail="deadline")
            counts["failed"] += 1
        elif overdue and (step := _step_for(generation)):
            logger.warning("Requeueing %s of %s (its task was lost)", step, generation.pk)
            enqueue(step, generation.pk)
            counts["requeued"] += 1

    waiting = (
        Generation.objects.filter(phase=Phase.QUEUED)
        .values_list("workspace_id", flat=True)
        .distinct()
    )
    for workspace_id in waiting:
        counts["dispatched"] += len(services.dispatch(workspace_id))
    return counts


def _step_for(generation: Generation) -> str | None:
    if generation.phase == Phase.SUBMITTING:
        # With the POST under way (or dead in flight) only the deadline may decide.
        return None if generation.submit_started_at else "submit"
    if generation.phase in POLLED_PHASES:
        return "poll"
    if generation.phase == Phase.DOWNLOADING:
        return "ingest"
    return None


def queued_tasks() -> int:
    return OrmQ.objects.count()
