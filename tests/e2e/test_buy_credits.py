"""An owner buys a credit pack through (the fake) Stripe Checkout and sees the credits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.test import Client

from billing.models import Purchase, PurchaseStatus
from tests.conftest import make_user
from tests.support.fake_stripe import API_KEY, WEBHOOK_SECRET, FakeStripe


@pytest.fixture
def fake_stripe(settings: Any) -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        settings.STRIPE_SECRET_KEY = API_KEY
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = server.url
        yield server


def _signed_in(page: Any, site_url: str, email: str) -> None:
    client = Client()
    client.force_login(make_user(email))
    cookie = client.cookies[django_settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": site_url}])


@pytest.mark.django_db(transaction=True)
def test_buying_a_pack_through_checkout_adds_the_credits(
    new_page: Callable[..., Any],
    site_url: str,
    artifacts: Path,
    fake_stripe: FakeStripe,
    snap: Callable[[Any, str], None],
) -> None:
    page = new_page()
    _signed_in(page, site_url, "ana@example.com")
    page.goto(site_url + "/")
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Billing").click()
    page.get_by_role("heading", name="Billing", exact=True).wait_for()
    assert page.get_by_test_id("available").inner_text() == "100"  # the trial credits
    page.screenshot(path=artifacts / "1-billing-before.png", full_page=True)

    page.get_by_role("button", name="Buy Creator").click()

    # Checkout (the fake's hosted page) takes the card and sends the browser back.
    page.get_by_text("2,000 credits were added").wait_for()
    assert page.url.startswith(site_url)
    assert page.get_by_test_id("available").inner_text() == "2,100"
    purchases = page.get_by_role("region", name="Purchases")
    assert purchases.get_by_role("cell", name="$18.00").count() == 1
    assert purchases.get_by_text("Paid", exact=True).count() == 1
    snap(page, "billing")

    purchase = Purchase.objects.get()
    assert purchase.status == PurchaseStatus.PAID
    assert [m.subject for m in mail.outbox] == ["Receipt: 2,000 credits for ana's workspace"]

    # Receipts and invoices live in Stripe's Customer Portal.
    page.get_by_role("button", name="Invoices, receipts and payment methods").click()
    page.get_by_role("heading", name="Fake customer portal").wait_for()
    page.screenshot(path=artifacts / "3-customer-portal.png", full_page=True)
    page.get_by_role("link", name="Return to Mochi Studio").click()
    page.get_by_role("heading", name="Billing", exact=True).wait_for()

    # A phone-sized screen still shows everything.
    phone = new_page(width=390, height=844)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(page.url)
    phone.get_by_role("heading", name="Ledger").wait_for()
    phone.screenshot(path=artifacts / "4-billing-phone.png", full_page=True)
