"""The reaper: deadlines, lost tasks, lost dispatches."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from accounts.models import Workspace
from billing import wallets
from generations import tasks
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, Phase, Status
from tests.generations.helpers import finish, submit
from tests.support.queue import run_tasks

pytestmark = pytest.mark.django_db


def _age(generation: Generation, **fields: Any) -> None:
    Generation.objects.filter(pk=generation.pk).update(**fields)


def test_queued_work_that_could_not_start_in_time_fails_and_is_released(
    fake: FakeSegmind, studio: Workspace, settings: Any
) -> None:
    settings.MAX_RUNNING_PER_WORKSPACE = 1
    submit(studio)
    waiting = submit(studio)
    long_ago = timezone.now() - timedelta(seconds=settings.GENERATION_QUEUE_TIMEOUT_SECONDS + 1)
    _age(waiting, created_at=long_ago)
    tasks.reap()
    waiting.refresh_from_db()
    assert (waiting.status, waiting.error_code) == (Status.FAILED, "queue_timeout")
    assert wallets.balance(studio).held == waiting.cost  # only the first one still holds


def test_a_submit_whose_worker_died_mid_call_is_never_posted_again(
    fake: FakeSegmind, studio: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    generation = submit(studio)
    # The worker claimed the POST and died: the claim is there, the answer never came.
    OrmQ.objects.all().delete()
    _age(
        generation,
        submit_started_at=timezone.now() - timedelta(minutes=5),
        next_check_at=timezone.now() - timedelta(seconds=1),
    )
    tasks.reap()
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == (Status.FAILED, "upstream_timeout")
    assert wallets.balance(studio) == wallets.Balance(available=1000, held=0, owed=0)
    assert "Ambiguous submit" in caplog.text
    run_tasks()
    assert fake.calls("submit") == []


def test_a_lost_poll_task_is_queued_again(fake: FakeSegmind, studio: Workspace) -> None:
    generation = submit(studio)
    run_tasks(until=lambda: Generation.objects.get(pk=generation.pk).phase != Phase.SUBMITTING)
    OrmQ.objects.all().delete()  # the poll task is lost with its worker
    _age(generation, next_check_at=timezone.now() - timedelta(seconds=1))
    assert tasks.reap()["requeued"] == 1
    assert finish(generation).status == Status.SUCCEEDED


def test_a_lost_dispatch_is_made_up_for(
    fake: FakeSegmind, studio: Workspace, settings: Any
) -> None:
    settings.MAX_RUNNING_PER_WORKSPACE = 1
    first, second = submit(studio), submit(studio)
    finish(first)
    # Pretend the dispatch that should have followed was lost.
    Generation.objects.filter(pk=second.pk).update(phase=Phase.QUEUED, status=Status.QUEUED)
    OrmQ.objects.all().delete()
    assert tasks.reap()["dispatched"] == 1
    assert finish(second).status == Status.SUCCEEDED


def test_work_past_its_upstream_deadline_fails(fake: FakeSegmind, studio: Workspace) -> None:
    generation = submit(studio)
    run_tasks(until=lambda: Generation.objects.get(pk=generation.pk).phase != Phase.SUBMITTING)
    _age(generation, submit_started_at=timezone.now() - timedelta(minutes=66))
    tasks.reap()
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == (Status.FAILED, "upstream_expired")
    assert wallets.balance(studio).available == 1000


def test_an_expired_upstream_record_fails_the_poll(fake: FakeSegmind, studio: Workspace) -> None:
    fake.state.record_ttl = 0.05
    fake.state.latency = 1
    generation = finish(submit(studio))
    assert (generation.status, generation.error_code) == (Status.FAILED, "upstream_expired")
    assert wallets.balance(studio).available == 1000


class _WorkerDied(BaseException):
    """Stands for a SIGKILL: nothing after it runs, the open transaction rolls back."""


def _v1_worker_dies_before_the_charge(
    generation: Generation, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generations import pipeline

    def die(generation: Generation) -> None:
        raise _WorkerDied

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "_charge", die)
        with pytest.raises(_WorkerDied):
            run_tasks()
    generation.refresh_from_db()
    assert generation.phase == Phase.DOWNLOADING  # stored, never marked succeeded
    # Its lease runs out; the reaper queues the step again.
    _age(
        generation,
        ingest_started_at=timezone.now() - timedelta(hours=1),
        next_check_at=timezone.now() - timedelta(seconds=1),
    )


def test_a_v1_video_stored_before_its_worker_died_is_delivered_and_charged_once(
    fake: FakeSegmind, studio: Workspace, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from billing.models import Transfer
    from generations import storage

    settings.SEGMIND_API_MODE = "v1"
    generation = submit(studio)
    _v1_worker_dies_before_the_charge(generation, monkeypatch)
    assert tasks.reap()["requeued"] == 1
    generation = finish(generation)
    assert generation.status == Status.SUCCEEDED
    assert storage.exists(generation.video_key)
    assert generation.video_seconds
    (capture,) = Transfer.objects.filter(pending_id=generation.hold_id)
    assert (capture.phase, capture.amount) == ("post", generation.cost)
    assert len(fake.calls("v1")) == 1
    assert fake.calls("result") == []  # a v1 video is not fetched from the v2 endpoints


def test_a_v1_video_half_stored_when_its_worker_died_fails_and_is_released(
    fake: FakeSegmind, studio: Workspace, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from generations import storage

    settings.SEGMIND_API_MODE = "v1"
    generation = submit(studio)
    _v1_worker_dies_before_the_charge(generation, monkeypatch)
    storage.delete(storage.poster_key(generation))  # it died before the poster was stored
    tasks.reap()
    generation = finish(generation)
    assert (generation.status, generation.error_code) == (Status.FAILED, "storage_error")
    assert wallets.balance(studio) == wallets.Balance(available=1000, held=0, owed=0)
    assert not storage.exists(storage.video_key(generation))  # nothing left behind
    assert fake.calls("result") == []
