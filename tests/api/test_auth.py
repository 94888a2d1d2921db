"""Who may call the API: keys (missing, malformed, unknown, wrong secret, revoked, expired,
orphaned), scopes, roles, browser sessions with CSRF."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, Membership, Role, Scope
from accounts.services import revoke_api_key
from tests.api.conftest import GENERATION, Api, key_acting_as, key_for
from tests.conftest import PASSWORD, Team

pytestmark = pytest.mark.django_db


def _assert_unauthenticated(response: Any) -> None:
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_it_asks_for_a_key_when_there_is_none(funded: Team) -> None:
    _assert_unauthenticated(Api().get("/workspace"))


@pytest.mark.parametrize(
    "text",
    ["nonsense", "msk_", "msk_short_secret", "sk_live_abc", "msk_abcdefghijkl_"],
)
def test_it_refuses_text_that_is_not_a_key(funded: Team, text: str) -> None:
    _assert_unauthenticated(Api(text).get("/workspace"))


def test_it_refuses_an_unknown_lookup_and_a_wrong_secret(funded: Team) -> None:
    text = key_for(funded.membership(funded.alice))
    lookup = text.split("_")[1]
    _assert_unauthenticated(Api(f"msk_{'z' * 12}_{text.split('_', 2)[2]}").get("/workspace"))
    _assert_unauthenticated(Api(f"msk_{lookup}_wrong-secret").get("/workspace"))
    assert Api(text).get("/workspace").status_code == 200


def test_a_revoked_key_stops_working_on_the_next_request(funded: Team) -> None:
    text = key_for(funded.membership(funded.alice))
    api = Api(text)
    assert api.get("/workspace").status_code == 200
    key = ApiKey.objects.get()
    revoke_api_key(actor=funded.membership(funded.alice), key=key)
    _assert_unauthenticated(api.get("/workspace"))


def test_an_expired_key_stops_working(funded: Team) -> None:
    text = key_for(funded.membership(funded.alice))
    ApiKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    _assert_unauthenticated(Api(text).get("/workspace"))


def test_a_key_stops_working_when_its_creator_leaves_the_workspace(funded: Team) -> None:
    text = key_for(funded.membership(funded.erin))
    Membership.objects.filter(workspace=funded.workspace, user=funded.erin).delete()
    _assert_unauthenticated(Api(text).get("/workspace"))


def test_a_key_of_a_deleted_team_stops_working(funded: Team) -> None:
    text = key_for(funded.membership(funded.alice))
    funded.workspace.deleted_at = timezone.now()
    funded.workspace.save()
    _assert_unauthenticated(Api(text).get("/workspace"))


def test_it_records_when_a_key_was_last_used_without_writing_every_time(funded: Team) -> None:
    api = Api(key_for(funded.membership(funded.alice)))
    assert ApiKey.objects.get().last_used_at is None
    api.get("/workspace")
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    api.get("/workspace")
    assert ApiKey.objects.get().last_used_at == first  # within the minute: not rewritten


@pytest.mark.parametrize(
    ("scopes", "method", "path", "expected"),
    [
        ([Scope.GENERATIONS_READ], "post", "/generations", 403),
        ([Scope.GENERATIONS_READ], "get", "/generations", 200),
        ([Scope.GENERATIONS_WRITE], "get", "/generations", 403),
        ([Scope.GENERATIONS_WRITE], "post", "/generations", 202),
        ([Scope.GENERATIONS_READ], "get", "/ledger", 403),
        ([Scope.BILLING_READ], "get", "/ledger", 200),
        ([Scope.BILLING_READ], "get", "/workspace", 200),
        ([Scope.GENERATIONS_READ], "get", "/webhook-secret", 403),
        ([Scope.GENERATIONS_READ], "post", "/estimate", 200),
    ],
)
def test_a_key_only_does_what_its_scopes_allow(
    funded: Team, scopes: list[str], method: str, path: str, expected: int
) -> None:
    api = Api(key_for(funded.membership(funded.alice), scopes))
    response = api.post(path, GENERATION) if method == "post" else api.get(path)
    assert response.status_code == expected, response.content
    if expected == 403:
        assert response.json()["error"]["code"] == "permission_denied"
        assert "scope" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("role", "create", "read", "secret"),
    [
        (Role.ADMIN, 202, 200, 200),
        (Role.MEMBER, 202, 200, 403),
        (Role.VIEWER, 403, 200, 403),
    ],
)
def test_a_key_acts_with_its_creators_current_role(
    funded: Team, role: Role, create: int, read: int, secret: int
) -> None:
    api = Api(key_acting_as(funded, role))
    assert api.post("/generations", GENERATION).status_code == create
    assert api.get("/generations").status_code == read
    assert api.get("/webhook-secret").status_code == secret


def _signed_in(team: Team, persona: str, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    assert client.login(email=f"{persona}@example.com", password=PASSWORD)
    return client


def test_a_browser_session_uses_the_workspace_it_names(funded: Team) -> None:
    api = Api(client=_signed_in(funded, "bob"))
    mine = api.get("/workspace")
    assert mine.status_code == 200
    assert mine.json()["slug"] == f"{funded.bob.email.split('@')[0]}"  # personal by default
    team = api.client.get("/api/v1/workspace", {"workspace": funded.workspace.slug})
    assert team.json()["slug"] == funded.workspace.slug


def test_a_session_naming_someone_elses_workspace_gets_404(funded: Team) -> None:
    client = _signed_in(funded, "dave")
    response = client.get("/api/v1/workspace", {"workspace": funded.workspace.slug})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_browser_session_needs_the_csrf_token_to_change_anything(funded: Team) -> None:
    client = _signed_in(funded, "bob", csrf=True)
    url = f"/api/v1/generations?workspace={funded.workspace.slug}"
    refused = client.post(url, GENERATION, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    client.get(f"/w/{funded.workspace.slug}/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post(
        url, GENERATION, content_type="application/json", headers={"X-CSRFToken": token}
    )
    assert accepted.status_code == 202, accepted.content


def test_a_viewer_session_may_read_but_not_create(funded: Team) -> None:
    client = _signed_in(funded, "carol")
    url = f"/api/v1/generations?workspace={funded.workspace.slug}"
    assert client.get(url).status_code == 200
    response = client.post(url, GENERATION, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
