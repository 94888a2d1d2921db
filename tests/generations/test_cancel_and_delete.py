from __future__ import annotations

from typing import Any

import pytest

from accounts.models import Workspace
from billing import wallets
from billing.models import Phase as TransferPhase
from billing.models import Transfer
from generations import services, storage
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, Phase, Status
from tests.generations.helpers import finish, submit
from tests.support.queue import run_tasks

pytestmark = pytest.mark.django_db


def test_a_queued_job_is_canceled_and_released_at_once(
    fake: FakeSegmind, studio: Workspace, settings: Any
) -> None:
    settings.MAX_RUNNING_PER_WORKSPACE = 1
    first, waiting = submit(studio), submit(studio)
    assert waiting.phase == Phase.QUEUED
    services.cancel_generation(waiting)
    waiting.refresh_from_db()
    assert waiting.status == Status.CANCELED
    assert Transfer.objects.get(pending_id=waiting.hold_id).phase == TransferPhase.VOID
    finish(first)
    run_tasks()
    assert len(fake.calls("submit")) == 1  # the canceled one never reached the upstream


def test_a_job_at_the_upstream_is_canceled_its_result_discarded_and_released(
    fake: FakeSegmind, studio: Workspace
) -> None:
    fake.state.latency = 0.5
    generation = submit(studio)
    run_tasks(until=lambda: Generation.objects.get(pk=generation.pk).phase != Phase.SUBMITTING)
    generation.refresh_from_db()
    assert generation.phase in (Phase.UPSTREAM_QUEUED, Phase.PROCESSING)

    services.cancel_generation(generation)
    assert wallets.balance(studio) == wallets.Balance(available=1000, held=0, owed=0)
    run_tasks(timeout=3)
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED
    assert generation.upstream_request_id  # kept for reconciliation
    assert not generation.video_key
    assert "not charged" in generation.error_message


def test_a_finished_job_cannot_be_canceled(fake: FakeSegmind, studio: Workspace) -> None:
    generation = finish(submit(studio))
    with pytest.raises(services.NotCancelable):
        services.cancel_generation(generation)
    assert Transfer.objects.get(pending_id=generation.hold_id).phase == TransferPhase.POST


def test_deleting_removes_the_stored_video_but_keeps_the_record(
    fake: FakeSegmind, studio: Workspace, commit: Any
) -> None:
    generation = finish(submit(studio))
    assert storage.exists(generation.video_key)
    with commit():
        services.delete_generation(generation)
    assert not storage.exists(generation.video_key)
    assert not storage.exists(generation.poster_key)
    generation.refresh_from_db()
    assert generation.deleted_at is not None
    assert not Generation.objects.for_workspace(studio).exists()
    assert Transfer.objects.get(pending_id=generation.hold_id).phase == TransferPhase.POST


def test_deleting_running_work_cancels_it_first(
    fake: FakeSegmind, studio: Workspace, commit: Any
) -> None:
    generation = submit(studio)
    with commit():
        services.delete_generation(generation)
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED
    assert generation.deleted_at is not None
    assert wallets.balance(studio).available == 1000
