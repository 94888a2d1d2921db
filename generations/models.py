"""Generations (one prompt → one video) and the shared state in front of the upstream."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Workspace


class Status(models.TextChoices):
    """What customers and the API see."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class Phase(models.TextChoices):
    """Where the work is, finer than the status. Each step claims its phase with a
    guarded UPDATE, so a task that runs twice does its step once."""

    QUEUED = "queued", "Waiting for a free slot"
    SUBMITTING = "submitting", "Sending to the model"
    UPSTREAM_QUEUED = "upstream_queued", "Queued at the model"
    PROCESSING = "processing", "Rendering"
    DOWNLOADING = "downloading", "Saving the video"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


RUNNING_PHASES = (Phase.SUBMITTING, Phase.UPSTREAM_QUEUED, Phase.PROCESSING, Phase.DOWNLOADING)
TERMINAL_PHASES = (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED)
POLLED_PHASES = (Phase.UPSTREAM_QUEUED, Phase.PROCESSING)

STATUS_OF_PHASE = {
    Phase.QUEUED: Status.QUEUED,
    Phase.SUBMITTING: Status.RUNNING,
    Phase.UPSTREAM_QUEUED: Status.RUNNING,
    Phase.PROCESSING: Status.RUNNING,
    Phase.DOWNLOADING: Status.RUNNING,
    Phase.SUCCEEDED: Status.SUCCEEDED,
    Phase.FAILED: Status.FAILED,
    Phase.CANCELED: Status.CANCELED,
}


class Source(models.TextChoices):
    WEB = "web", "Web"
    API = "api", "API"


def queue_deadline() -> timedelta:
    """How long work may wait for a free slot before it is given up."""
    return timedelta(seconds=settings.GENERATION_QUEUE_TIMEOUT_SECONDS)


def upstream_deadline(mode: str) -> timedelta:
    """How long after its submit began unfinished work is given up: Segmind keeps a v2
    request for an hour; a v1 call lasts at most its timeout."""
    if mode == "v1":
        return timedelta(seconds=settings.SEGMIND_V1_TIMEOUT_SECONDS + 300)
    return timedelta(minutes=65)


class GenerationQuerySet(models.QuerySet["Generation"]):
    def for_workspace(self, workspace: Workspace) -> GenerationQuerySet:
        """A workspace's generations that have not been deleted."""
        return self.filter(workspace=workspace, deleted_at__isnull=True)

    def running(self) -> GenerationQuerySet:
        return self.filter(phase__in=RUNNING_PHASES)

    def queued(self) -> GenerationQuerySet:
        return self.filter(phase=Phase.QUEUED)

    def past_deadline(self, now: datetime) -> GenerationQuerySet:
        """Unfinished work whose `deadline` has passed (the reaper fails it within a minute)."""
        return self.filter(past_deadline(now))


def past_deadline(now: datetime) -> Q:
    """The condition of `GenerationQuerySet.past_deadline`, for aggregates."""
    return Q(phase__in=[Phase.QUEUED, *RUNNING_PHASES]) & (
        Q(submit_started_at__isnull=True, created_at__lt=now - queue_deadline())
        | Q(upstream_mode="v1", submit_started_at__lt=now - upstream_deadline("v1"))
        | (~Q(upstream_mode="v1") & Q(submit_started_at__lt=now - upstream_deadline("v2")))
    )


class Generation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="generations")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="generations",
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="generations",
        help_text="The API key that created it, if any.",
    )
    source = models.CharField(max_length=3, choices=Source.choices, default=Source.WEB)
    webhook_url = models.URLField(
        max_length=2000, blank=True, default="", help_text="Told when it finishes (API)."
    )

    # The parameters sent to the upstream, with the seed actually used.
    prompt = models.TextField()
    negative_prompt = models.TextField(blank=True, default="")
    guidance_scale = models.FloatField()
    fps = models.FloatField()
    frames = models.PositiveSmallIntegerField()
    steps = models.PositiveSmallIntegerField()
    seed = models.BigIntegerField()

    cost = models.PositiveIntegerField(help_text="Credits held at submit; charged on success.")
    hold_id = models.UUIDField(help_text="The ledger transfer holding the cost.")

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.QUEUED)

    upstream_mode = models.CharField(max_length=2, default="v2")
    upstream_request_id = models.CharField(max_length=120, blank=True, default="")
    upstream_output_url = models.URLField(max_length=1000, blank=True, default="")
    upstream_cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Tries of the current step (backoff after transient errors)."
    )
    error_code = models.CharField(max_length=40, blank=True, default="")
    error_message = models.TextField(blank=True, default="")

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    submit_started_at = models.DateTimeField(
        null=True, blank=True, help_text="Set just before the upstream POST (its claim)."
    )
    upstream_done_at = models.DateTimeField(null=True, blank=True)
    ingest_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)

    video_key = models.CharField(max_length=300, blank=True, default="")
    poster_key = models.CharField(max_length=300, blank=True, default="")
    video_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    video_seconds = models.FloatField(null=True, blank=True)

    is_favorite = models.BooleanField(default=False)
    share_token = models.CharField(max_length=64, null=True, blank=True, unique=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    task_id = models.CharField(max_length=64, blank=True, default="", help_text="Last queued task.")
    next_check_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Unfinished work whose step has not run by then lost its task; the reaper "
        "queues it again.",
    )

    objects = GenerationQuerySet.as_manager()

    FIELDS_SENT_UPSTREAM: ClassVar[tuple[str, ...]] = (
        "prompt",
        "negative_prompt",
        "guidance_scale",
        "fps",
        "frames",
        "steps",
        "seed",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(frames__gte=1, frames__lte=160)
                & Q(steps__gte=10, steps__lte=75)
                & Q(fps__gte=7, fps__lte=30)
                & Q(guidance_scale__gte=2, guidance_scale__lte=10),
                name="generations_generation_parameters_in_range",
            ),
            models.CheckConstraint(
                condition=Q(phase="succeeded", video_key__gt="") | ~Q(phase="succeeded"),
                name="generations_generation_succeeded_has_video",
            ),
            models.UniqueConstraint(fields=["hold_id"], name="generations_generation_one_hold"),
        ]
        indexes = [
            # The gallery's keyset pages: a workspace's generations, newest first, the id
            # breaking ties as the page cursor does (ORDER BY created_at DESC, id DESC
            # LIMIT n reads n entries, in either direction, instead of sorting them all).
            models.Index(
                fields=["workspace", "-created_at", "-id"],
                condition=Q(deleted_at__isnull=True),
                name="gen_workspace_newest",
            ),
            # The gallery filtered by status ("failed", say): the same pages, read from
            # that status's entries only.
            models.Index(
                fields=["workspace", "status", "-created_at", "-id"],
                condition=Q(deleted_at__isnull=True),
                name="gen_workspace_status_newest",
            ),
            # The gallery's favourites: few rows, so a small index of them only.
            models.Index(
                fields=["workspace", "-created_at", "-id"],
                condition=Q(deleted_at__isnull=True, is_favorite=True),
                name="gen_workspace_favorites",
            ),
            # The gallery's prompt search is a trigram index that only PostgreSQL has: it is
            # made by migration 0005, outside the models' state (see there).
            # The dispatcher: a workspace's waiting and running work, oldest first (also
            # each queued generation's place in line).
            models.Index(
                fields=["workspace", "phase", "created_at"],
                condition=Q(
                    phase__in=[
                        "queued",
                        "submitting",
                        "upstream_queued",
                        "processing",
                        "downloading",
                    ]
                ),
                name="gen_workspace_active",
            ),
            # The reaper: everything not finished.
            models.Index(
                fields=["phase", "created_at"],
                condition=~Q(phase__in=["succeeded", "failed", "canceled"]),
                name="gen_unfinished",
            ),
            # The operator's view: outcomes and upstream spend of the work finished in a
            # window (index-only on PostgreSQL).
            models.Index(
                fields=["finished_at", "phase", "upstream_cost_usd"],
                condition=Q(finished_at__isnull=False),
                name="gen_finished_totals",
            ),
            # ETA: the latest successes whose time at the upstream is known (only those
            # are in it, so the 20 newest are the index's first 20 entries).
            models.Index(
                fields=["upstream_mode", "-finished_at"],
                condition=Q(
                    phase="succeeded",
                    submit_started_at__isnull=False,
                    upstream_done_at__isnull=False,
                ),
                name="gen_timed_successes",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prompt[:40]!r} ({self.phase})"

    @property
    def is_terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def hold_key(self) -> str:
        """The key the ledger's hold, capture and release of this generation derive from."""
        return f"generation:{self.pk}"

    @property
    def duration_seconds(self) -> float:
        from billing.pricing import duration_seconds

        return duration_seconds(self.frames, self.fps)

    def upstream_body(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.FIELDS_SENT_UPSTREAM}

    @property
    def deadline(self) -> datetime:
        """When unfinished work is given up (`GenerationQuerySet.past_deadline` agrees)."""
        if self.submit_started_at is None:
            return self.created_at + queue_deadline()
        return self.submit_started_at + upstream_deadline(self.upstream_mode)

    def log_fields(self) -> dict[str, str]:
        """Structured fields for a log line about this generation (`extra=`)."""
        return {"generation_id": str(self.pk), "workspace_id": str(self.workspace_id)}


class UpstreamGate(models.Model):
    """One row shared by every worker: the request-rate window and the circuit breaker."""

    class Breaker(models.TextChoices):
        CLOSED = "closed", "Closed"
        OPEN = "open", "Open"
        HALF_OPEN = "half_open", "Probing"

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    recent_calls = models.JSONField(
        default=dict, blank=True, help_text="Calls per second (Unix time) in the last minute."
    )
    blocked_until = models.DateTimeField(
        null=True, blank=True, help_text="The upstream asked us to wait (429) until then."
    )
    breaker = models.CharField(max_length=10, choices=Breaker.choices, default=Breaker.CLOSED)
    breaker_reason = models.CharField(max_length=300, blank=True, default="")
    breaker_opened_at = models.DateTimeField(null=True, blank=True)
    breaker_probe_at = models.DateTimeField(null=True, blank=True)
    probe_generation = models.UUIDField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="generations_gate_singleton")]

    def __str__(self) -> str:
        return f"Upstream gate (breaker {self.breaker})"


class IdempotencyRecord(models.Model):
    """One `Idempotency-Key` of `POST /api/v1/generations`, kept 24 hours per workspace.

    Inserted (committed) before the work starts, so a concurrent duplicate sees it in
    flight (409); the generation, its hold and the stored response then commit together.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request.")
    state = models.CharField(max_length=12, choices=State.choices, default=State.IN_PROGRESS)
    locked_until = models.DateTimeField(
        help_text="A request still in progress after this died; a retry may take over."
    )
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    generation = models.ForeignKey(
        Generation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "key"], name="generations_idempotency_one_per_key"
            ),
        ]
        indexes = [
            # The hourly clean-up of keys older than a day.
            models.Index(fields=["created_at"], name="gen_idempotency_age"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"


class WebhookDelivery(models.Model):
    """One outgoing webhook message (Standard Webhooks) about a finished generation.

    `event_id` is the `webhook-id` header: stable across retries and redeliveries, so
    receivers can drop duplicates. `log` keeps every attempt, newest last.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.CharField(max_length=64, unique=True)
    generation = models.ForeignKey(
        Generation, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    event_type = models.CharField(max_length=40)
    url = models.URLField(max_length=2000)
    payload = models.TextField(help_text="The exact body sent, byte for byte, every attempt.")
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(
        null=True, blank=True, help_text="Every attempt of the schedule failed."
    )
    log = models.JSONField(default=list, blank=True)
    task_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # One message per event of a generation (a redelivery reuses it).
            models.UniqueConstraint(
                fields=["generation", "event_type"], name="generations_webhook_one_per_event"
            ),
        ]
        indexes = [
            # The sweeper: deliveries that are due and whose task may have been lost.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(delivered_at__isnull=True, failed_at__isnull=True),
                name="gen_webhook_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.url}"

    @property
    def state(self) -> str:
        if self.delivered_at:
            return "delivered"
        if self.failed_at:
            return "failed"
        return "pending"

    def attempt_log(self) -> list[dict[str, Any]]:
        """The attempts, oldest first, with `at` as a datetime, and which ones began a
        redelivery (a redelivery starts the schedule again at attempt 1), for the pages."""
        return [
            {
                **entry,
                "at": parse_datetime(entry.get("at") or ""),
                "redelivery": index > 0 and entry.get("attempt") == 1,
            }
            for index, entry in enumerate(self.log)
        ]


class UpstreamCallCount(models.Model):
    """How many calls to the upstream ended how, per minute: the error rates on the
    operator's page and in /metrics. Every worker process adds to the same rows with one
    upsert (`generations.gate.count_call`), so the figures hold whatever the number of
    processes; the reaper deletes rows older than two days."""

    class Operation(models.TextChoices):
        SUBMIT = "submit", "Submit (v2)"
        RENDER = "render", "Render (v1)"
        STATUS = "status", "Status (v2)"
        RESULT = "result", "Result (v2)"
        DOWNLOAD = "download", "Download the video"
        ACCOUNT = "account", "Account probe"

    class Outcome(models.TextChoices):
        OK = "ok", "Succeeded"
        JOB_FAILED = "job_failed", "Job failed at the model"
        CLIENT_ERROR = "4xx", "Refused (4xx)"
        RATE_LIMITED = "429", "Rate limited (429)"
        SERVER_ERROR = "5xx", "Server error (5xx)"
        TIMEOUT = "timeout", "Timed out"
        NETWORK = "network", "No connection"
        BAD_ANSWER = "bad_answer", "Unusable answer"

    minute = models.DateTimeField(help_text="The start of the minute (UTC) the calls ended in.")
    operation = models.CharField(max_length=10, choices=Operation.choices)
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    calls = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # The upsert's conflict target; it also serves the window sums and the pruning
            # (minute first).
            models.UniqueConstraint(
                fields=["minute", "operation", "outcome"], name="generations_callcount_per_minute"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.operation} {self.outcome}: {self.calls}"
