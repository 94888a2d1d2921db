"""`GET /api/v1/generations/<id>/webhooks` and `POST …/webhooks/<id>/redeliver`: scopes,
roles, other workspaces' objects, and what they answer."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import Membership, Role, Scope
from accounts.services import create_api_key
from billing import wallets
from generations import services, webhooks
from generations.models import Generation, WebhookDelivery
from generations.params import parse_params
from tests.conftest import Team
from tests.support.queue import pending_tasks
from tests.support.webhook_receiver import Answer, Receiver

pytestmark = pytest.mark.django_db

READ, WRITE = Scope.GENERATIONS_READ, Scope.GENERATIONS_WRITE


def _client(membership: Membership, *scopes: str) -> Client:
    _, key = create_api_key(actor=membership, name="app", scopes=list(scopes))
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}")


def _generation(team: Team, webhook_url: str) -> Generation:
    return services.submit_generation(
        workspace=team.workspace,
        params=parse_params({"prompt": "a fox", "frames": 13, "steps": 10}),
        user=team.alice,
        membership=team.membership(team.alice),
        webhook_url=webhook_url,
    )


@pytest.fixture
def delivery(team: Team, hooks: Receiver) -> WebhookDelivery:
    """A canceled generation's webhook, tried once (503) and waiting two hours to retry."""
    wallets.grant(team.workspace, 100, key="test-funding")
    hooks.answers = [Answer(status=503, headers={"Retry-After": "7200"})]
    generation = _generation(team, hooks.url)
    services.cancel_generation(generation)
    delivery = WebhookDelivery.objects.get(generation=generation)
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    return delivery


def _list_url(delivery: WebhookDelivery) -> str:
    return f"/api/v1/generations/{delivery.generation_id}/webhooks"


def _redeliver_url(delivery: WebhookDelivery) -> str:
    return f"/api/v1/generations/{delivery.generation_id}/webhooks/{delivery.pk}/redeliver"


def test_it_lists_the_deliveries_with_every_attempt(team: Team, delivery: WebhookDelivery) -> None:
    response = _client(team.membership(team.alice), READ).get(_list_url(delivery))
    assert response.status_code == 200
    [listed] = response.json()["results"]
    assert listed["id"] == str(delivery.pk)
    assert listed["event_id"] == delivery.event_id
    assert listed["event_type"] == "generation.canceled"
    assert listed["url"] == delivery.url
    assert listed["state"] == "pending"
    assert listed["attempts"] == 1
    assert listed["next_attempt_at"] is not None
    assert (listed["last_status"], listed["delivered_at"], listed["failed_at"]) == (503, None, None)
    [attempt] = listed["log"]
    assert attempt["attempt"] == 1
    assert attempt["status"] == 503
    assert attempt["error"] == "HTTP 503."
    assert attempt["at"].endswith("Z")
    assert isinstance(attempt["duration_ms"], int)


def test_redeliver_sends_the_same_message_again(
    team: Team, delivery: WebhookDelivery, hooks: Receiver
) -> None:
    # The member role is enough: erin's key acts as a member once she is one.
    client = _client(team.membership(team.erin), WRITE)
    Membership.objects.filter(workspace=team.workspace, user=team.erin).update(role=Role.MEMBER)
    response = client.post(_redeliver_url(delivery))
    assert response.status_code == 202
    body = response.json()
    assert (body["id"], body["event_id"], body["state"]) == (
        str(delivery.pk),
        delivery.event_id,
        "pending",
    )
    assert body["attempts"] == 0
    assert "generations.tasks.deliver_webhook" in pending_tasks()
    webhooks.attempt(delivery.pk)
    assert [r.body for r in hooks.requests] == [delivery.payload.encode()] * 2


@pytest.mark.parametrize(
    ("method", "url"), [("get", _list_url), ("post", _redeliver_url)], ids=["list", "redeliver"]
)
def test_an_api_key_without_the_scope_is_refused(
    team: Team, delivery: WebhookDelivery, method: str, url: Any
) -> None:
    other_scope = {"get": Scope.BILLING_READ, "post": READ}[method]
    client = _client(team.membership(team.alice), other_scope)
    response = getattr(client, method)(url(delivery))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    delivery.refresh_from_db()
    assert delivery.attempts == 1


def test_a_viewer_may_list_but_not_redeliver(team: Team, delivery: WebhookDelivery) -> None:
    # A key acts with its creator's role: erin's key after she became a viewer.
    client = _client(team.membership(team.erin), READ, WRITE)
    Membership.objects.filter(workspace=team.workspace, user=team.erin).update(role=Role.VIEWER)
    assert client.get(_list_url(delivery)).status_code == 200
    response = client.post(_redeliver_url(delivery))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize(
    ("method", "url"), [("get", _list_url), ("post", _redeliver_url)], ids=["list", "redeliver"]
)
def test_another_workspace_gets_not_found(
    team: Team, delivery: WebhookDelivery, method: str, url: Any
) -> None:
    dave = Membership.objects.get(user=team.dave)  # his personal workspace
    response = getattr(_client(dave, READ, WRITE), method)(url(delivery))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_delivery_of_another_generation_is_not_found(
    team: Team, delivery: WebhookDelivery, hooks: Receiver
) -> None:
    other = _generation(team, hooks.url)
    client = _client(team.membership(team.alice), WRITE)
    response = client.post(f"/api/v1/generations/{other.pk}/webhooks/{delivery.pk}/redeliver")
    assert response.status_code == 404


def test_without_a_key_it_answers_401(client: Client, delivery: WebhookDelivery) -> None:
    assert client.get(_list_url(delivery)).status_code == 401
    assert client.post(_redeliver_url(delivery)).status_code == 401


def test_redeliver_is_post_only(team: Team, delivery: WebhookDelivery) -> None:
    client = _client(team.membership(team.alice), READ, WRITE)
    assert client.get(_redeliver_url(delivery)).status_code == 405
