"""Generations (one prompt → one video) and the shared state in front of the upstream."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

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


class GenerationQuerySet(models.QuerySet["Generation"]):
    def for_workspace(self, workspace: Workspace) -> GenerationQuerySet:
        """A workspace's generations that have not been deleted."""
        return self.filter(workspace=workspace, deleted_at__isnull=True)

    def running(self) -> GenerationQuerySet:
        return self.filter(phase__in=RUNNING_PHASES)

    def queued(self) -> GenerationQuerySet:
        return self.filter(phase=Phase.QUEUED)


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
    source = models.CharField(max_length=3, choices=Source.choices, default=Source.WEB)

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
        """When unfinished work is given up: Segmind keeps a request for an hour."""
        if self.submit_started_at is None:
            return self.created_at + timedelta(seconds=settings.GENERATION_QUEUE_TIMEOUT_SECONDS)
        if self.upstream_mode == "v1":
            return self.submit_started_at + timedelta(
                seconds=settings.SEGMIND_V1_TIMEOUT_SECONDS + 300
            )
        return self.submit_started_at + timedelta(minutes=65)


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
