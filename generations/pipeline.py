"""The steps of a generation's life at the upstream, each safe to run twice.

    queued ─dispatch→ submitting ─POST→ upstream_queued → processing ─→ downloading → succeeded
                                   └── v1: one long POST answers the video ──┘
    any unfinished phase → failed | canceled (credits released in the same transaction)

Every step first claims its work with a guarded UPDATE (`… WHERE phase = …`); zero
rows means another run has it or the generation moved on, and the step does nothing.
A submit commits `submit_started_at` before the POST: a run that finds it set with no
request id cannot know whether the upstream accepted the job, so it never posts again;
the generation fails, its credits are released, and the case is logged for
reconciliation. The database transaction is never held open across a network call.
"""

from __future__ import annotations

import logging
import random
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billing import wallets
from billing.ledger import HoldAlreadyResolved
from generations import gate, media, storage, upstream, webhooks
from generations.models import (
    POLLED_PHASES,
    STATUS_OF_PHASE,
    Generation,
    Phase,
    UpstreamCallCount,
)
from generations.services import after_finish, finish_failed
from generations.upstream import UpstreamError

logger = logging.getLogger(__name__)
reconcile = logging.getLogger("mochi.reconcile")
Operation = UpstreamCallCount.Operation

MAX_SUBMIT_TRIES = 5
MAX_POLL_ERRORS = 30
MAX_INGEST_TRIES = 6
SLOT_WAIT_SECONDS = 5.0


def _enqueue(step: str, generation: Generation, delay: float = 0.0) -> None:
    from generations import tasks

    tasks.enqueue(step, generation.pk, delay=delay)


def _backoff(tries: int, retry_at: datetime | None = None) -> float:
    """Exponential backoff with jitter; never before the upstream's reset time."""
    jitter = random.random()  # noqa: S311 - spreads retries, not a secret
    delay = min(settings.RETRY_BACKOFF_SECONDS * 2.0 ** (tries - 1), 120.0) * (0.75 + jitter / 2)
    if retry_at is not None:
        delay = max(delay, (retry_at - timezone.now()).total_seconds() + jitter)
    return delay


def _moved(generation: Generation, from_phases: list[str], to: Phase, **fields: object) -> bool:
    return bool(
        Generation.objects.filter(pk=generation.pk, phase__in=from_phases).update(
            phase=to, status=STATUS_OF_PHASE[to], **fields
        )
    )


def _upstream_trouble(error: UpstreamError) -> None:
    gate.record_failure(error)
    if error.retry_at is not None:
        gate.rate_limited_until(error.retry_at)


# --- Submit --------------------------------------------------------------------------


def submit(generation_id: str) -> None:
    generation = Generation.objects.filter(pk=generation_id).first()
    if generation is None or generation.phase != Phase.SUBMITTING:
        return
    if generation.submit_started_at is not None:
        if generation.next_check_at and generation.next_check_at > timezone.now():
            return  # another run is making the call now; the reaper judges it if it dies
        # An earlier run began the POST and never recorded its outcome.
        ambiguous(generation, "a previous attempt died during the upstream call")
        return
    wait = gate.wait_for_slot(SLOT_WAIT_SECONDS)
    if wait:
        _enqueue("submit", generation, delay=wait)
        return
    v1 = generation.upstream_mode == "v1"
    # Past this, nobody is waiting for the POST's answer any more (the worker died).
    lost_after = (
        upstream.CONNECT_TIMEOUT
        + (settings.SEGMIND_V1_TIMEOUT_SECONDS if v1 else settings.SEGMIND_READ_TIMEOUT_SECONDS)
        + settings.GENERATION_TASK_GRACE_SECONDS
    )
    claimed = Generation.objects.filter(
        pk=generation.pk, phase=Phase.SUBMITTING, submit_started_at__isnull=True
    ).update(
        submit_started_at=timezone.now(),
        next_check_at=timezone.now() + timedelta(seconds=lost_after),
    )
    if not claimed:
        return
    generation.refresh_from_db()
    if v1:
        _render_v1(generation)
        return
    try:
        with gate.counted(Operation.SUBMIT):
            submitted = upstream.submit(generation.upstream_body())
    except UpstreamError as error:
        _submit_failed(generation, error)
        return
    gate.record_success()
    if not _moved(
        generation,
        [Phase.SUBMITTING],
        Phase.UPSTREAM_QUEUED,
        upstream_request_id=submitted.request_id,
        attempts=0,
    ):
        # Canceled while the POST was in flight: keep the id for reconciliation.
        Generation.objects.filter(pk=generation.pk).update(upstream_request_id=submitted.request_id)
        return
    _enqueue("poll", generation, delay=_next_poll(generation))


def _submit_failed(generation: Generation, error: UpstreamError) -> None:
    _upstream_trouble(error)
    if error.ambiguous:
        ambiguous(generation, error.detail or error.code, error.code)
        return
    tries = generation.attempts + 1
    if error.retryable and tries < MAX_SUBMIT_TRIES:
        # The upstream refused the request outright (429, 500, no connection): it was
        # not accepted, so sending it again later is safe.
        Generation.objects.filter(pk=generation.pk, phase=Phase.SUBMITTING).update(
            submit_started_at=None, attempts=tries
        )
        _enqueue("submit", generation, delay=_backoff(tries, error.retry_at))
        return
    finish_failed(generation, error.code, detail=error.detail)


def ambiguous(generation: Generation, why: str, code: str = "upstream_timeout") -> None:
    reconcile.error(
        "Ambiguous submit for generation %s (workspace %s, mode %s, request %r): %s. The "
        "upstream may have run and billed it; it was not sent again and the customer's "
        "credits were released. Reconcile with Segmind's generation history.",
        generation.pk,
        generation.workspace_id,
        generation.upstream_mode,
        generation.upstream_request_id,
        why,
        extra=generation.log_fields(),
    )
    finish_failed(generation, code, detail=why)


def _render_v1(generation: Generation) -> None:
    """One long synchronous call; its response is the video."""
    with tempfile.TemporaryDirectory(prefix="mochi-v1-") as folder:
        video = Path(folder) / "video.mp4"
        try:
            with open(video, "wb") as handle, gate.counted(Operation.RENDER):
                rendered = upstream.render(
                    generation.upstream_body(), handle, max_bytes=settings.MAX_VIDEO_BYTES
                )
        except UpstreamError as error:
            _submit_failed(generation, error)
            return
        gate.record_success()
        now = timezone.now()
        if not _moved(
            generation,
            [Phase.SUBMITTING],
            Phase.DOWNLOADING,
            upstream_request_id=rendered.request_id,
            upstream_cost_usd=rendered.cost_usd,
            upstream_done_at=now,
            ingest_started_at=now,
            next_check_at=now + timedelta(seconds=settings.GENERATION_INGEST_LEASE_SECONDS),
            attempts=0,
        ):
            return  # canceled meanwhile: the video is discarded
        generation.refresh_from_db()
        # The video exists only in this temporary file: try the storage a few times.
        for tries in range(1, 4):
            stored = _store_and_finish(generation, video, final=tries == 3)
            if stored is not None:
                return


# --- Poll (v2) -------------------------------------------------------------------------


def poll(generation_id: str) -> None:
    generation = Generation.objects.filter(pk=generation_id).first()
    if generation is None or generation.phase not in POLLED_PHASES:
        return
    if timezone.now() > generation.deadline:
        finish_failed(generation, "upstream_expired", detail="past the deadline")
        return
    wait = gate.take_slot()
    if wait:
        _enqueue("poll", generation, delay=wait)
        return
    try:
        with gate.counted(Operation.STATUS):
            state = upstream.status(generation.upstream_request_id)
    except UpstreamError as error:
        _upstream_trouble(error)
        tries = generation.attempts + 1
        if error.retryable and tries < MAX_POLL_ERRORS:
            Generation.objects.filter(pk=generation.pk).update(attempts=tries)
            _enqueue("poll", generation, delay=_backoff(min(tries, 5), error.retry_at))
        else:
            finish_failed(generation, error.code, detail=error.detail)
        return
    if state.status == "COMPLETED":
        if _moved(
            generation,
            list(POLLED_PHASES),
            Phase.DOWNLOADING,
            upstream_done_at=timezone.now(),
            upstream_cost_usd=state.cost_usd,
            attempts=0,
        ):
            _enqueue("ingest", generation)
        return
    if state.status == "PROCESSING" and generation.phase == Phase.UPSTREAM_QUEUED:
        _moved(generation, [Phase.UPSTREAM_QUEUED], Phase.PROCESSING, attempts=0)
    elif generation.attempts:
        Generation.objects.filter(pk=generation.pk).update(attempts=0)
    _enqueue("poll", generation, delay=_next_poll(generation))


def _next_poll(generation: Generation) -> float:
    """Poll rarely while the job is young and often near its expected end: every call
    counts against the account's rate, which every customer shares."""
    from generations.services import typical_upstream_seconds

    base = float(settings.SEGMIND_POLL_SECONDS)
    if generation.submit_started_at is None:
        return base
    elapsed = (timezone.now() - generation.submit_started_at).total_seconds()
    remaining = typical_upstream_seconds(generation.upstream_mode) - elapsed
    return min(max(remaining / 2, base), 30.0)


# --- Ingest ---------------------------------------------------------------------------


def ingest(generation_id: str) -> None:
    """v2: read the result, download the MP4 (streamed to a temporary file), store it
    and its poster, then mark it succeeded and charge, in one transaction. v1 (its worker
    died while storing the video the call answered): finish from what it stored."""
    now = timezone.now()
    lease = timedelta(seconds=settings.GENERATION_INGEST_LEASE_SECONDS)
    # Claimed when nobody has it, or when the one who had it is past its lease (died).
    claimed = (
        Generation.objects.filter(pk=generation_id, phase=Phase.DOWNLOADING)
        .filter(ingest_started_at__isnull=True)
        .update(ingest_started_at=now, next_check_at=now + lease)
    ) or (
        Generation.objects.filter(
            pk=generation_id, phase=Phase.DOWNLOADING, ingest_started_at__lt=now - lease
        ).update(ingest_started_at=now, next_check_at=now + lease)
    )
    if not claimed:
        return
    generation = Generation.objects.get(pk=generation_id)
    if generation.upstream_mode == "v1":
        _recover_v1(generation)
        return
    try:
        if not generation.upstream_output_url:
            if gate.wait_for_slot(SLOT_WAIT_SECONDS):
                _retry_ingest(generation, None)
                return
            with gate.counted(Operation.RESULT):
                found = upstream.result(generation.upstream_request_id)
            Generation.objects.filter(pk=generation.pk).update(
                upstream_output_url=found.output_url,
                upstream_cost_usd=found.cost_usd or generation.upstream_cost_usd,
            )
            generation.upstream_output_url = found.output_url
        with tempfile.TemporaryDirectory(prefix="mochi-ingest-") as folder:
            video = Path(folder) / "video.mp4"
            with open(video, "wb") as handle, gate.counted(Operation.DOWNLOAD):
                upstream.download(
                    generation.upstream_output_url, handle, max_bytes=settings.MAX_VIDEO_BYTES
                )
            done = _store_and_finish(
                generation, video, final=generation.attempts + 1 >= MAX_INGEST_TRIES
            )
            if done is None:
                _retry_ingest(generation, None)
    except UpstreamError as error:
        _upstream_trouble(error)
        if error.retryable:
            _retry_ingest(generation, error)
        else:
            finish_failed(generation, error.code, detail=error.detail)


def _recover_v1(generation: Generation) -> None:
    """A v1 video arrives only in the answer to the worker's call, so when that worker
    died while storing it, what it stored is all there is (nothing is asked of the
    upstream). The poster is stored after the video: with both there, the video is whole."""
    video_key, poster_key = storage.video_key(generation), storage.poster_key(generation)
    if not (storage.exists(video_key) and storage.exists(poster_key)):
        finish_failed(generation, "storage_error", detail="the v1 video was lost with its worker")
        storage.delete(video_key, poster_key)
        return
    with tempfile.TemporaryDirectory(prefix="mochi-recover-") as folder:
        video = Path(folder) / "video.mp4"
        storage.download(video_key, video)
        _store_and_finish(generation, video, final=True, stored=True)


def _retry_ingest(generation: Generation, error: UpstreamError | None) -> None:
    tries = generation.attempts + 1
    if tries >= MAX_INGEST_TRIES:
        code = error.code if error else "storage_error"
        finish_failed(generation, code, detail=error.detail if error else "gave up")
        return
    Generation.objects.filter(pk=generation.pk, phase=Phase.DOWNLOADING).update(
        attempts=tries, ingest_started_at=None
    )
    _enqueue("ingest", generation, delay=_backoff(tries, error.retry_at if error else None))


def _store_and_finish(
    generation: Generation, video: Path, *, final: bool, stored: bool = False
) -> bool | None:
    """Check and store the video (unless already `stored`), then finish (succeeded,
    charged and its webhook message written in one transaction). Returns True when
    finished (succeeded or failed), None when storing failed and may be tried again
    (unless `final`)."""
    size = video.stat().st_size
    poster = video.with_suffix(".jpg")
    video_key, poster_key = storage.video_key(generation), storage.poster_key(generation)
    try:
        if not media.looks_like_mp4(video):
            raise media.BrokenVideo("not an MP4 file")
        seconds = media.make_poster(video, poster)
    except (media.BrokenVideo, OSError) as broken:
        finish_failed(generation, "broken_video", detail=str(broken))
        if stored:
            storage.delete(video_key, poster_key)
        return True
    try:
        if not stored:
            storage.save(video_key, video)
            storage.save(poster_key, poster)
    except Exception as error:  # S3, disk: any failure to store
        logger.warning(
            "Storing the video of %s failed: %s",
            generation.pk,
            error,
            extra=generation.log_fields(),
        )
        if final:
            finish_failed(generation, "storage_error", detail=str(error)[:300])
            return True
        return None

    with transaction.atomic():
        finished = _moved(
            generation,
            [Phase.DOWNLOADING],
            Phase.SUCCEEDED,
            video_key=video_key,
            poster_key=poster_key,
            video_bytes=size,
            video_seconds=round(seconds, 3),
            finished_at=timezone.now(),
            error_code="",
            error_message="",
        )
        if finished:
            _charge(generation)
            webhooks.record(generation)
    if not finished:
        # Canceled while downloading: the customer did not want it; nothing is kept.
        transaction.on_commit(lambda: storage.delete(video_key, poster_key))
        return True
    after_finish(generation)
    return True


def _charge(generation: Generation) -> None:
    try:
        wallets.capture(generation.hold_id, generation.cost, key=generation.hold_key)
    except HoldAlreadyResolved as resolved:
        # The hold expired (the work outlived HOLD_TIMEOUT_SECONDS): deliver it free
        # rather than charge past the customer's balance; flag it for the operator.
        reconcile.error(
            "Generation %s delivered without charge: its hold was already %s",
            generation.pk,
            resolved.resolution.phase,
            extra=generation.log_fields(),
        )
