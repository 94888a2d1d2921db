"""The operator finds purchases, customers and events in the admin by their Stripe ids."""

from __future__ import annotations

import pytest
from django.test import Client

from billing.models import Purchase, StripeCustomer
from tests.billing.conftest import buy
from tests.conftest import Team
from tests.support.fake_stripe import FakeStripe

pytestmark = pytest.mark.django_db


def test_purchases_and_customers_are_searchable_and_read_only(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    purchase = Purchase.objects.get()
    customer = StripeCustomer.objects.get()
    team.dave.is_staff = team.dave.is_superuser = True
    team.dave.save()
    client.force_login(team.dave)

    found = client.get(f"/admin/billing/purchase/?q={session_id}")
    assert found.context["cl"].result_count == 1
    assert "Acme Films" in found.content.decode()
    assert client.get("/admin/billing/purchase/?q=cs_nobody").context["cl"].result_count == 0
    detail = client.get(f"/admin/billing/purchase/{purchase.pk}/change/").content.decode()
    assert 'name="_save"' not in detail

    found = client.get("/admin/billing/stripecustomer/?q=acme-films")
    assert found.context["cl"].result_count == 1
    assert customer.customer_id in found.content.decode()
    assert client.get("/admin/billing/stripeevent/?q=evt").status_code == 200
