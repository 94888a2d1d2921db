"""Every call to the upstream is counted per minute by outcome, for the operator's error
rates: through the real pipeline and fake Segmind, and from concurrent workers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Workspace
from generations import gate, tasks
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, UpstreamCallCount
from generations.upstream import UpstreamError
from tests.generations.helpers import finish, submit
from tests.support.concurrency import run_together

pytestmark = pytest.mark.django_db

Outcome = UpstreamCallCount.Outcome


def counts() -> dict[tuple[str, str], int]:
    rows = UpstreamCallCount.objects.values("operation", "outcome").annotate(n=Sum("calls"))
    return {(row["operation"], row["outcome"]): row["n"] for row in rows}


def test_a_v2_generation_counts_each_call(
    fake: FakeSegmind, studio: Workspace, settings: Any
) -> None:
    settings.SEGMIND_API_MODE = "v2"
    finish(submit(studio))
    seen = counts()
    assert seen[("submit", "ok")] == 1
    assert seen[("status", "ok")] == len(fake.calls("status"))
    assert seen[("result", "ok")] == 1
    assert seen[("download", "ok")] == 1
    assert all(outcome == "ok" for _, outcome in seen)


def test_a_v1_generation_counts_its_one_call(
    fake: FakeSegmind, studio: Workspace, settings: Any
) -> None:
    settings.SEGMIND_API_MODE = "v1"
    finish(submit(studio))
    assert counts() == {("render", "ok"): 1}


@pytest.mark.parametrize(
    ("fault", "where", "counted"),
    [
        ("500", "submit", ("submit", "5xx")),
        ("429", "submit", ("submit", "429")),
        ("401", "submit", ("submit", "4xx")),
        ("timeout", "submit", ("submit", "timeout")),
        ("500", "status", ("status", "5xx")),
        ("422", "status", ("status", "job_failed")),
        ("truncated", "download", ("download", "bad_answer")),
    ],
)
def test_a_failed_call_is_counted_by_its_outcome(
    fake: FakeSegmind,
    studio: Workspace,
    settings: Any,
    fault: str,
    where: str,
    counted: tuple[str, str],
) -> None:
    settings.SEGMIND_API_MODE = "v2"
    fake.add_fault(fault, where, 1)
    finish(submit(studio))
    assert counts()[counted] == 1


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (UpstreamError("generation_failed", "x", status=422), Outcome.JOB_FAILED),
        (UpstreamError("generation_failed", "x", status=200), Outcome.JOB_FAILED),
        (UpstreamError("invalid_request", "x", status=400), Outcome.CLIENT_ERROR),
        (UpstreamError("upstream_unavailable", "x", status=406), Outcome.CLIENT_ERROR),
        (UpstreamError("upstream_rate_limited", "x", status=429), Outcome.RATE_LIMITED),
        (UpstreamError("upstream_error", "x", status=502), Outcome.SERVER_ERROR),
        (UpstreamError("upstream_timeout", "x"), Outcome.TIMEOUT),
        (UpstreamError("upstream_error", "x"), Outcome.NETWORK),
        (UpstreamError("broken_video", "x"), Outcome.BAD_ANSWER),
        (UpstreamError("upstream_error", "x", status=200), Outcome.BAD_ANSWER),
    ],
)
def test_outcome_classes(error: UpstreamError, outcome: Outcome) -> None:
    assert gate.outcome_of(error) == outcome


def test_a_failure_to_count_never_breaks_the_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(gate, "_UPSERT", "INSERT INTO no_such_table VALUES (%s, %s, %s)")
    with gate.counted("submit"):
        answer = 42
    assert answer == 42
    assert "Could not count an upstream call" in caplog.text
    assert UpstreamCallCount.objects.count() == 0  # and the connection still works


def test_the_reaper_forgets_counts_older_than_two_days() -> None:
    gate.count_call("submit", "ok")
    old = timezone.now().replace(second=0, microsecond=0) - timedelta(days=2, minutes=1)
    UpstreamCallCount.objects.create(minute=old, operation="submit", outcome="ok", calls=9)
    tasks.reap()
    assert list(UpstreamCallCount.objects.values_list("calls", flat=True)) == [1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_lose_no_count() -> None:
    """Eight workers (each its own connection, as separate processes would have) count
    25 calls each into the same minute rows at once."""

    def worker() -> None:
        for n in range(25):
            gate.count_call("status", "ok" if n % 5 else "5xx")

    results = run_together([worker] * 8)
    assert all(result is None for result in results), results
    assert counts() == {("status", "ok"): 160, ("status", "5xx"): 40}


def test_past_deadline_agrees_with_each_generations_deadline(
    studio: Workspace, settings: Any
) -> None:
    now = timezone.now()
    cases = [
        ("v2", None, now - timedelta(hours=2)),  # waited too long for a slot
        ("v2", None, now - timedelta(minutes=5)),
        ("v2", now - timedelta(minutes=66), now - timedelta(hours=2)),
        ("v2", now - timedelta(minutes=64), now - timedelta(hours=2)),
        ("v1", now - timedelta(seconds=settings.SEGMIND_V1_TIMEOUT_SECONDS + 301), now),
        ("v1", now - timedelta(seconds=settings.SEGMIND_V1_TIMEOUT_SECONDS + 299), now),
    ]
    for mode, submitted, created in cases:
        generation = submit(studio)
        Generation.objects.filter(pk=generation.pk).update(
            upstream_mode=mode, submit_started_at=submitted, created_at=created
        )
    overdue = set(Generation.objects.past_deadline(now).values_list("pk", flat=True))
    expected = {g.pk for g in Generation.objects.all() if now > g.deadline and not g.is_terminal}
    assert overdue == expected
    assert len(overdue) == 3
