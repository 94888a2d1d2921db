"""Bad input gets a clear error in the envelope and changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from accounts.models import Scope
from generations.models import Generation
from mochi_site.api_auth import KeyRateThrottle, WorkspaceRateThrottle
from tests.api.conftest import GENERATION, Api, key_for
from tests.conftest import Team
from tests.support.concurrency import run_together

pytestmark = pytest.mark.django_db


def _error(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_malformed_json_is_invalid_json(owner_api: Api) -> None:
    response = owner_api.client.post(
        "/api/v1/generations",
        '{"prompt": "a fox",',
        content_type="application/json",
        headers=owner_api._headers(None),
    )
    _error(response, 400, "invalid_json")
    assert not Generation.objects.exists()


@pytest.mark.parametrize("body", [[1, 2], "a fox", 42, None])
def test_a_body_that_is_not_an_object_is_a_validation_error(owner_api: Api, body: object) -> None:
    response = owner_api.client.post(
        "/api/v1/generations",
        json.dumps(body),
        content_type="application/json",
        headers=owner_api._headers(None),
    )
    error = _error(response, 400, "validation_error")
    assert error["fields"]
    assert not Generation.objects.exists()


def test_unknown_fields_are_named_and_nothing_is_created(owner_api: Api) -> None:
    body = {**GENERATION, "status": "succeeded", "cost": 0, "workspace": "other"}
    error = _error(owner_api.post("/generations", body), 400, "validation_error")
    assert set(error["fields"]) == {"status", "cost", "workspace"}
    assert not Generation.objects.exists()


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"frames": 161}, "frames"),
        ({"frames": 0}, "frames"),
        ({"frames": 12.5}, "frames"),
        ({"frames": "52"}, "frames"),
        ({"steps": 9}, "steps"),
        ({"steps": 76}, "steps"),
        ({"fps": 6.9}, "fps"),
        ({"fps": 31}, "fps"),
        ({"guidance_scale": 1.9}, "guidance_scale"),
        ({"guidance_scale": True}, "guidance_scale"),
        ({"seed": -2}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"seed": "7"}, "seed"),
        ({"negative_prompt": 5}, "negative_prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"webhook_url": "not a url"}, "webhook_url"),
        ({"webhook_url": []}, "webhook_url"),
        ({"webhook_url": 0}, "webhook_url"),
        ({"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
        ({"webhook_url": "https://exa\x00mple.com/hook"}, "webhook_url"),
        ({"webhook_url": "https://example.com/a hook"}, "webhook_url"),
        ({"prompt": "a fox\x00"}, "prompt"),
        ({"negative_prompt": "blur\x00"}, "negative_prompt"),
    ],
)
def test_each_invalid_parameter_is_named(owner_api: Api, override: dict, field: str) -> None:
    error = _error(
        owner_api.post("/generations", {**GENERATION, **override}), 400, "validation_error"
    )
    assert field in error["fields"], error
    assert not Generation.objects.exists()


def test_several_invalid_parameters_are_named_together(owner_api: Api) -> None:
    body = {"prompt": "", "frames": 500, "steps": 1}
    error = _error(owner_api.post("/generations", body), 400, "validation_error")
    assert {"prompt", "frames", "steps"} <= set(error["fields"])


def test_bodies_over_64_kb_are_refused_before_they_are_read(owner_api: Api) -> None:
    body = {**GENERATION, "negative_prompt": "x" * (65 * 1024)}
    _error(owner_api.post("/generations", body), 413, "payload_too_large")
    assert not Generation.objects.exists()


def test_a_body_that_is_not_json_is_refused(owner_api: Api) -> None:
    response = owner_api.client.post(
        "/api/v1/generations",
        "prompt=a+fox",
        content_type="application/x-www-form-urlencoded",
        headers=owner_api._headers(None),
    )
    _error(response, 415, "unsupported_media_type")


def test_an_unknown_api_address_answers_the_envelope(owner_api: Api) -> None:
    _error(owner_api.get("/no-such-thing"), 404, "not_found")


def test_a_wrong_method_is_refused(owner_api: Api) -> None:
    _error(owner_api.delete("/generations"), 405, "method_not_allowed")


def test_rate_limits_answer_429_with_retry_after(
    funded: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(KeyRateThrottle, "THROTTLE_RATES", {"key": "3/min"})
    api = Api(key_for(funded.membership(funded.alice), [Scope.BILLING_READ]))
    for _ in range(3):
        assert api.get("/workspace").status_code == 200
    error = _error(api.get("/workspace"), 429, "rate_limited")
    response = api.get("/workspace")
    assert int(response.headers["Retry-After"]) >= 1
    assert "try again" in error["message"]
    # Another key of the same workspace has its own allowance.
    other = Api(key_for(funded.membership(funded.erin), [Scope.BILLING_READ]))
    assert other.get("/workspace").status_code == 200


def test_a_workspace_shares_one_allowance_between_its_keys(
    funded: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(WorkspaceRateThrottle, "THROTTLE_RATES", {"workspace": "4/min"})
    first = Api(key_for(funded.membership(funded.alice), [Scope.BILLING_READ]))
    second = Api(key_for(funded.membership(funded.erin), [Scope.BILLING_READ]))
    assert [first.get("/workspace").status_code for _ in range(2)] == [200, 200]
    assert [second.get("/workspace").status_code for _ in range(2)] == [200, 200]
    _error(second.get("/workspace"), 429, "rate_limited")
    _error(first.get("/workspace"), 429, "rate_limited")


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_cannot_pass_the_limit_together(
    funded: Team, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """Counted with Redis's atomic increment, as in production: 24 requests at once
    against a limit of 10 let exactly 10 through."""
    import redis

    url = "redis://127.0.0.1:6379/12"
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    }
    monkeypatch.setattr(KeyRateThrottle, "THROTTLE_RATES", {"key": "10/hour"})
    api = Api(key_for(funded.membership(funded.alice), [Scope.BILLING_READ]))
    results = run_together([lambda: Api(api.key).get("/workspace").status_code] * 24)
    assert sorted(results) == [200] * 10 + [429] * 14
