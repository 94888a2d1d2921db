"""Buying a pack: the checkout view, the success and cancel pages, the Customer Portal."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from billing import wallets
from billing.models import Code, Purchase, PurchaseStatus, StripeCustomer, Transfer
from tests.billing.conftest import buy
from tests.conftest import Commit, Team
from tests.support.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_buying_records_a_pending_purchase_and_sends_the_customer_to_checkout(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.erin)  # an admin
    response = client.post(f"/w/{team.workspace.slug}/billing/checkout/", {"pack": "creator"})

    assert response.status_code == 303
    session = fake_stripe.only_session()
    assert response["Location"] == session["url"]
    purchase = Purchase.objects.get()
    assert (purchase.status, purchase.credits, purchase.amount_cents, purchase.currency) == (
        PurchaseStatus.PENDING,
        2000,
        1800,
        "usd",
    )
    assert purchase.workspace == team.workspace
    assert purchase.created_by == team.erin
    assert purchase.checkout_session_id == session["id"]
    assert session["client_reference_id"] == str(purchase.pk)
    assert session["amount_total"] == 1800
    assert session["success_url"] == (
        f"http://testserver/w/{team.workspace.slug}/billing/success/"
        "?session_id={CHECKOUT_SESSION_ID}"
    )
    (sent,) = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    expected = {
        "purchase_id": str(purchase.pk),
        "workspace_id": str(team.workspace.pk),
        "pack": "creator",
        "credits": "2000",
    }
    assert sent.params["metadata"] == expected
    assert sent.params["payment_intent_data"]["metadata"] == expected
    assert sent.params["customer"] == StripeCustomer.objects.get().customer_id
    assert sent.headers["idempotency-key"] == f"checkout:{purchase.pk}"
    assert sent.headers["stripe-version"] == "2026-10-28.endive"
    assert not Transfer.objects.filter(code=Code.PURCHASE).exists()


def test_the_workspace_customer_is_created_once_and_reused(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    buy(client, team.workspace)
    client.force_login(team.erin)
    buy(client, team.workspace, "pro")

    (created,) = fake_stripe.requests_to("POST", "/v1/customers")
    assert created.params["metadata"] == {"workspace_id": str(team.workspace.pk)}
    assert created.headers["idempotency-key"].startswith(f"customer:workspace:{team.workspace.pk}")
    customer = StripeCustomer.objects.get(workspace=team.workspace)
    sessions = fake_stripe.requests_to("POST", "/v1/checkout/sessions")
    assert [s.params["customer"] for s in sessions] == [customer.customer_id] * 2


def test_an_unknown_pack_changes_nothing(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    response = client.post(
        f"/w/{team.workspace.slug}/billing/checkout/", {"pack": "platinum"}, follow=True
    )
    assert "That credit pack does not exist" in " ".join(_messages(response))
    assert not Purchase.objects.exists()
    assert fake_stripe.state.requests == []


def test_a_buyer_must_have_confirmed_their_email(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    EmailAddress.objects.filter(user=team.alice).update(verified=False)
    client.force_login(team.alice)
    page = client.get(f"/w/{team.workspace.slug}/billing/").content.decode()
    assert "Confirm your email address before buying credits" in page

    response = client.post(
        f"/w/{team.workspace.slug}/billing/checkout/", {"pack": "starter"}, follow=True
    )
    assert "Confirm your email address alice@example.com" in " ".join(_messages(response))
    assert not Purchase.objects.exists()
    assert fake_stripe.state.requests == []


def test_without_stripe_configured_the_packs_cannot_be_bought(
    client: Client, team: Team, settings: Any
) -> None:
    settings.STRIPE_SECRET_KEY = ""
    client.force_login(team.alice)
    page = client.get(f"/w/{team.workspace.slug}/billing/").content.decode()
    assert "Card payments are not set up on this server yet" in page
    response = client.post(
        f"/w/{team.workspace.slug}/billing/checkout/", {"pack": "starter"}, follow=True
    )
    assert "not set up" in " ".join(_messages(response))
    assert not Purchase.objects.exists()


def test_when_stripe_fails_nothing_is_charged_and_the_purchase_says_why(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next(400, "/v1/checkout/sessions")
    client.force_login(team.alice)
    response = client.post(
        f"/w/{team.workspace.slug}/billing/checkout/", {"pack": "starter"}, follow=True
    )
    assert "nothing was charged" in " ".join(_messages(response))
    purchase = Purchase.objects.get()
    assert purchase.status == PurchaseStatus.EXPIRED
    assert "Injected fault" in purchase.last_error
    assert purchase.checkout_session_id is None


def test_the_success_page_grants_the_credits_and_emails_a_receipt(
    client: Client, team: Team, fake_stripe: FakeStripe, commit: Commit
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace, "creator")
    fake_stripe.complete(session_id)

    with commit():
        response = client.get(
            f"/w/{team.workspace.slug}/billing/success/?session_id={session_id}", follow=True
        )

    assert "2,000 credits were added to Acme Films" in " ".join(_messages(response))
    assert wallets.balance(team.workspace).available == 2000
    purchase = Purchase.objects.get()
    assert purchase.status == PurchaseStatus.PAID
    assert purchase.payment_intent_id.startswith("pi_")
    grant = Transfer.objects.get(code=Code.PURCHASE)
    assert grant.reference == f"purchase:{purchase.pk}"
    (receipt,) = mail.outbox
    assert receipt.to == ["alice@example.com"]
    assert receipt.subject == "Receipt: 2,000 credits for Acme Films"
    assert "$18.00" in receipt.body
    assert str(purchase.pk) in receipt.body
    assert f"/w/{team.workspace.slug}/billing/" in receipt.body
    html = receipt.alternatives[0].content  # type: ignore[attr-defined]
    assert "2,000 credits" in html

    # Coming back again (a reload) grants nothing more and sends no second receipt.
    with commit():
        client.get(f"/w/{team.workspace.slug}/billing/success/?session_id={session_id}")
    assert wallets.balance(team.workspace).available == 2000
    assert len(mail.outbox) == 1


def test_the_success_page_before_the_bank_confirms_says_so(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    fake_stripe.complete(session_id, delayed=True)
    response = client.get(
        f"/w/{team.workspace.slug}/billing/success/?session_id={session_id}", follow=True
    )
    assert "Your bank is confirming the payment" in " ".join(_messages(response))
    assert Purchase.objects.get().status == PurchaseStatus.AWAITING_PAYMENT
    assert wallets.balance(team.workspace).available == 0


def test_the_success_page_survives_stripe_being_down(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    fake_stripe.complete(session_id)
    fake_stripe.fail_next(503, "/v1/checkout/sessions", times=10)
    response = client.get(
        f"/w/{team.workspace.slug}/billing/success/?session_id={session_id}", follow=True
    )
    assert response.status_code == 200
    assert "being confirmed" in " ".join(_messages(response))
    assert wallets.balance(team.workspace).available == 0


def test_another_workspaces_session_grants_nothing_here(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.dave)
    dave_workspace = team.dave.personal_workspace
    session_id = buy(client, dave_workspace)
    fake_stripe.complete(session_id)

    client.force_login(team.alice)
    response = client.get(
        f"/w/{team.workspace.slug}/billing/success/?session_id={session_id}", follow=True
    )
    assert "could not find that checkout" in " ".join(_messages(response))
    assert wallets.balance(team.workspace).available == 0
    assert not fake_stripe.requests_to("GET", f"/v1/checkout/sessions/{session_id}")


def test_the_cancel_page_says_nothing_was_charged(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    buy(client, team.workspace)
    purchase = Purchase.objects.get()
    response = client.get(
        f"/w/{team.workspace.slug}/billing/cancel/?purchase={purchase.pk}", follow=True
    )
    assert "Checkout canceled: nothing was charged." in _messages(response)
    assert wallets.balance(team.workspace).available == 0


def test_the_customer_portal_opens_for_a_workspace_that_bought(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    page = client.get(f"/w/{team.workspace.slug}/billing/").content.decode()
    assert "Invoices, receipts and payment methods" not in page
    response = client.post(f"/w/{team.workspace.slug}/billing/portal/", follow=True)
    assert "has not bought credits yet" in " ".join(_messages(response))

    buy(client, team.workspace)
    page = client.get(f"/w/{team.workspace.slug}/billing/").content.decode()
    assert "Invoices, receipts and payment methods" in page
    response = client.post(f"/w/{team.workspace.slug}/billing/portal/")
    assert response.status_code == 303
    (sent,) = fake_stripe.requests_to("POST", "/v1/billing_portal/sessions")
    assert sent.params == {
        "customer": StripeCustomer.objects.get().customer_id,
        "return_url": f"http://testserver/w/{team.workspace.slug}/billing/",
    }
    assert response["Location"].startswith(f"{fake_stripe.url}/portal/")
