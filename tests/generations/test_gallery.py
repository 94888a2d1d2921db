"""The gallery: filters, keyset pagination, a fixed number of queries, bulk delete."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from billing import wallets
from generations import views
from generations.models import Generation, Phase, Status
from tests.conftest import Team
from tests.generations.helpers import finished

pytestmark = pytest.mark.django_db


def _queued(workspace: Workspace, user: Any, count: int, **fields: Any) -> list[Generation]:
    """Rows as the gallery sees them (waiting in line, so no upstream and no ledger needed)."""
    now = timezone.now()
    rows = [
        Generation(
            id=uuid.uuid4(),
            workspace=workspace,
            created_by=user,
            prompt=fields.get("prompt", f"clip number {n}"),
            guidance_scale=4.5,
            fps=16,
            frames=52,
            steps=30,
            seed=n,
            cost=39,
            hold_id=uuid.uuid4(),
            created_at=now - timedelta(seconds=n),
        )
        for n in range(count)
    ]
    return Generation.objects.bulk_create(rows)


@pytest.fixture
def studio(team: Team) -> Team:
    wallets.grant(team.workspace, 1000, key="test-funding")
    return team


def _page(client: Client, team: Team, **query: str) -> str:
    url = reverse("generation_list", args=[team.workspace.slug])
    response = client.get(url, query)
    assert response.status_code == 200
    return response.content.decode()


def test_filters_by_status_member_prompt_date_and_favorite(client: Client, studio: Team) -> None:
    fox = finished(studio.workspace, studio.bob, prompt="a red fox")
    heron = finished(studio.workspace, studio.alice, prompt="a grey heron")
    failed = finished(studio.workspace, studio.bob, prompt="a broken idea", status="failed")
    Generation.objects.filter(pk=heron.pk).update(is_favorite=True)
    client.force_login(studio.carol)

    def shown(**query: str) -> set[str]:
        page = _page(client, studio, **query)
        return {g.prompt for g in (fox, heron, failed) if g.prompt in page}

    assert shown() == {"a red fox", "a grey heron", "a broken idea"}
    assert shown(status="failed") == {"a broken idea"}
    assert shown(member=str(studio.alice.pk)) == {"a grey heron"}
    assert shown(q="FOX") == {"a red fox"}
    assert shown(favorites="1") == {"a grey heron"}
    today = timezone.now().date().isoformat()
    assert shown(since=today, until=today) == {"a red fox", "a grey heron", "a broken idea"}
    assert shown(until="2000-01-01") == set()
    assert "No videos match these filters" in _page(client, studio, q="zebra")


def test_pages_walk_older_and_newer_without_gaps(client: Client, studio: Team) -> None:
    rows = _queued(studio.workspace, studio.bob, 60)
    client.force_login(studio.bob)
    first = _page(client, studio)
    assert rows[0].prompt + "<" in first or f"{rows[0].prompt}</p>" in first
    older = first.split("before=")[1].split('"')[0].replace("&amp;", "&")
    second = client.get(
        reverse("generation_list", args=[studio.workspace.slug]) + "?before=" + older
    ).content.decode()
    seen_first = {r.prompt for r in rows if f">{r.prompt}</p>" in first}
    seen_second = {r.prompt for r in rows if f">{r.prompt}</p>" in second}
    assert len(seen_first) == len(seen_second) == views.PAGE_SIZE
    assert not seen_first & seen_second
    assert "after=" in second  # a way back to newer videos


@pytest.mark.parametrize("count", [10, 500])
def test_a_page_costs_the_same_number_of_queries_whatever_the_size(
    client: Client, studio: Team, count: int
) -> None:
    _queued(studio.workspace, studio.bob, count)
    client.force_login(studio.bob)
    url = reverse("generation_list", args=[studio.workspace.slug])
    client.get(url)  # warm the session
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    # Same count for 10 and 500 rows (a page is at most PAGE_SIZE of them).
    assert len(queries) == EXPECTED_GALLERY_QUERIES, [q["sql"][:120] for q in queries]


EXPECTED_GALLERY_QUERIES = 7


def test_bulk_delete_deletes_only_this_workspaces_videos(
    client: Client, studio: Team, commit: Any
) -> None:
    mine = [finished(studio.workspace, studio.bob) for _ in range(2)]
    theirs = finished(studio.dave.personal_workspace, studio.dave)
    client.force_login(studio.bob)
    with commit():
        client.post(
            reverse("generation_bulk_delete", args=[studio.workspace.slug]),
            {"ids": [str(g.pk) for g in [*mine, theirs]] + ["not-a-uuid"]},
        )
    assert (
        Generation.objects.filter(pk__in=[g.pk for g in mine], deleted_at__isnull=False).count()
        == 2
    )
    assert Generation.objects.get(pk=theirs.pk).deleted_at is None


def test_running_cards_poll_and_finished_cards_do_not(client: Client, studio: Team) -> None:
    done = finished(studio.workspace, studio.bob)
    waiting = _queued(studio.workspace, studio.bob, 1)[0]
    client.force_login(studio.bob)
    page = _page(client, studio)
    card = reverse("generation_card", args=[studio.workspace.slug, waiting.pk])
    assert f'hx-get="{card}"' in page
    assert reverse("generation_card", args=[studio.workspace.slug, done.pk]) not in page
    assert "#1 in line" in page
    assert waiting.phase == Phase.QUEUED
    assert done.status == Status.SUCCEEDED
