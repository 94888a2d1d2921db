"""Whatever order and however often Stripe delivers a purchase's events, the wallet ends
where Stripe's final state says it should, and the ledger audit stays clean."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Workspace
from billing import services, wallets
from billing.audit import run_audit
from billing.models import Purchase, PurchaseStatus, StripeEvent
from tests.billing.conftest import deliver
from tests.conftest import Team
from tests.support.fake_stripe import FakeStripe
from tests.support.queue import run_tasks

pytestmark = pytest.mark.django_db

PACKS = {"starter": (500, 500), "creator": (2000, 1800)}
_names = itertools.count(1)


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    """What happened at Stripe, in Stripe's own order."""
    pack = draw(st.sampled_from(sorted(PACKS)))
    price = PACKS[pack][1]
    delayed = draw(st.booleans())
    paid = not delayed or draw(st.booleans())
    history: dict[str, Any] = {"pack": pack, "delayed": delayed, "paid": paid}
    if not paid:
        return history
    partial = draw(st.lists(st.integers(1, price // 3), max_size=2))
    history["partial_refunds"] = partial
    history["full_refund"] = draw(st.booleans())
    # Stripe refuses refunds once a charge is disputed: disputes come last.
    history["dispute"] = draw(st.sampled_from([None, "open", "won", "lost"]))
    return history


def _expected(history: dict[str, Any]) -> tuple[int, str]:
    """(available credits, purchase status) implied by Stripe's final state."""
    credits, price = PACKS[history["pack"]]
    if not history["paid"]:
        return 0, PurchaseStatus.FAILED
    refunded = price if history["full_refund"] else sum(history["partial_refunds"])
    refund_credits = credits * refunded // price
    standing = history["dispute"] in ("open", "lost")
    taken = refund_credits + (credits - refund_credits if standing else 0)
    return credits - taken, PurchaseStatus.PAID


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), data=st.data())
def test_any_order_and_any_repeats_of_the_events_converge(
    team: Team, fake_stripe: FakeStripe, history: dict[str, Any], data: st.DataObject
) -> None:
    workspace = Workspace.objects.create_team(name=f"Orderings {next(_names)}", owner=team.alice)
    checkout_url = services.start_checkout(
        workspace=workspace, user=team.alice, pack_id=history["pack"]
    )
    session_id = checkout_url.rsplit("/", 1)[1]

    events = [fake_stripe.complete(session_id, delayed=history["delayed"])]
    if history["delayed"]:
        succeed = fake_stripe.async_succeed if history["paid"] else fake_stripe.async_fail
        events.append(succeed(session_id))
    if history["paid"]:
        charge = fake_stripe.charge_of(session_id)
        events += [fake_stripe.refund(charge, amount) for amount in history["partial_refunds"]]
        if history["full_refund"]:
            events.append(fake_stripe.refund(charge))
        if history["dispute"]:
            created = fake_stripe.dispute(charge)
            events.append(created)
            if history["dispute"] != "open":
                dispute_id = created["data"]["object"]["id"]
                events.append(
                    fake_stripe.close_dispute(dispute_id, won=history["dispute"] == "won")
                )

    repeats = data.draw(st.lists(st.sampled_from(events), max_size=4), label="repeats")
    deliveries = data.draw(st.permutations(events + repeats), label="deliveries")
    process_each = data.draw(st.booleans(), label="process after each delivery")
    client = Client()
    for event in deliveries:
        assert deliver(client, event).status_code == 200
        if process_each:
            run_tasks()
    run_tasks()

    available, status = _expected(history)
    balance = wallets.balance(workspace)
    assert (balance.available, balance.held, balance.owed) == (available, 0, 0), history
    purchase = Purchase.objects.get(workspace=workspace)
    assert purchase.status == status
    if status == PurchaseStatus.PAID:
        assert purchase.credits - purchase.credits_clawed_back == available
    assert not StripeEvent.objects.exclude(error="").exists()
    report = run_audit(record=False)
    assert report.ok, report.violations
