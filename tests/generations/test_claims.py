"""Every step is safe to run twice: a task delivered twice at once, or a late task whose
step the reaper queued again, does its step once (one POST, one poll chain, one capture)."""

from __future__ import annotations

import pydoc
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from accounts.models import Workspace
from billing.models import Phase as TransferPhase
from billing.models import Transfer
from generations import pipeline, tasks
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, Phase, Status
from tests.generations.helpers import finish, submit
from tests.support.concurrency import run_together
from tests.support.queue import run_tasks


def _take_task(step: str) -> Any:
    """Remove the queued `step` task from the queue and return a call that runs it, as a
    worker would (the same function, the same arguments)."""
    for row in OrmQ.objects.order_by("pk"):
        task = SignedPackage.loads(row.payload)
        if task["func"] == f"generations.tasks.{step}":
            row.delete()
            function = pydoc.locate(task["func"])
            assert callable(function)
            return lambda: function(*task["args"], **task["kwargs"])
    raise AssertionError(f"no {step} task queued")


def _until(generation: Generation, phase: Phase) -> None:
    run_tasks(until=lambda: Generation.objects.get(pk=generation.pk).phase == phase)


def _one_capture(generation: Generation) -> None:
    (resolution,) = Transfer.objects.filter(pending_id=generation.hold_id)
    assert resolution.phase == TransferPhase.POST


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_submit_task_delivered_twice_at_once_posts_once(
    fake: FakeSegmind, studio: Workspace
) -> None:
    generation = submit(studio)
    run = _take_task("submit")
    assert run_together([run, run]) == [None, None]
    assert len(fake.calls("submit")) == 1
    generation = finish(generation)
    assert generation.status == Status.SUCCEEDED
    _one_capture(generation)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_poll_task_delivered_twice_at_once_polls_once(
    fake: FakeSegmind, studio: Workspace
) -> None:
    fake.state.latency = 2
    generation = submit(studio)
    _until(generation, Phase.UPSTREAM_QUEUED)
    run = _take_task("poll")
    run_together([run, run])
    assert len(fake.calls("status")) == 1
    assert [SignedPackage.loads(r.payload)["func"] for r in OrmQ.objects.all()] == [
        "generations.tasks.poll"
    ]  # one chain of polls goes on
    assert finish(generation).status == Status.SUCCEEDED


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_ingest_task_delivered_twice_at_once_stores_and_charges_once(
    fake: FakeSegmind, studio: Workspace
) -> None:
    generation = submit(studio)
    _until(generation, Phase.DOWNLOADING)
    run = _take_task("ingest")
    run_together([run, run])
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert len(fake.calls("download")) == 1
    _one_capture(generation)


@pytest.mark.django_db
def test_a_late_poll_after_the_reaper_queued_it_again_does_nothing(
    fake: FakeSegmind, studio: Workspace
) -> None:
    fake.state.latency = 2
    generation = submit(studio)
    _until(generation, Phase.UPSTREAM_QUEUED)
    late = _take_task("poll")  # held up in a busy queue...
    Generation.objects.filter(pk=generation.pk).update(
        next_check_at=timezone.now() - timedelta(seconds=1)
    )
    assert tasks.reap()["requeued"] == 1  # ...so the reaper queued the poll again
    polls = len(fake.calls("status"))
    late()  # then the late one runs after all
    assert len(fake.calls("status")) == polls
    assert OrmQ.objects.count() == 1  # still one chain of polls
    assert finish(generation).status == Status.SUCCEEDED


@pytest.mark.django_db
def test_a_submit_seen_mid_call_by_another_run_is_left_to_finish(
    fake: FakeSegmind, studio: Workspace
) -> None:
    generation = submit(studio)
    OrmQ.objects.all().delete()
    # Another run has claimed the POST and is waiting for its answer.
    Generation.objects.filter(pk=generation.pk).update(
        submit_started_at=timezone.now(), next_check_at=timezone.now() + timedelta(seconds=30)
    )
    pipeline.submit(str(generation.pk))
    generation.refresh_from_db()
    assert generation.phase == Phase.SUBMITTING  # not failed as ambiguous
    assert fake.calls("submit") == []
    assert not Transfer.objects.filter(pending_id=generation.hold_id).exists()

    # Once the call is overdue, its outcome is unknown: failed and released, never re-sent.
    Generation.objects.filter(pk=generation.pk).update(
        next_check_at=timezone.now() - timedelta(seconds=1)
    )
    pipeline.submit(str(generation.pk))
    generation.refresh_from_db()
    assert (generation.status, generation.error_code) == (Status.FAILED, "upstream_timeout")
    assert Transfer.objects.get(pending_id=generation.hold_id).phase == TransferPhase.VOID
    assert fake.calls("submit") == []
