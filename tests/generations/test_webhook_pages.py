"""The webhook part of a generation's page: the delivery log for everyone in the team,
the Redeliver button and action for members (POST with CSRF), 404 for outsiders."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from billing import wallets
from generations import services, webhooks
from generations.models import Generation, WebhookDelivery
from generations.params import parse_params
from tests.conftest import Team
from tests.support.webhook_receiver import Answer, Receiver

pytestmark = pytest.mark.django_db

PERSONAS = ["alice", "erin", "bob", "carol", "dave"]


def _generation(team: Team, webhook_url: str) -> Generation:
    wallets.grant(team.workspace, 100, key="test-funding")
    membership = team.membership(team.alice)
    return services.submit_generation(
        workspace=team.workspace,
        params=parse_params({"prompt": "a fox", "frames": 13, "steps": 10}),
        user=team.alice,
        membership=membership,
        webhook_url=webhook_url,
    )


@pytest.fixture
def failed_delivery(team: Team, hooks: Receiver) -> WebhookDelivery:
    """A failed generation whose webhook was tried twice (500, then 503) and gave up."""
    hooks.answers = [Answer(status=500), Answer(status=503)]
    generation = _generation(team, hooks.url)
    services.finish_failed(generation, "generation_failed")
    delivery = WebhookDelivery.objects.get(generation=generation)
    webhooks.attempt(delivery.pk)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=webhooks.MAX_ATTEMPTS - 1, next_attempt_at=timezone.now()
    )
    webhooks.attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "failed"
    return delivery


def _detail(team: Team, generation_id: Any) -> str:
    return reverse("generation_detail", args=[team.workspace.slug, generation_id])


def _redeliver(team: Team, delivery: WebhookDelivery) -> str:
    return reverse(
        "generation_webhook_redeliver",
        args=[team.workspace.slug, delivery.generation_id, delivery.pk],
    )


@pytest.mark.parametrize("persona", PERSONAS)
def test_the_page_shows_every_attempt_and_only_members_get_the_button(
    client: Client, team: Team, failed_delivery: WebhookDelivery, persona: str
) -> None:
    client.force_login(team.persona(persona))
    response = client.get(_detail(team, failed_delivery.generation_id))
    if persona == "dave":
        assert response.status_code == 404
        return
    assert response.status_code == 200
    page = response.content.decode()
    assert failed_delivery.event_id in page
    assert "generation.failed" in page
    assert "HTTP 500" in page
    assert "HTTP 503" in page
    assert "Failed" in page
    assert (_redeliver(team, failed_delivery) in page) is (persona != "carol")
    assert ("Redeliver</button>" in page) is (persona != "carol")


@pytest.mark.parametrize("persona", PERSONAS)
def test_redeliver_needs_the_member_role(
    client: Client, team: Team, failed_delivery: WebhookDelivery, persona: str
) -> None:
    client.force_login(team.persona(persona))
    response = client.post(_redeliver(team, failed_delivery))
    failed_delivery.refresh_from_db()
    expected = {"dave": 404, "carol": 403}.get(persona, 302)
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"] == _detail(team, failed_delivery.generation_id)
        assert (failed_delivery.state, failed_delivery.attempts) == ("pending", 0)
        assert OrmQ.objects.filter(key__isnull=False).exists()
    else:
        assert failed_delivery.state == "failed"


def test_redeliver_is_post_only_and_checks_csrf(
    team: Team, failed_delivery: WebhookDelivery
) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(team.bob)
    assert browser.get(_redeliver(team, failed_delivery)).status_code == 405
    assert browser.post(_redeliver(team, failed_delivery)).status_code == 403  # no token
    failed_delivery.refresh_from_db()
    assert failed_delivery.state == "failed"

    page = browser.get(_detail(team, failed_delivery.generation_id)).content.decode()
    token = browser.cookies["csrftoken"].value
    assert 'name="csrfmiddlewaretoken"' in page
    response = browser.post(_redeliver(team, failed_delivery), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    failed_delivery.refresh_from_db()
    assert failed_delivery.state == "pending"


def test_a_delivery_of_another_generation_is_not_found(
    client: Client, team: Team, failed_delivery: WebhookDelivery, hooks: Receiver
) -> None:
    other = _generation(team, hooks.url)
    client.force_login(team.alice)
    url = reverse(
        "generation_webhook_redeliver", args=[team.workspace.slug, other.pk, failed_delivery.pk]
    )
    assert client.post(url).status_code == 404


def test_a_generation_without_a_webhook_shows_no_webhook_part(client: Client, team: Team) -> None:
    generation = _generation(team, "")
    client.force_login(team.alice)
    page = client.get(_detail(team, generation.pk)).content.decode()
    assert "webhooks-heading" not in page


def test_the_page_says_when_nothing_was_sent_yet(
    client: Client, team: Team, hooks: Receiver
) -> None:
    generation = _generation(team, hooks.url)
    client.force_login(team.alice)
    page = client.get(_detail(team, generation.pk)).content.decode()
    assert "the webhook goes out when the video finishes" in page
