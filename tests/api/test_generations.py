"""The generation endpoints: create, list, read, cancel, delete, video, estimate."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from billing import wallets
from billing.models import Phase as TransferPhase
from billing.models import Transfer
from generations import gate
from generations.models import Generation, Phase, Status, UpstreamGate
from generations.upstream import UpstreamError
from tests.api.conftest import GENERATION, Api, key_for, personal
from tests.conftest import Commit, Team
from tests.generations.helpers import finished

pytestmark = pytest.mark.django_db

GENERATION_FIELDS = {
    "id",
    "status",
    "prompt",
    "negative_prompt",
    "guidance_scale",
    "fps",
    "frames",
    "steps",
    "seed",
    "cost",
    "created_at",
    "started_at",
    "finished_at",
    "duration_seconds",
    "progress",
    "video_url",
    "poster_url",
    "error",
    "source",
    "webhook_url",
}


def test_create_holds_the_price_and_answers_202_with_the_generation(
    owner_api: Api, funded: Team
) -> None:
    before = wallets.balance(funded.workspace)
    response = owner_api.post("/generations", {**GENERATION, "seed": 7})
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == GENERATION_FIELDS
    assert set(body["progress"]) == {"phase", "queue_position", "elapsed_seconds", "eta_seconds"}
    assert body["status"] in ("queued", "running")
    assert body["cost"] == 16  # ceil(31 × 20 / 40)
    assert body["seed"] == 7
    assert body["source"] == "api"
    assert body["video_url"] is None
    assert body["error"] is None
    assert body["duration_seconds"] == pytest.approx(31 / 24, abs=0.01)
    generation = Generation.objects.get(pk=body["id"])
    assert generation.api_key == ApiKey.objects.get()
    assert generation.created_by == funded.alice
    after = wallets.balance(funded.workspace)
    assert (before.available - after.available, after.held - before.held) == (16, 16)


def test_create_draws_a_seed_when_none_is_given_and_returns_it(owner_api: Api) -> None:
    body = owner_api.post("/generations", GENERATION).json()
    assert isinstance(body["seed"], int)
    assert Generation.objects.get(pk=body["id"]).seed == body["seed"]


def test_create_with_too_few_credits_is_402_and_holds_nothing(funded: Team) -> None:
    api = Api(key_for(funded.membership(funded.alice)))
    wallets.grant(funded.workspace, 1, key="noise")  # any balance below the price
    available = wallets.balance(funded.workspace).available
    expensive = {**GENERATION, "frames": 160, "steps": 75}  # 300 credits
    for _ in range(available // 300):
        assert api.post("/generations", expensive).status_code == 202
    response = api.post("/generations", expensive)
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "insufficient_credits"
    holds = Transfer.objects.filter(phase=TransferPhase.PENDING).count()
    assert holds == Generation.objects.count()


def test_create_while_the_upstream_is_broken_is_503_and_holds_nothing(owner_api: Api) -> None:
    gate.record_failure(
        UpstreamError("upstream_unavailable", "401", status=401, opens_breaker=True)
    )
    assert gate.state().breaker == UpstreamGate.Breaker.OPEN
    response = owner_api.post("/generations", GENERATION)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"
    assert not Generation.objects.exists()
    assert not Transfer.objects.filter(phase=TransferPhase.PENDING).exists()


def test_list_is_newest_first_with_stable_cursor_pages(owner_api: Api, funded: Team) -> None:
    now = timezone.now()
    made = []
    for n in range(5):
        generation = finished(funded.workspace, funded.alice, prompt=f"clip {n}")
        Generation.objects.filter(pk=generation.pk).update(created_at=now - timedelta(minutes=n))
        made.append(str(generation.pk))
    first = owner_api.get("/generations", limit=2).json()
    assert [g["id"] for g in first["results"]] == made[:2]
    assert first["previous"] is None
    # A generation created meanwhile does not shift the next page.
    owner_api.post("/generations", GENERATION)
    cursor = parse_qs(urlsplit(first["next"]).query)["cursor"][0]
    second = owner_api.get("/generations", limit=2, cursor=cursor).json()
    assert [g["id"] for g in second["results"]] == made[2:4]
    assert second["previous"] is not None
    cursor = parse_qs(urlsplit(second["next"]).query)["cursor"][0]
    third = owner_api.get("/generations", limit=2, cursor=cursor).json()
    assert [g["id"] for g in third["results"]] == made[4:]
    assert third["next"] is None


def test_list_filters_by_status_and_caps_the_limit(owner_api: Api, funded: Team) -> None:
    done = finished(funded.workspace, funded.alice)
    failed = finished(funded.workspace, funded.alice, status="failed")
    succeeded = owner_api.get("/generations", status="succeeded").json()["results"]
    assert [g["id"] for g in succeeded] == [str(done.pk)]
    assert succeeded[0]["video_url"].startswith("http")
    assert succeeded[0]["poster_url"].startswith("http")
    failures = owner_api.get("/generations", status="failed").json()["results"]
    assert [g["id"] for g in failures] == [str(failed.pk)]
    assert failures[0]["error"]["code"] == "generation_failed"
    assert owner_api.get("/generations", limit=1000).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
    ],
)
def test_list_names_a_bad_query_parameter(owner_api: Api, params: dict, field: str) -> None:
    response = owner_api.get("/generations", **params)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_list_never_shows_another_workspaces_generations(owner_api: Api, funded: Team) -> None:
    finished(personal(funded.dave), funded.dave)
    assert owner_api.get("/generations").json()["results"] == []


def test_read_one(owner_api: Api, funded: Team) -> None:
    generation = finished(funded.workspace, funded.alice)
    body = owner_api.get(f"/generations/{generation.pk}").json()
    assert body["id"] == str(generation.pk)
    assert body["status"] == "succeeded"
    assert body["progress"]["phase"] == "succeeded"
    # The short-lived link really serves the video.
    video = Client().get(urlsplit(body["video_url"]).path)
    assert video.status_code == 200
    assert b"ftyp" in b"".join(video.streaming_content)[:64]


def test_another_workspaces_generation_is_404_everywhere(owner_api: Api, funded: Team) -> None:
    theirs = finished(personal(funded.dave), funded.dave)
    for response in (
        owner_api.get(f"/generations/{theirs.pk}"),
        owner_api.get(f"/generations/{theirs.pk}/video"),
        owner_api.post(f"/generations/{theirs.pk}/cancel"),
        owner_api.delete(f"/generations/{theirs.pk}"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.deleted_at is None


def test_cancel_releases_the_hold_and_a_second_cancel_is_409(owner_api: Api, funded: Team) -> None:
    before = wallets.balance(funded.workspace)
    created = owner_api.post("/generations", GENERATION).json()
    canceled = owner_api.post(f"/generations/{created['id']}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["error"]["code"] == "canceled"
    assert wallets.balance(funded.workspace) == before
    again = owner_api.post(f"/generations/{created['id']}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "not_cancelable"


def test_delete_removes_the_files_and_then_it_is_gone(
    owner_api: Api, funded: Team, commit: Commit
) -> None:
    from generations import storage

    generation = finished(funded.workspace, funded.alice)
    assert storage.exists(generation.video_key)
    with commit():
        assert owner_api.delete(f"/generations/{generation.pk}").status_code == 204
    assert owner_api.get(f"/generations/{generation.pk}").status_code == 404
    generation.refresh_from_db()
    assert generation.deleted_at is not None
    assert not storage.exists(generation.video_key)


def test_deleting_unfinished_work_cancels_it_first(owner_api: Api, funded: Team) -> None:
    before = wallets.balance(funded.workspace)
    created = owner_api.post("/generations", GENERATION).json()
    assert owner_api.delete(f"/generations/{created['id']}").status_code == 204
    generation = Generation.objects.get(pk=created["id"])
    assert generation.phase == Phase.CANCELED
    assert wallets.balance(funded.workspace) == before


def test_video_redirects_to_a_short_lived_link(owner_api: Api, funded: Team) -> None:
    generation = finished(funded.workspace, funded.alice, prompt="A red fox!")
    response = owner_api.get(f"/generations/{generation.pk}/video")
    assert response.status_code == 302
    location = response["Location"]
    assert location.startswith("http://testserver/files/")
    served = Client().get(urlsplit(location).path)
    assert served.status_code == 200
    assert 'filename="a-red-fox.mp4"' in served["Content-Disposition"]


def test_video_of_unfinished_or_failed_work_is_404(owner_api: Api, funded: Team) -> None:
    failed = finished(funded.workspace, funded.alice, status="failed")
    assert owner_api.get(f"/generations/{failed.pk}/video").status_code == 404
    queued = owner_api.post("/generations", GENERATION).json()
    assert owner_api.get(f"/generations/{queued['id']}/video").status_code == 404


def test_estimate_uses_the_same_price_as_submit(owner_api: Api, funded: Team) -> None:
    for frames, steps, cost in [(52, 30, 39), (160, 75, 300), (1, 10, 1), (31, 20, 16)]:
        body = owner_api.post("/estimate", {"prompt": "x", "frames": frames, "steps": steps})
        assert body.json() == {"cost": cost, "duration_seconds": round(frames / 16, 2)}
    created = owner_api.post("/generations", {**GENERATION, "frames": 52, "steps": 30}).json()
    assert created["cost"] == 39
    assert not Generation.objects.filter(status=Status.SUCCEEDED).exists()


def test_estimate_validates_like_create(owner_api: Api) -> None:
    response = owner_api.post("/estimate", {"prompt": "x", "frames": 0, "colour": "red"})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"colour"}
    response = owner_api.post("/estimate", {"prompt": "x", "frames": 0})
    assert set(response.json()["error"]["fields"]) == {"frames"}
