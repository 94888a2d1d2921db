"""billing.stripe_client: what is sent to Stripe, what comes back, and how failures look."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from billing import stripe_client
from tests.support.fake_stripe import WEBHOOK_SECRET, FakeStripe, sign


def _session(fake: FakeStripe, **overrides: Any) -> stripe_client.CheckoutSession:
    customer = stripe_client.create_customer(
        name="Acme", email="a@example.com", workspace_id=7, idempotency_key="customer:7"
    )
    fields: dict[str, Any] = {
        "customer_id": customer,
        "purchase_id": "p-1",
        "product_name": "500 credits",
        "amount_cents": 500,
        "currency": "usd",
        "metadata": {"purchase_id": "p-1", "workspace_id": "7", "credits": "500"},
        "success_url": "http://testserver/ok?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://testserver/cancel",
        "idempotency_key": "checkout:p-1",
        **overrides,
    }
    return stripe_client.create_checkout_session(**fields)


def test_a_checkout_session_carries_metadata_on_the_session_and_the_payment_intent(
    fake_stripe: FakeStripe,
) -> None:
    session = _session(fake_stripe)

    (sent,) = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    metadata = {"purchase_id": "p-1", "workspace_id": "7", "credits": "500"}
    assert sent.params["metadata"] == metadata
    assert sent.params["payment_intent_data"] == {"metadata": metadata}
    assert sent.params["mode"] == "payment"
    assert sent.params["client_reference_id"] == "p-1"
    assert sent.params["line_items"][0]["price_data"]["unit_amount"] == "500"
    assert sent.headers["idempotency-key"] == "checkout:p-1"
    assert sent.headers["stripe-version"] == stripe_client.API_VERSION
    assert session.url == f"{fake_stripe.url}/checkout/{session.id}"
    assert session.status == "open"
    assert session.payment_status == "unpaid"


def test_every_request_is_pinned_to_the_api_version(fake_stripe: FakeStripe) -> None:
    session = _session(fake_stripe)
    stripe_client.retrieve_checkout_session(session.id)
    versions = {r.headers.get("stripe-version") for r in fake_stripe.state.requests}
    assert versions == {"2026-10-28.endive"}


def test_a_retried_create_returns_the_same_session(fake_stripe: FakeStripe) -> None:
    first = _session(fake_stripe)
    again = _session(fake_stripe)
    assert again.id == first.id
    assert len(fake_stripe.state.sessions) == 1


def test_retrieving_a_paid_session_reads_its_payment_and_line_items(
    fake_stripe: FakeStripe,
) -> None:
    session = _session(fake_stripe)
    fake_stripe.complete(session.id)

    paid = stripe_client.retrieve_checkout_session(session.id)

    (sent,) = fake_stripe.requests_to("GET", f"/v1/checkout/sessions/{session.id}")
    assert sent.params == {"expand": ["line_items"]}
    assert paid.payment_status == "paid"
    assert paid.status == "complete"
    assert paid.payment_intent_id.startswith("pi_")
    assert paid.amount_total == 500
    assert paid.currency == "usd"
    assert paid.quantity == 1
    assert paid.metadata["purchase_id"] == "p-1"


def test_charges_disputes_and_payment_intents_are_read_back(fake_stripe: FakeStripe) -> None:
    session = _session(fake_stripe)
    fake_stripe.complete(session.id)
    charge_id = fake_stripe.charge_of(session.id)
    fake_stripe.refund(charge_id, 120)
    dispute = fake_stripe.dispute(charge_id)["data"]["object"]

    charge = stripe_client.retrieve_charge(charge_id)
    assert (charge.amount, charge.amount_refunded, charge.disputed) == (500, 120, True)
    (found,) = stripe_client.list_disputes(charge_id)
    assert (found.id, found.status, found.charge_id) == (dispute["id"], "needs_response", charge_id)
    intent = stripe_client.retrieve_payment_intent(charge.payment_intent_id)
    assert intent.metadata["purchase_id"] == "p-1"
    assert intent.latest_charge_id == charge_id


def test_a_server_error_is_one_retryable_error(fake_stripe: FakeStripe) -> None:
    fake_stripe.fail_next(500, "/v1/charges", times=10)
    with pytest.raises(stripe_client.StripeServiceError) as failure:
        stripe_client.retrieve_charge("ch_x")
    assert failure.value.retryable
    assert failure.value.status == 500


def test_an_unknown_object_is_a_permanent_error(fake_stripe: FakeStripe) -> None:
    with pytest.raises(stripe_client.StripeServiceError) as failure:
        stripe_client.retrieve_charge("ch_missing")
    assert not failure.value.retryable
    assert failure.value.status == 404
    assert "No such charges" in failure.value.message


def test_an_unreachable_stripe_is_retryable(settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    with pytest.raises(stripe_client.StripeServiceError) as failure:
        stripe_client.retrieve_charge("ch_x")
    assert failure.value.retryable


def test_without_a_secret_key_nothing_is_called(settings: Any) -> None:
    settings.STRIPE_SECRET_KEY = ""
    assert not stripe_client.configured()
    with pytest.raises(stripe_client.NotConfigured):
        stripe_client.retrieve_charge("ch_x")


def test_hosted_pages_live_on_stripe_unless_the_api_is_overridden(settings: Any) -> None:
    settings.STRIPE_API_BASE = "https://api.stripe.com"
    assert stripe_client.redirect_origins() == [
        "https://checkout.stripe.com",
        "https://billing.stripe.com",
    ]
    settings.STRIPE_API_BASE = "http://127.0.0.1:4242"
    assert stripe_client.redirect_origins() == ["http://127.0.0.1:4242"]


def _event() -> bytes:
    return json.dumps(
        {"id": "evt_1", "object": "event", "type": "x.y", "data": {"object": {"id": "x"}}}
    ).encode()


def test_a_webhook_signed_with_stripes_scheme_is_accepted(settings: Any) -> None:
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = _event()
    assert stripe_client.verify_webhook(body, sign(body))["id"] == "evt_1"
    # Our test signer agrees with the library's own.
    import stripe

    now = int(time.time())
    assert sign(body, timestamp=now) == stripe.WebhookSignature.generate_signature_header(
        body.decode(), WEBHOOK_SECRET, now
    )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "t=abc,v1=zz",
        "v1=deadbeef",
        sign(_event(), "whsec_other"),
        sign(_event(), timestamp=int(time.time()) - 301),
    ],
    ids=["missing", "empty", "garbage", "no-timestamp", "wrong-secret", "too-old"],
)
def test_a_webhook_that_cannot_be_trusted_is_refused(settings: Any, header: str | None) -> None:
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    with pytest.raises(stripe_client.InvalidWebhook):
        stripe_client.verify_webhook(_event(), header)
