"""A generation's page and its live part: a fixed number of queries whatever the history,
its place in line and the ETA from the upstream's recent durations."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from billing import wallets
from generations.models import STATUS_OF_PHASE, Generation, Phase
from tests.conftest import Team
from tests.generations.helpers import submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def funded_team(team: Team) -> Team:
    wallets.grant(team.workspace, 5000, key="test-funding")
    return team


def _waiting(workspace: Workspace, user: Any, count: int, *, newest: Any) -> list[Generation]:
    """Queued work created before `newest` (rows as the pages see them: no ledger needed)."""
    rows = [
        Generation(
            id=uuid.uuid4(),
            workspace=workspace,
            created_by=user,
            prompt=f"waiting {n}",
            guidance_scale=4.5,
            fps=16,
            frames=52,
            steps=30,
            seed=n,
            cost=39,
            hold_id=uuid.uuid4(),
            created_at=newest - timedelta(seconds=count - n),
        )
        for n in range(count)
    ]
    return Generation.objects.bulk_create(rows)


def _timed_success(workspace: Workspace, took: float, *, finished_ago: float) -> Generation:
    """A success whose time at the upstream was `took` seconds, its hold captured."""
    generation = submit(workspace)
    done = timezone.now() - timedelta(seconds=finished_ago)
    Generation.objects.filter(pk=generation.pk).update(
        phase=Phase.SUCCEEDED,
        status=STATUS_OF_PHASE[Phase.SUCCEEDED],
        video_key=f"workspaces/{workspace.pk}/generations/{generation.pk}.mp4",
        submit_started_at=done - timedelta(seconds=took + 5),
        upstream_done_at=done - timedelta(seconds=5),
        finished_at=done,
    )
    wallets.capture(generation.hold_id, generation.cost, key=generation.hold_key)
    return generation


def _in_phase(generation: Generation, phase: Phase, **fields: Any) -> Generation:
    Generation.objects.filter(pk=generation.pk).update(
        phase=phase, status=STATUS_OF_PHASE[phase], **fields
    )
    generation.refresh_from_db()
    return generation


def _queries(client: Client, url: str) -> tuple[str, int]:
    client.get(url)  # warm the session
    cache.clear()  # the ETA's typical duration is computed again, as once a minute
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return response.content.decode(), len(queries)


# Session, user, membership, the generation (with its author), and on the whole page the
# header's workspaces; a generation still at work adds the typical upstream duration, and
# a queued one its place in line.
EXPECTED_QUERIES = {
    "generation_live": {Phase.SUCCEEDED: 4, Phase.PROCESSING: 5, Phase.QUEUED: 6},
    "generation_detail": {Phase.SUCCEEDED: 5, Phase.PROCESSING: 6, Phase.QUEUED: 7},
}


@pytest.mark.parametrize("ahead", [2, 300])
@pytest.mark.parametrize("phase", [Phase.SUCCEEDED, Phase.PROCESSING, Phase.QUEUED])
@pytest.mark.parametrize("name", ["generation_detail", "generation_live"])
def test_a_page_costs_the_same_number_of_queries_whatever_the_history(
    client: Client, funded_team: Team, settings: Any, name: str, phase: Phase, ahead: int
) -> None:
    settings.MAX_RUNNING_PER_WORKSPACE = 1
    workspace = funded_team.workspace
    generation = submit(workspace)
    _waiting(workspace, funded_team.bob, ahead, newest=generation.created_at)
    if phase == Phase.SUCCEEDED:
        generation = _in_phase(generation, phase, video_key="workspaces/x/generations/y.mp4")
        wallets.capture(generation.hold_id, generation.cost, key=generation.hold_key)
    else:
        generation = _in_phase(generation, phase, submit_started_at=timezone.now())
    client.force_login(funded_team.carol)

    page, count = _queries(client, reverse(name, args=[workspace.slug, generation.pk]))

    assert count == EXPECTED_QUERIES[name][phase]
    if phase == Phase.QUEUED:
        assert f"Number {ahead + 1} in this workspace's line" in page


def test_the_eta_is_the_median_of_the_last_twenty_timed_successes(
    client: Client, funded_team: Team, settings: Any
) -> None:
    settings.MAX_RUNNING_PER_WORKSPACE = 100
    settings.SEGMIND_TYPICAL_SECONDS = 999
    workspace = funded_team.workspace
    for n in range(20):  # the latest: 100 s to 138 s, median 119 s
        _timed_success(workspace, 100 + 2 * n, finished_ago=n)
    for n in range(5):  # older and much slower: not among the last twenty
        _timed_success(workspace, 900, finished_ago=100 + n)
    untimed = _timed_success(workspace, 1, finished_ago=0)
    Generation.objects.filter(pk=untimed.pk).update(submit_started_at=None)  # no duration known
    started = timezone.now() - timedelta(seconds=10.5)
    running = _in_phase(submit(workspace), Phase.PROCESSING, submit_started_at=started)
    client.force_login(funded_team.bob)

    page = client.get(reverse("generation_detail", args=[workspace.slug, running.pk]))

    # 119 s typical, 10.5 of them spent, plus 5 s to save the video.
    assert "about 113 s left" in page.content.decode()
