"""The Segmind-compatible drop-in, in process: Segmind's shapes and codes, our keys,
scopes and roles, our ledger. (`test_segmind_compat_server.py` runs it under the real
ASGI server with Segmind's own snippet.)"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import AsyncClient, Client
from django.utils import timezone

from accounts.models import ApiKey, Scope, User, Workspace
from billing import wallets
from billing.models import Phase as TransferPhase
from billing.models import Transfer
from generations import gate, media
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, Phase, Source
from generations.upstream import UpstreamError
from mochi_site.api_auth import KeyRateThrottle
from tests.conftest import Team
from tests.support.async_calls import call_async
from tests.support.queue import run_tasks

pytestmark = pytest.mark.django_db

BODY = {"prompt": "a red fox running through snow", "frames": 31, "fps": 24, "steps": 20}
ALL_SCOPES = list(Scope.values)


def key_for(workspace: Workspace, user: User, scopes: list[str] | None = None) -> str:
    """An API key of `workspace` acting as `user` (with their role there)."""
    key, text = ApiKey.issue(
        workspace=workspace, name="Segmind app", scopes=scopes or ALL_SCOPES, created_by=user
    )
    key.save()
    return text


@pytest.fixture
def funded(team: Team) -> Team:
    wallets.grant(team.workspace, 1000, key="test-funding")
    return team


def post_v2(client: Client, key: str | None, body: Any = BODY, **extra: Any) -> Any:
    headers = {"x-api-key": key} if key is not None else {}
    return client.post(
        "/v2/mochi-1",
        json.dumps(body) if not isinstance(body, bytes) else body,
        content_type=extra.pop("content_type", "application/json"),
        headers={**headers, **extra.pop("headers", {})},
    )


def post_v1(key: str | None, body: Any = BODY, **extra: Any) -> Any:
    """`POST /v1/mochi-1` through Django's ASGI request path (the view is async)."""
    headers = {"x-api-key": key} if key is not None else {}
    return call_async(
        AsyncClient().post,
        "/v1/mochi-1",
        json.dumps(body),
        content_type=extra.pop("content_type", "application/json"),
        headers={**headers, **extra.pop("headers", {})},
    )


def get(client: Client, path: str, key: str | None) -> Any:
    return client.get(path, headers={"x-api-key": key} if key is not None else {})


def test_the_v2_flow_polls_to_completed_and_its_output_is_the_video_charged_once(
    fake: FakeSegmind, funded: Team, client: Client
) -> None:
    key = key_for(funded.workspace, funded.bob)
    answer = post_v2(client, key)
    assert answer.status_code == 200
    job = answer.json()
    request_id = job["request_id"]
    assert set(job) == {"request_id", "status", "poll_url", "status_url", "response_url"}
    assert job["status"] == "QUEUED"
    assert job["status_url"] == f"http://testserver/v2/requests/{request_id}/status"
    assert job["response_url"] == f"http://testserver/v2/requests/{request_id}"
    assert job["poll_url"] == f"http://testserver/v1/requests/{request_id}"

    generation = Generation.objects.get(pk=request_id)
    assert generation.source == Source.API
    assert generation.api_key is not None
    assert key.startswith(generation.api_key.prefix)
    assert generation.created_by == funded.bob
    assert wallets.balance(funded.workspace).held == generation.cost == 16

    seen = []
    for _ in range(200):
        status = get(client, job["status_url"].removeprefix("http://testserver"), key)
        assert status.status_code == 200
        seen.append(status.json()["status"])
        assert status.json()["request_id"] == request_id
        if seen[-1] == "COMPLETED":
            break
        run_tasks(timeout=0.3)
    assert seen[-1] == "COMPLETED"
    assert set(seen) <= {"QUEUED", "PROCESSING", "COMPLETED"}

    result = get(client, f"/v2/requests/{request_id}", key)
    assert result.status_code == 200
    body = result.json()
    assert body["status"] == "COMPLETED"
    assert body["metrics"]["cost"] == 16
    assert body["metrics"]["remaining_credits"] == 1000 - 16
    assert body["metrics"]["total_time"] >= body["metrics"]["inference_time"] >= 0
    assert get(client, f"/v1/requests/{request_id}", key).json()["output"].startswith("http://")

    video = client.get(body["output"].removeprefix("http://testserver"))
    assert video.status_code == 200
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "output.mp4"
        path.write_bytes(b"".join(video.streaming_content))
        assert media.looks_like_mp4(path)
        assert media.duration_seconds(path) == pytest.approx(31 / 24, abs=0.05)

    captures = Transfer.objects.filter(pending_id=generation.hold_id)
    assert [(t.phase, t.amount) for t in captures] == [(TransferPhase.POST, 16)]
    assert wallets.balance(funded.workspace) == wallets.Balance(available=984, held=0, owed=0)


def test_a_failed_job_answers_422_like_segmind_and_is_not_charged(
    fake: FakeSegmind, funded: Team, client: Client
) -> None:
    key = key_for(funded.workspace, funded.alice)
    request_id = post_v2(client, key, {**BODY, "prompt": "a fox [fault:failed]"}).json()[
        "request_id"
    ]
    run_tasks(until=lambda: Generation.objects.get(pk=request_id).is_terminal)

    for path in (f"/v2/requests/{request_id}/status", f"/v2/requests/{request_id}"):
        answer = get(client, path, key)
        assert answer.status_code == 422
        body = answer.json()
        assert body["status"] == "FAILED"
        assert "not charged" in body["error"]
        assert "cost" not in body["metrics"]
        assert "output" not in body
    assert wallets.balance(funded.workspace) == wallets.Balance(available=1000, held=0, owed=0)


def test_another_workspaces_request_is_not_found(funded: Team, client: Client) -> None:
    theirs = post_v2(client, key_for(funded.workspace, funded.alice)).json()["request_id"]
    dave = key_for(Workspace.objects.get(memberships__user=funded.dave), funded.dave)
    for path in (f"/v2/requests/{theirs}/status", f"/v2/requests/{theirs}"):
        answer = get(client, path, dave)
        assert answer.status_code == 404
        assert answer.json() == {"error": f"Request {theirs} not found"}
    unknown = uuid.uuid4()
    assert get(client, f"/v2/requests/{unknown}", dave).status_code == 404
    assert get(client, "/v2/requests/not-an-id/status", dave).status_code == 404


@pytest.mark.parametrize("endpoint", ["v1", "v2", "status", "result"])
def test_a_missing_or_invalid_key_is_401_in_segminds_shape(
    endpoint: str, funded: Team, client: Client
) -> None:
    some_id = post_v2(client, key_for(funded.workspace, funded.alice)).json()["request_id"]
    revoked = key_for(funded.workspace, funded.alice)
    ApiKey.objects.filter(lookup=ApiKey.split(revoked)[0]).update(  # type: ignore[index]
        revoked_at=timezone.now()
    )
    expired = key_for(funded.workspace, funded.alice)
    ApiKey.objects.filter(lookup=ApiKey.split(expired)[0]).update(  # type: ignore[index]
        expires_at=timezone.now()
    )

    def call(key: str | None, **extra: Any) -> Any:
        if endpoint == "v1":
            return post_v1(key, **extra)
        if endpoint == "v2":
            return post_v2(client, key, **extra)
        suffix = "/status" if endpoint == "status" else ""
        headers = {"x-api-key": key} if key is not None else {}
        return client.get(
            f"/v2/requests/{some_id}{suffix}", headers={**headers, **extra.get("headers", {})}
        )

    missing = call(None)
    assert missing.status_code == 401
    assert missing.json() == {"error": "Missing Authorization or x-api-key in header"}
    # Segmind takes the key only in x-api-key; so do we.
    valid = key_for(funded.workspace, funded.alice)
    assert call(None, headers={"Authorization": f"Bearer {valid}"}).status_code == 401
    for wrong in ("bad-key", revoked, expired, valid[:-2]):
        answer = call(wrong)
        assert answer.status_code == 401
        assert answer.json() == {"error": "Unauthorized. API key is invalid or may have expired"}
    assert Generation.objects.count() == 1


def test_a_key_without_the_scope_or_role_is_403_and_holds_nothing(
    funded: Team, client: Client
) -> None:
    some_id = post_v2(client, key_for(funded.workspace, funded.alice)).json()["request_id"]
    held = wallets.balance(funded.workspace)
    read_only = key_for(funded.workspace, funded.bob, [Scope.GENERATIONS_READ])
    for answer in (post_v1(read_only), post_v2(client, read_only)):
        assert answer.status_code == 403
        assert answer.json() == {
            "error": "Forbidden: this API key lacks the generations:write scope."
        }
    write_only = key_for(funded.workspace, funded.bob, [Scope.GENERATIONS_WRITE])
    answer = get(client, f"/v2/requests/{some_id}", write_only)
    assert answer.status_code == 403
    assert "generations:read" in answer.json()["error"]
    # carol is a viewer: her key may look, not create.
    viewer = key_for(funded.workspace, funded.carol)
    assert get(client, f"/v2/requests/{some_id}", viewer).status_code == 200
    for answer in (post_v1(viewer), post_v2(client, viewer)):
        assert answer.status_code == 403
        assert answer.json() == {"error": "Forbidden: viewers cannot create generations."}
    assert Generation.objects.count() == 1
    assert wallets.balance(funded.workspace) == held


def test_not_enough_credits_is_segminds_406_and_nothing_is_held(team: Team) -> None:
    wallets.grant(team.workspace, 10, key="a-little")
    key = key_for(team.workspace, team.bob)
    for answer in (post_v1(key), post_v2(Client(), key)):
        assert answer.status_code == 406
        error = answer.json()["error"]
        assert error.startswith("Not enough credits.")
        assert "costs 16 credits and 10 are available" in error
    assert not Generation.objects.exists()
    assert wallets.balance(team.workspace) == wallets.Balance(available=10, held=0, owed=0)


def test_bad_parameters_and_bodies_are_refused_in_segminds_shape(
    funded: Team, client: Client
) -> None:
    key = key_for(funded.workspace, funded.alice)
    cases: list[tuple[Any, str, int, str]] = [
        ({**BODY, "frames": 500}, "application/json", 400, "frames: "),
        ({**BODY, "prompt": ""}, "application/json", 400, "prompt: "),
        ({**BODY, "steps": "many"}, "application/json", 400, "steps: "),
        ([1, 2], "application/json", 400, "Request body must be a JSON object"),
        (b"{not json", "application/json", 400, "Request body is not valid JSON"),
        (BODY, "text/plain", 406, "Invalid content type, expected application/json"),
    ]
    for body, content_type, status, error in cases:
        answer = post_v2(client, key, body, content_type=content_type)
        assert answer.status_code == status, body
        assert set(answer.json()) == {"error"}
        assert answer.json()["error"].startswith(error)
    assert post_v1(key, {**BODY, "fps": 99}).json()["error"].startswith("fps: ")
    assert not Generation.objects.exists()


def test_a_seed_of_minus_one_or_none_is_drawn_and_others_are_kept(
    funded: Team, client: Client
) -> None:
    key = key_for(funded.workspace, funded.alice)
    extra_field = {**BODY, "base64": False}  # fields Segmind apps send that we do not know
    ids = [
        post_v2(client, key, body).json()["request_id"]
        for body in ({**BODY, "seed": -1}, extra_field, {**BODY, "seed": 1234})
    ]
    seeds = [Generation.objects.get(pk=i).seed for i in ids]
    assert seeds[0] >= 0
    assert seeds[1] >= 0
    assert seeds[2] == 1234


def test_while_the_upstream_is_unavailable_submits_are_503_and_hold_nothing(
    funded: Team, client: Client
) -> None:
    gate.record_failure(UpstreamError("upstream_unavailable", "x", status=401, opens_breaker=True))
    key = key_for(funded.workspace, funded.alice)
    for answer in (post_v1(key), post_v2(client, key)):
        assert answer.status_code == 503
        assert "nothing was charged" in answer.json()["error"]
    assert not Generation.objects.exists()
    assert wallets.balance(funded.workspace).held == 0


def test_past_its_timeout_v1_answers_504_and_the_generation_goes_on(
    fake: FakeSegmind, funded: Team, settings: Any
) -> None:
    settings.SEGMIND_COMPAT_V1_TIMEOUT_SECONDS = 0.3
    settings.SEGMIND_COMPAT_CHECK_SECONDS = 0.05
    answer = post_v1(key_for(funded.workspace, funded.alice))  # no worker runs meanwhile
    assert answer.status_code == 504
    request_id = answer["x-request-id"]
    assert f"GET /v2/requests/{request_id}" in answer.json()["error"]
    generation = Generation.objects.get(pk=request_id)
    assert not generation.is_terminal
    assert wallets.balance(funded.workspace).held == generation.cost

    run_tasks(until=lambda: Generation.objects.get(pk=request_id).is_terminal)
    generation.refresh_from_db()
    assert generation.phase == Phase.SUCCEEDED
    assert wallets.balance(funded.workspace) == wallets.Balance(
        available=1000 - generation.cost, held=0, owed=0
    )


def test_the_drop_in_shares_the_apis_rate_limit_and_says_when_to_retry(
    funded: Team, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(KeyRateThrottle, "THROTTLE_RATES", {"key": "2/min", "workspace": "9/min"})
    key = key_for(funded.workspace, funded.alice)
    path = f"/v2/requests/{uuid.uuid4()}"
    assert [get(client, path, key).status_code for _ in range(2)] == [404, 404]
    limited = get(client, path, key)
    assert limited.status_code == 429
    assert limited.json()["error"].startswith("Too many requests")
    assert int(limited["Retry-After"]) >= 1
    assert limited["x-rate-limit-reset-at-utc"].endswith("Z")
