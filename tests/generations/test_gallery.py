"""The gallery: filters, keyset pagination, a fixed number of queries, bulk delete."""

from __future__ import annotations

import re
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


def _history(workspace: Workspace, user: Any, count: int) -> list[Generation]:
    """Finished videos, newest first: every 50th failed, every 40th a favourite, one prompt
    in all about a heron (keys name objects that need not exist: pages only sign them)."""
    now = timezone.now()
    rows = []
    for n in range(count):
        generation_id = uuid.uuid4()
        failed = n % 50 == 7
        key = "" if failed else f"workspaces/{workspace.pk}/generations/{generation_id}"
        rows.append(
            Generation(
                id=generation_id,
                workspace=workspace,
                created_by=user,
                prompt="a grey heron at dawn" if n == count // 2 else f"waves on a shore, take {n}",
                guidance_scale=4.5,
                fps=16,
                frames=52,
                steps=30,
                seed=n,
                cost=39,
                hold_id=uuid.uuid4(),
                phase=Phase.FAILED if failed else Phase.SUCCEEDED,
                status=Status.FAILED if failed else Status.SUCCEEDED,
                video_key=key and key + ".mp4",
                poster_key=key and key + ".jpg",
                is_favorite=n % 40 == 3,
                created_at=now - timedelta(seconds=n),
            )
        )
    return Generation.objects.bulk_create(rows, batch_size=5000)


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


def test_pages_split_videos_made_in_the_same_instant_without_gaps(
    client: Client, studio: Team
) -> None:
    rows = _queued(studio.workspace, studio.bob, 30)
    Generation.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=rows[0].created_at)
    client.force_login(studio.bob)
    url = reverse("generation_list", args=[studio.workspace.slug])

    def ids(page: str) -> set[str]:
        return {str(r.pk) for r in rows if f'id="card-{r.pk}"' in page}

    first = client.get(url).content.decode()
    older = first.split("before=")[1].split('"')[0].replace("&amp;", "&")
    second = client.get(f"{url}?before={older}").content.decode()
    assert len(ids(first)) == views.PAGE_SIZE
    assert len(ids(second)) == 30 - views.PAGE_SIZE
    assert ids(first) | ids(second) == {str(r.pk) for r in rows}
    newer = second.split("after=")[1].split('"')[0].replace("&amp;", "&")
    assert ids(client.get(f"{url}?after={newer}").content.decode()) == ids(first)


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


def test_each_card_links_its_page_and_a_poster_that_loads(client: Client, studio: Team) -> None:
    done = [finished(studio.workspace, studio.bob, prompt=f"a fox, take {n}") for n in range(2)]
    waiting = _queued(studio.workspace, studio.bob, 1)[0]
    client.force_login(studio.carol)
    page = _page(client, studio)

    for generation in [*done, waiting]:
        detail = reverse("generation_detail", args=[studio.workspace.slug, generation.pk])
        assert f'<a class="gen-card-media" href="{detail}">' in page
    posters = re.findall(r'<img src="([^"]+)" alt="" width="424"', page)
    assert len(posters) == len(done)
    assert len(set(posters)) == len(done)
    for link in posters:
        poster = client.get(link)
        assert poster.status_code == 200
        assert poster["Content-Type"] == "image/jpeg"
    client.logout()
    assert client.get(posters[0]).status_code == 200  # the link is the access, for 15 min


def _plan(client: Client, team: Team, **query: str) -> str:
    """How PostgreSQL runs the query that reads the page's generations."""
    with CaptureQueriesContext(connection) as queries:
        _page(client, team, **query)
    (sql,) = [
        q["sql"]
        for q in queries
        if q["sql"].startswith('SELECT "generations_generation"."id"') and "LIMIT" in q["sql"]
    ]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.ledger_tampered  # finished rows made directly, without their ledger holds
def test_pages_are_read_in_index_order_and_the_search_from_its_trigram_index(
    client: Client, studio: Team
) -> None:
    """With what autovacuum keeps (statistics, a flushed trigram index), each page reads
    only its own rows: the newest first straight from an index (no sort of the whole
    history), filters from theirs, and a rare word from the prompts' trigram index."""
    rows = _history(studio.workspace, studio.bob, 4000)
    with connection.cursor() as cursor:  # what autovacuum does after such an insert
        cursor.execute("SELECT gin_clean_pending_list('gen_prompt_trigram')")
        cursor.execute("ANALYZE generations_generation")
    client.force_login(studio.bob)
    deep = views._cursor_of(rows[2000])

    newest = _plan(client, studio)
    assert "gen_workspace_newest" in newest
    assert "Sort" not in newest
    # A page deep in the history starts reading at its cursor, not at the newest row.
    older = _plan(client, studio, before=deep)
    assert "Index Scan using gen_workspace_newest" in older
    assert "Sort" not in older
    assert "AND (created_at <= " in older.split("Index Cond:")[1].split("\n")[0]
    newer = _plan(client, studio, after=deep)
    assert "Index Scan Backward using gen_workspace_newest" in newer
    assert "Sort" not in newer
    assert "AND (created_at >= " in newer.split("Index Cond:")[1].split("\n")[0]
    failed = _plan(client, studio, status="failed")
    assert "gen_workspace_status_newest" in failed
    assert "Sort" not in failed
    favorites = _plan(client, studio, favorites="1")
    assert "gen_workspace_favorites" in favorites
    assert "Sort" not in favorites
    assert "gen_prompt_trigram" in _plan(client, studio, q="heron")
    # A word in every prompt: the newest matches are the first rows of the history.
    common = _plan(client, studio, q="shore")
    assert "gen_workspace_newest" in common
    assert "gen_prompt_trigram" not in common

    page = _page(client, studio, q="HERON")
    assert "a grey heron at dawn" in page
    assert "waves on a shore" not in page
