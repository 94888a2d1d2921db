"""The circuit breaker: our upstream account or the model is broken."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Workspace
from billing import wallets
from billing.models import Transfer
from generations import gate, services, tasks
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, Status, UpstreamGate
from generations.upstream import UpstreamError
from tests.generations.helpers import finish, submit

pytestmark = pytest.mark.django_db


def test_the_breaker_opens_refuses_submits_without_holding_and_closes_after_a_probe(
    fake: FakeSegmind, studio: Workspace, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.ADMINS = ["ops@example.com"]
    fake.add_fault("406-credits", "submit")
    failed = finish(submit(studio))
    assert failed.error_code == "upstream_unavailable"
    assert gate.state().breaker == UpstreamGate.Breaker.OPEN
    alert = [m for m in mail.outbox if "breaker OPEN" in m.body + m.subject]
    assert len(alert) == 1
    assert alert[0].to == ["ops@example.com"]

    holds_before = Transfer.objects.count()
    with pytest.raises(services.UpstreamUnavailable):
        submit(studio)
    assert Transfer.objects.count() == holds_before  # no hold taken
    assert Generation.objects.count() == 1

    # The cool-down passes; the reaper's probe finds the account working again.
    UpstreamGate.objects.update(breaker_probe_at=timezone.now() - timedelta(seconds=1))
    tasks.reap()
    assert len(fake.calls("credits")) == 1
    assert gate.accepting_submits()
    probe = submit(studio)
    assert gate.state().breaker == UpstreamGate.Breaker.HALF_OPEN
    assert finish(probe).status == Status.SUCCEEDED
    assert gate.state().breaker == UpstreamGate.Breaker.CLOSED
    assert "breaker closed again" in caplog.text
    assert wallets.balance(studio).available == 1000 - probe.cost


def test_queued_work_waits_while_the_breaker_is_open(
    fake: FakeSegmind, studio: Workspace, settings: Any, commit: Any
) -> None:
    settings.MAX_RUNNING_PER_WORKSPACE = 1
    first, second = submit(studio), submit(studio)
    gate.record_failure(UpstreamError("upstream_unavailable", "x", status=401, opens_breaker=True))
    with commit():
        services.cancel_generation(first)  # frees the slot; the dispatcher runs
    second.refresh_from_db()
    assert second.status == Status.QUEUED  # not started, not failed: it waits
    UpstreamGate.objects.update(breaker_probe_at=timezone.now() - timedelta(seconds=1))
    tasks.reap()
    assert finish(second).status == Status.SUCCEEDED
