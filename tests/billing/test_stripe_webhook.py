"""POST /stripe/webhook/: verify on the raw body, store once, queue, answer fast."""

from __future__ import annotations

import json
import time
from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client
from django_q.models import OrmQ

from billing.models import StripeEvent
from tests.billing.conftest import deliver
from tests.support.fake_stripe import WEBHOOK_SECRET, FakeStripe, sign
from tests.support.queue import pending_tasks, run_tasks

pytestmark = pytest.mark.django_db


def _event(type_: str = "customer.created", event_id: str = "evt_test_1") -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "type": type_,
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }


def _nothing_stored() -> bool:
    return not StripeEvent.objects.exists() and not OrmQ.objects.exists()


def test_a_valid_signature_is_recorded_and_queued(client: Client, fake_stripe: FakeStripe) -> None:
    response = deliver(client, _event())
    assert response.status_code == 200
    event = StripeEvent.objects.get()
    assert (event.event_id, event.type, event.livemode) == ("evt_test_1", "customer.created", False)
    assert event.payload["data"]["object"]["id"] == "cus_1"
    assert event.processed_at is None
    assert pending_tasks() == ["billing.tasks.process_stripe_event"]
    assert event.task_id


def test_a_tampered_body_is_refused_and_nothing_is_stored(
    client: Client, fake_stripe: FakeStripe
) -> None:
    body = json.dumps(_event()).encode()
    signature = sign(body)
    tampered = body.replace(b"customer.created", b"charge.refunded")
    response = deliver(client, tampered, signature=signature)
    assert response.status_code == 400
    assert _nothing_stored()


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("wrong secret", {"secret": "whsec_someone_else"}),
        ("missing header", {"signature": ""}),
        ("301 seconds old", {"timestamp": int(time.time()) - 301}),
        ("malformed header", {"signature": "t=yesterday,v1=abc"}),
    ],
)
def test_an_untrusted_delivery_gets_400_and_stores_nothing(
    client: Client, fake_stripe: FakeStripe, kind: str, options: dict[str, Any]
) -> None:
    response = deliver(client, _event(), **options)
    assert response.status_code == 400, kind
    assert _nothing_stored()


def test_a_delivery_within_the_tolerance_is_accepted(
    client: Client, fake_stripe: FakeStripe
) -> None:
    response = deliver(client, _event(), timestamp=int(time.time()) - 290)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"id": "evt_1", "object": "charge"}', b'{"object": "event"}'],
    ids=["malformed", "array", "not-an-event", "no-id"],
)
def test_a_signed_body_that_is_not_an_event_is_refused(
    client: Client, fake_stripe: FakeStripe, body: bytes
) -> None:
    response = deliver(client, body)
    assert response.status_code == 400
    assert _nothing_stored()


def test_a_redelivery_answers_200_and_does_nothing(client: Client, fake_stripe: FakeStripe) -> None:
    assert deliver(client, _event()).content == b"recorded\n"
    for _ in range(3):
        response = deliver(client, _event())
        assert response.status_code == 200
        assert response.content == b"already recorded\n"
    assert StripeEvent.objects.count() == 1
    assert OrmQ.objects.count() == 1


def test_without_a_webhook_secret_every_delivery_is_refused(client: Client, settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = deliver(client, _event(), secret=WEBHOOK_SECRET)
    assert response.status_code == 400
    assert _nothing_stored()


def test_only_post_is_accepted(client: Client, fake_stripe: FakeStripe) -> None:
    assert client.get("/stripe/webhook/").status_code == 405


def test_a_database_failure_answers_500_so_stripe_delivers_again(
    fake_stripe: FakeStripe,
) -> None:
    client = Client(raise_request_exception=False)
    with mock.patch.object(
        StripeEvent.objects, "create", side_effect=OperationalError("database is down")
    ):
        response = deliver(client, _event())
    assert response.status_code == 500
    assert _nothing_stored()


def test_the_answer_does_not_wait_for_processing(client: Client, fake_stripe: FakeStripe) -> None:
    # Processing would call Stripe; the webhook only stores and queues.
    fake_stripe.fail_next(500, "/v1/", times=100)
    started = time.monotonic()
    response = deliver(client, _event("checkout.session.completed"))
    assert response.status_code == 200
    assert time.monotonic() - started < 0.5
    assert fake_stripe.state.requests == []


def test_an_unknown_event_type_is_recorded_and_ignored(
    client: Client, fake_stripe: FakeStripe
) -> None:
    deliver(client, _event("invoice.paid"))
    run_tasks()
    event = StripeEvent.objects.get()
    assert event.processed_at is not None
    assert event.outcome.startswith("ignored")
    assert event.error == ""
    assert fake_stripe.state.requests == []


def test_an_event_of_the_other_mode_is_ignored(client: Client, fake_stripe: FakeStripe) -> None:
    deliver(client, {**_event("checkout.session.completed"), "livemode": True})
    run_tasks()
    event = StripeEvent.objects.get()
    assert "mode does not match" in event.outcome
    assert fake_stripe.state.requests == []
