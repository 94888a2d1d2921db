"""Refunds and disputes take credits back in proportion, once, in any order of events."""

from __future__ import annotations

import pytest
from django.test import Client

from billing import wallets
from billing.audit import run_audit
from billing.models import Code, Purchase, StripeEvent, Transfer
from tests.billing.conftest import buy, deliver
from tests.conftest import Team
from tests.support.fake_stripe import FakeStripe
from tests.support.queue import run_tasks

pytestmark = pytest.mark.django_db


def _paid(client: Client, team: Team, fake: FakeStripe, pack: str = "starter") -> str:
    """alice buys `pack` and the payment is processed; returns the charge id."""
    client.force_login(team.alice)
    session_id = buy(client, team.workspace, pack)
    deliver(client, fake.complete(session_id))
    run_tasks()
    return fake.charge_of(session_id)


def _process(client: Client, *events: dict[str, object]) -> None:
    for event in events:
        assert deliver(client, event).status_code == 200
    run_tasks()
    failed = StripeEvent.objects.exclude(error="")
    assert not failed.exists(), [e.error for e in failed]


def _available(team: Team) -> int:
    return wallets.balance(team.workspace).available


def test_a_partial_refund_takes_back_credits_in_proportion(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    charge = _paid(client, team, fake_stripe, "creator")  # 2,000 credits for $18.00
    _process(client, fake_stripe.refund(charge, 450))  # a quarter of the money
    assert _available(team) == 1500
    purchase = Purchase.objects.get()
    assert (purchase.refunded_cents, purchase.credits_refunded) == (450, 500)
    assert purchase.label == "Partly refunded"
    (refund,) = Transfer.objects.filter(code=Code.REFUND)
    assert refund.amount == 500


def test_refunds_are_cumulative_and_a_late_older_event_changes_nothing(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    charge = _paid(client, team, fake_stripe)  # 500 credits for $5.00
    first = fake_stripe.refund(charge, 100)
    second = fake_stripe.refund(charge, 150)
    _process(client, second, first, second)  # newest news first, then the older, then again
    assert _available(team) == 250
    assert Purchase.objects.get().credits_refunded == 250
    assert sum(t.amount for t in Transfer.objects.filter(code=Code.REFUND)) == 250

    _process(client, fake_stripe.refund(charge))  # the rest
    assert _available(team) == 0
    assert Purchase.objects.get().label == "Refunded"


def test_a_refund_rounds_in_the_customers_favour(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    charge = _paid(client, team, fake_stripe, "creator")  # 2,000 credits for 1,800 cents
    _process(client, fake_stripe.refund(charge, 1))  # 1.11 credits' worth
    assert Purchase.objects.get().credits_refunded == 1
    _process(client, fake_stripe.refund(charge))
    assert Purchase.objects.get().credits_refunded == 2000


def test_a_full_refund_after_80_percent_was_spent_suspends_the_workspace(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    charge = _paid(client, team, fake_stripe)  # 500 credits
    wallets.hold(team.workspace, 400, key="generation:spent", member_id=team.bob.pk)
    wallets.capture(wallets.hold_id("generation:spent"), 400, key="generation:spent")
    assert _available(team) == 100

    _process(client, fake_stripe.refund(charge))

    balance = wallets.balance(team.workspace)
    assert balance == wallets.Balance(available=0, held=0, owed=400)
    assert balance.suspended
    takes = {t.code: t.amount for t in Transfer.objects.filter(reference__contains=charge)}
    assert takes == {Code.REFUND: 100, Code.SHORTFALL: 400}
    with pytest.raises(wallets.WalletSuspended):
        wallets.hold(team.workspace, 1, key="generation:next")
    assert run_audit(record=False).ok

    page = client.get(f"/w/{team.workspace.slug}/billing/").content.decode()
    assert "Spending is paused." in page
    assert "400 credits taken back after a refund or" in page

    # The next pack settles the debt first.
    _paid(client, team, fake_stripe)
    assert wallets.balance(team.workspace) == wallets.Balance(available=100, held=0, owed=0)


def test_a_dispute_takes_back_what_refunds_left_and_a_won_dispute_returns_it(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    charge = _paid(client, team, fake_stripe)  # 500 credits for $5.00
    _process(client, fake_stripe.refund(charge, 100))  # 100 credits back
    created = fake_stripe.dispute(charge)
    _process(client, created)
    assert _available(team) == 0
    purchase = Purchase.objects.get()
    assert (purchase.credits_refunded, purchase.credits_disputed) == (100, 400)
    assert purchase.label == "Disputed"

    _process(client, fake_stripe.close_dispute(created["data"]["object"]["id"], won=True))
    assert _available(team) == 400
    purchase.refresh_from_db()
    assert purchase.credits_disputed == 0
    assert purchase.dispute_status == "won"
    assert Transfer.objects.filter(code=Code.DISPUTE_WON).exists()


def test_a_lost_dispute_keeps_the_credits(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    charge = _paid(client, team, fake_stripe)
    created = fake_stripe.dispute(charge)
    _process(client, created, fake_stripe.close_dispute(created["data"]["object"]["id"], won=False))
    assert _available(team) == 0
    assert Purchase.objects.get().label == "Dispute lost"


def test_a_won_dispute_reported_before_its_creation_takes_nothing(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    charge = _paid(client, team, fake_stripe)
    created = fake_stripe.dispute(charge)
    closed = fake_stripe.close_dispute(created["data"]["object"]["id"], won=True)
    _process(client, closed, created, created)
    assert _available(team) == 500
    assert not Transfer.objects.filter(code=Code.DISPUTE).exists()


def test_a_refund_reported_before_the_payment_grants_first(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    completed = fake_stripe.complete(session_id)
    refunded = fake_stripe.refund(fake_stripe.charge_of(session_id), 200)
    _process(client, refunded, completed)
    assert _available(team) == 300
    assert wallets.balance(team.workspace).owed == 0
    assert Transfer.objects.filter(code=Code.PURCHASE).count() == 1


def test_a_refund_of_a_charge_that_is_not_ours_is_ignored(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    charge = _paid(client, team, fake_stripe)
    with fake_stripe.lock:
        intent = fake_stripe.state.charges[charge]["payment_intent"]
        fake_stripe.state.intents[intent]["metadata"] = {}
    Purchase.objects.update(payment_intent_id="")
    _process(client, fake_stripe.refund(charge))
    assert StripeEvent.objects.get(type="charge.refunded").outcome.startswith("ignored")
    assert _available(team) == 500
