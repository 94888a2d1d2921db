"""Generation workflows shared by the web pages, the API and the workers."""

from __future__ import annotations

import contextlib
import logging
import secrets
import statistics
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from accounts.models import ApiKey, Membership, User, Workspace
from billing import wallets
from billing.ledger import HoldAlreadyResolved, InsufficientCredits
from billing.pricing import generation_cost
from generations import gate, storage, webhooks
from generations.models import (
    RUNNING_PHASES,
    STATUS_OF_PHASE,
    TERMINAL_PHASES,
    Generation,
    Phase,
    Source,
)
from generations.params import GenerationParams
from generations.upstream import customer_message
from mochi_site.logs import log_context

if TYPE_CHECKING:
    from collections.abc import Iterable

logger = logging.getLogger(__name__)


class SubmitRefused(Exception):
    """A submit that is refused before anything is held; `code` and `status` are the API's."""

    code = "invalid"
    status = 400

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NotEnoughCredits(SubmitRefused):
    code = "insufficient_credits"
    status = 402

    def __init__(self, message: str, *, cost: int, available: int) -> None:
        super().__init__(message)
        self.cost = cost
        self.available = available


class UpstreamUnavailable(SubmitRefused):
    code = "upstream_unavailable"
    status = 503


class NotCancelable(Exception):
    pass


def submit_generation(
    *,
    workspace: Workspace,
    params: GenerationParams,
    user: User | None,
    membership: Membership | None = None,
    source: Source = Source.WEB,
    api_key: ApiKey | None = None,
    webhook_url: str = "",
) -> Generation:
    """Price the parameters, hold the credits and queue the work, in one short transaction
    that talks to nothing but the database (the task queue is a table in it).
    `webhook_url` must have passed `webhooks.check_url` already."""
    if not gate.accepting_submits():
        raise UpstreamUnavailable(
            "The video service is unavailable right now; nothing was charged. "
            "Please try again in a few minutes."
        )
    cost = generation_cost(params.frames, params.steps)
    generation = Generation(
        id=uuid.uuid4(),
        workspace=workspace,
        created_by=user,
        api_key=api_key,
        source=source,
        webhook_url=webhook_url,
        cost=cost,
        upstream_mode=settings.SEGMIND_API_MODE,
        **params.as_dict(),
    )
    capped = workspace.is_team and membership is not None
    try:
        with log_context(**generation.log_fields()), transaction.atomic():
            held = wallets.hold(
                workspace,
                cost,
                key=generation.hold_key,
                member_id=membership.user_id if capped and membership else None,
                monthly_cap=membership.monthly_cap if capped and membership else None,
            )
            generation.hold_id = held.pk
            generation.save(force_insert=True)
            dispatch(workspace.pk)
    except InsufficientCredits as error:
        raise NotEnoughCredits(
            f"This video costs {cost} credits and {max(error.available, 0)} are available. "
            "Buy credits to continue.",
            cost=cost,
            available=max(error.available, 0),
        ) from None
    except (wallets.MonthlyCapExceeded, wallets.WalletSuspended) as error:
        available = wallets.balance(workspace).available
        raise NotEnoughCredits(str(error), cost=cost, available=available) from None
    generation.refresh_from_db()  # the dispatcher may have started it
    return generation


def dispatch(workspace_id: int) -> list[uuid.UUID]:
    """Start the workspace's oldest queued generations while it has free slots
    (at most MAX_RUNNING_PER_WORKSPACE at the upstream at once)."""
    from generations import tasks

    started: list[uuid.UUID] = []
    with transaction.atomic():
        # One dispatcher per workspace at a time, so the count of running work is exact.
        Workspace.objects.select_for_update().filter(pk=workspace_id).first()
        mine = Generation.objects.filter(workspace_id=workspace_id)
        free = settings.MAX_RUNNING_PER_WORKSPACE - mine.filter(phase__in=RUNNING_PHASES).count()
        if free <= 0:
            return started
        waiting = mine.filter(phase=Phase.QUEUED).order_by("created_at")
        for generation_id in waiting.values_list("pk", flat=True)[:free]:
            if not gate.may_start(generation_id):
                break
            moved = Generation.objects.filter(pk=generation_id, phase=Phase.QUEUED).update(
                phase=Phase.SUBMITTING,
                status=STATUS_OF_PHASE[Phase.SUBMITTING],
                started_at=timezone.now(),
                attempts=0,
            )
            if moved:
                tasks.enqueue("submit", generation_id)
                started.append(generation_id)
    return started


def finish_failed(generation: Generation, code: str, *, detail: str = "") -> bool:
    """Mark unfinished work failed and give its credits back, in one transaction (with
    its webhook message, when it has a webhook URL)."""
    with transaction.atomic():
        moved = Generation.objects.filter(
            pk=generation.pk, phase__in=[Phase.QUEUED, *RUNNING_PHASES]
        ).update(
            phase=Phase.FAILED,
            status=STATUS_OF_PHASE[Phase.FAILED],
            error_code=code,
            error_message=customer_message(code),
            finished_at=timezone.now(),
        )
        if moved:
            _release(generation)
            webhooks.record(generation)
    if moved:
        logger.info(
            "Generation %s failed: %s %s",
            generation.pk,
            code,
            detail,
            extra=generation.log_fields(),
        )
        after_finish(generation)
    return bool(moved)


def cancel_generation(generation: Generation) -> Generation:
    """Queued: canceled and released at once. At the upstream (which cannot cancel):
    canceled now, its result discarded when it comes, and released. The webhook message
    is written in the same transaction."""
    now = timezone.now()
    with transaction.atomic():
        moved = Generation.objects.filter(
            pk=generation.pk, phase__in=[Phase.QUEUED, *RUNNING_PHASES]
        ).update(
            phase=Phase.CANCELED,
            status=STATUS_OF_PHASE[Phase.CANCELED],
            error_code="canceled",
            error_message=customer_message("canceled"),
            cancel_requested_at=now,
            finished_at=now,
        )
        if not moved:
            raise NotCancelable("This generation has already finished.")
        _release(generation)
        webhooks.record(generation)
    generation.refresh_from_db()
    after_finish(generation)
    return generation


def delete_generation(generation: Generation) -> None:
    """Hide a generation and delete its video and poster; the record stays for the ledger.
    Unfinished work is canceled first."""
    if not generation.is_terminal:
        with contextlib.suppress(NotCancelable):  # it finished meanwhile
            cancel_generation(generation)
    Generation.objects.filter(pk=generation.pk, deleted_at__isnull=True).update(
        deleted_at=timezone.now(), share_token=None, is_favorite=False
    )
    generation.refresh_from_db()
    transaction.on_commit(lambda: storage.delete(generation.video_key, generation.poster_key))


def set_favorite(generation: Generation, favorite: bool) -> None:
    Generation.objects.filter(pk=generation.pk).update(is_favorite=favorite)
    generation.is_favorite = favorite


def share(generation: Generation) -> str:
    """Create (or return) the public share link's token of a finished video."""
    if generation.share_token:
        return generation.share_token
    token = secrets.token_urlsafe(24)
    Generation.objects.filter(pk=generation.pk, share_token__isnull=True).update(share_token=token)
    generation.refresh_from_db(fields=["share_token"])
    return str(generation.share_token)


def unshare(generation: Generation) -> None:
    Generation.objects.filter(pk=generation.pk).update(share_token=None)
    generation.share_token = None


def _release(generation: Generation) -> None:
    try:
        wallets.release(generation.hold_id, key=generation.hold_key)
    except HoldAlreadyResolved as resolved:
        # Expired by the reaper already: the credits are back either way.
        logger.warning(
            "Hold of %s was already %s",
            generation.pk,
            resolved.resolution.phase,
            extra=generation.log_fields(),
        )


def after_finish(generation: Generation) -> None:
    """A slot is free: start the next queued work of the workspace."""
    transaction.on_commit(lambda: dispatch(generation.workspace_id))


# --- Progress ------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    phase: str
    queue_position: int | None
    elapsed_seconds: int
    eta_seconds: int | None


def typical_upstream_seconds(mode: str) -> float:
    """Median time at the upstream of the last 20 successes in this mode (cached a minute)."""
    key = f"generations:typical-seconds:{mode}"
    try:
        cached = cache.get(key)
    except Exception:  # a cache outage must not stop the pipeline
        logger.warning("The cache is unavailable", exc_info=True)
        cached = None
    if cached is not None:
        return float(cached)
    recent = (
        Generation.objects.filter(
            phase=Phase.SUCCEEDED, upstream_mode=mode, submit_started_at__isnull=False
        )
        .exclude(upstream_done_at__isnull=True)
        .order_by("-finished_at")
        .annotate(took=F("upstream_done_at") - F("submit_started_at"))
        .values_list("took", flat=True)[:20]
    )
    durations = [d.total_seconds() for d in recent if d is not None]
    typical = statistics.median(durations) if durations else settings.SEGMIND_TYPICAL_SECONDS
    with contextlib.suppress(Exception):
        cache.set(key, typical, 60)
    return typical


def queue_positions(generations: Iterable[Generation]) -> dict[uuid.UUID, int]:
    """Each queued generation's place in its workspace's line (1 = next to start): the
    waiting work created before it, counted in one query that reads only the line's index
    entries ahead of the newest of them (not the whole line, nor any row)."""
    queued = [g for g in generations if g.phase == Phase.QUEUED]
    if not queued:
        return {}
    ahead = Generation.objects.filter(
        workspace_id__in={g.workspace_id for g in queued},
        phase=Phase.QUEUED,
        created_at__lt=max(g.created_at for g in queued),
    ).aggregate(
        **{
            f"ahead_{n}": Count(
                "created_at", filter=Q(workspace_id=g.workspace_id, created_at__lt=g.created_at)
            )
            for n, g in enumerate(queued)
        }
    )
    return {g.pk: ahead[f"ahead_{n}"] + 1 for n, g in enumerate(queued)}


def progress(generation: Generation, position: int | None = None) -> Progress:
    now = timezone.now()
    end = generation.finished_at or now
    elapsed = int((end - generation.created_at).total_seconds())
    eta: int | None = None
    if generation.phase in TERMINAL_PHASES:
        return Progress(generation.phase, None, elapsed, None)
    typical = typical_upstream_seconds(generation.upstream_mode)
    if generation.phase == Phase.QUEUED:
        if position is None:
            position = queue_positions([generation]).get(generation.pk, 1)
        rounds = (position - 1) // settings.MAX_RUNNING_PER_WORKSPACE + 1
        eta = int(rounds * typical + 10)
    elif generation.phase == Phase.DOWNLOADING:
        eta = 5
    else:
        started = generation.submit_started_at or generation.started_at or now
        eta = max(int(typical - (now - started).total_seconds()), 5) + 5
    return Progress(generation.phase, position, elapsed, eta)
