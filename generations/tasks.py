"""Queue entry points (django-q2 workers) for generations, and how they are enqueued.

Tasks take a generation id and run one step of `generations.pipeline`; each step is
safe to run twice. A step that must wait (the next poll, a backoff, the rate limit)
is enqueued with a delay: its queue row only becomes visible to workers then. Every
log line written while a step runs carries the generation's id as a structured field
(`mochi_site.logs.log_context`), whichever module writes it.

Each task also carries a ticket, recorded on the generation when it is queued: only
the generation's latest task may run its step, and only once. A second delivery of
the same task, or a late task whose step the reaper queued again meanwhile, does
nothing, so a generation never has two chains of polls.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

from generations import gate, pipeline, services, webhooks
from generations.models import POLLED_PHASES, RUNNING_PHASES, Generation, Phase, WebhookDelivery
from mochi_site.logs import log_context

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
    with transaction.atomic(), log_context(generation_id=generation_id, step=step):
        Generation.objects.filter(pk=generation_id).update(
            task_id=ticket,
            next_check_at=timezone.now()
            + timedelta(seconds=delay + settings.GENERATION_TASK_GRACE_SECONDS),
        )
        async_task(  # django-q2 logs "Enqueued", with the generation's id in the context
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


def enqueue_webhook(delivery_id: uuid.UUID | str, *, delay: float = 0.0) -> str:
    """Queue an attempt of a webhook delivery, `delay` seconds from now."""
    options = {"broker": _DelayedBroker(delay)} if delay > 0 else {}
    task_id = str(
        async_task(
            "generations.tasks.deliver_webhook",
            str(delivery_id),
            task_name=f"webhook-{delivery_id}",
            group="webhooks",
            save=False,  # the delivery's log keeps every attempt
            **options,
        )
    )
    WebhookDelivery.objects.filter(pk=delivery_id).update(task_id=task_id)
    return task_id


def deliver_webhook(delivery_id: str) -> None:
    webhooks.attempt(delivery_id)


def submit(generation_id: str, ticket: str = "") -> None:
    with log_context(generation_id=generation_id, step="submit"):
        if claim_ticket(generation_id, ticket):
            pipeline.submit(generation_id)


def poll(generation_id: str, ticket: str = "") -> None:
    with log_context(generation_id=generation_id, step="poll"):
        if claim_ticket(generation_id, ticket):
            pipeline.poll(generation_id)


def ingest(generation_id: str, ticket: str = "") -> None:
    with log_context(generation_id=generation_id, step="ingest"):
        if claim_ticket(generation_id, ticket):
            pipeline.ingest(generation_id)


def reap() -> dict[str, int]:
    """Every minute: give up on work past its deadline, requeue steps whose task was
    lost, start queued work that nothing started, probe an open breaker, and queue again
    webhook attempts whose task was lost."""
    now = timezone.now()
    counts = {"failed": 0, "requeued": 0, "dispatched": 0}
    gate.probe_account()
    gate.prune_call_counts()

    unfinished = Generation.objects.filter(phase__in=[Phase.QUEUED, *RUNNING_PHASES])
    for generation in unfinished.filter(
        phase=Phase.QUEUED,
        created_at__lt=now - timedelta(seconds=settings.GENERATION_QUEUE_TIMEOUT_SECONDS),
    ):
        with log_context(**generation.log_fields(), step="reap"):
            counts["failed"] += services.finish_failed(generation, "queue_timeout")

    for generation in unfinished.filter(phase__in=RUNNING_PHASES):
        with log_context(**generation.log_fields(), step="reap"):
            if done := _reap_one(generation, now):
                counts[done] += 1

    waiting = (
        Generation.objects.filter(phase=Phase.QUEUED)
        .values_list("workspace_id", flat=True)
        .distinct()
    )
    for workspace_id in waiting:
        counts["dispatched"] += len(services.dispatch(workspace_id))
    counts["webhooks_requeued"] = webhooks.sweep()
    return counts


def _reap_one(generation: Generation, now: datetime) -> str | None:
    """Fail running work past its deadline ("failed"), or queue its lost step again
    ("requeued"); None when it is fine."""
    in_flight = generation.phase == Phase.SUBMITTING and generation.submit_started_at
    overdue = generation.next_check_at is None or generation.next_check_at < now
    if now > generation.deadline or (in_flight and overdue):
        if in_flight:
            # The worker died during the POST: its outcome is unknown.
            pipeline.ambiguous(generation, "no outcome from the upstream call")
        else:
            services.finish_failed(generation, "upstream_expired", detail="deadline")
        return "failed"
    if overdue and (step := _step_for(generation)):
        logger.warning(
            "Requeueing %s of %s (its task was lost)",
            step,
            generation.pk,
            extra=generation.log_fields(),
        )
        enqueue(step, generation.pk)
        return "requeued"
    return None


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


def forget_idempotency_keys() -> int:
    """Hourly: Idempotency-Keys are kept a day."""
    from generations import idempotency

    return idempotency.forget_expired()
