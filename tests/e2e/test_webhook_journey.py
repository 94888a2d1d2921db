"""A customer's app missed a webhook: a member sees the failed attempt on the generation's
page, presses Redeliver, and the app receives the same message again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from accounts.models import Workspace
from billing import wallets
from generations import services
from generations.fake_segmind import FakeSegmind
from generations.models import Generation, WebhookDelivery
from generations.params import parse_params
from tests.conftest import make_user
from tests.e2e.flows import PASSWORD, sign_in
from tests.support.webhook_receiver import Answer, Receiver

pytestmark = pytest.mark.django_db(transaction=True)


def _until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_member_redelivers_a_missed_webhook_from_the_page(
    new_page: Callable[..., Any],
    site_url: str,
    pipeline: FakeSegmind,
    settings: Any,
    snap: Callable[[Any, str], None],
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_IPS = True
    owner = make_user("ivy@example.com", password=PASSWORD)
    workspace = Workspace.objects.get(personal_for=owner)
    wallets.grant(workspace, 100, key="funding")
    with Receiver() as app:
        # The app is down: it answers 503 and asks to be left alone for two hours.
        app.answers = [Answer(status=503, headers={"Retry-After": "7200"})]
        generation = services.submit_generation(
            workspace=workspace,
            params=parse_params({"prompt": "a lighthouse in fog", "frames": 13, "steps": 10}),
            user=owner,
            membership=workspace.memberships.get(user=owner),
            webhook_url=app.url,
        )
        _until(lambda: WebhookDelivery.objects.filter(generation=generation, attempts=1).exists())
        _until(lambda: bool(WebhookDelivery.objects.get(generation=generation).log))

        page = new_page()
        sign_in(page, site_url, owner.email)
        page.goto(f"{site_url}/w/{workspace.slug}/generations/{generation.pk}/")
        section = page.locator("section.webhooks")
        section.get_by_text("HTTP 503").wait_for()
        section.get_by_text("Retrying", exact=True).wait_for()  # a retry is scheduled
        snap(page, "webhook-failed-attempt")

        section.get_by_role("button", name="Redeliver").click()
        page.get_by_text("The webhook is being sent again.").wait_for()
        _until(lambda: len(app.requests) == 2)
        _until(lambda: WebhookDelivery.objects.get(generation=generation).state == "delivered")
        page.reload()
        section.get_by_text("Delivered", exact=True).wait_for()
        section.get_by_text("HTTP 200").wait_for()
        section.get_by_text("1 (redelivered)").wait_for()
        snap(page, "webhook-redelivered")

    first, again = app.requests
    assert again.body == first.body
    secret = Workspace.objects.get(pk=workspace.pk).webhook_secret
    verified = Webhook(secret).verify(again.body, again.headers)
    assert verified["type"] == "generation.succeeded"
    assert verified["data"]["id"] == str(generation.pk)
    assert Generation.objects.get(pk=generation.pk).status == "succeeded"
