"""Credits are granted exactly once per payment, whatever Stripe delivers and whoever asks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.sites import site
from django.core import mail
from django.test import Client
from django.utils import timezone

from billing import services, tasks, wallets
from billing.models import Code, Purchase, PurchaseStatus, StripeEvent, Transfer
from tests.billing.conftest import buy, deliver
from tests.conftest import Commit, Team
from tests.support.concurrency import run_together
from tests.support.fake_stripe import FakeStripe
from tests.support.queue import run_tasks

pytestmark = pytest.mark.django_db


def _grants(team: Team) -> list[Transfer]:
    return list(
        Transfer.objects.filter(code=Code.PURCHASE, credit_account__workspace=team.workspace)
    )


def test_one_completed_event_delivered_five_times_plus_the_success_page_grants_once(
    client: Client, team: Team, fake_stripe: FakeStripe, commit: Commit
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    event = fake_stripe.complete(session_id)

    # run_tasks runs each task's on-commit callbacks (the receipt) as a commit would.
    assert deliver(client, event).status_code == 200
    run_tasks()
    for _ in range(4):
        assert deliver(client, event).status_code == 200
    with commit():
        client.get(f"/w/{team.workspace.slug}/billing/success/?session_id={session_id}")
    run_tasks()

    assert len(_grants(team)) == 1
    assert wallets.balance(team.workspace).available == 500
    assert StripeEvent.objects.count() == 1
    assert len(mail.outbox) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_and_the_success_page_grant_once(
    team: Team, fake_stripe: FakeStripe
) -> None:
    buyer = Client()
    buyer.force_login(team.alice)
    session_id = buy(buyer, team.workspace)
    event = fake_stripe.complete(session_id)

    def post() -> int:
        return deliver(Client(), event).status_code

    # Two deliveries at the same moment: one row, one queued task.
    assert run_together([post, post]) == [200, 200]
    assert [deliver(Client(), event).status_code for _ in range(3)] == [200, 200, 200]
    assert StripeEvent.objects.count() == 1

    # The worker (twice, as a redelivered task would) and the success page, at once.
    row = StripeEvent.objects.get()

    def success_page() -> Any:
        return services.fulfil_checkout(session_id, workspace=team.workspace)

    results = run_together(
        [
            lambda: tasks.process_stripe_event(row.pk),
            lambda: tasks.process_stripe_event(row.pk),
            success_page,
            success_page,
        ]
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    run_tasks()

    assert len(_grants(team)) == 1
    assert wallets.balance(team.workspace).available == 500
    purchase = Purchase.objects.get()
    assert purchase.status == PurchaseStatus.PAID
    assert StripeEvent.objects.get().processed_at is not None


def test_a_delayed_payment_is_granted_when_it_succeeds(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    deliver(client, fake_stripe.complete(session_id, delayed=True))
    run_tasks()
    assert Purchase.objects.get().status == PurchaseStatus.AWAITING_PAYMENT
    assert wallets.balance(team.workspace).available == 0

    deliver(client, fake_stripe.async_succeed(session_id))
    run_tasks()
    assert Purchase.objects.get().status == PurchaseStatus.PAID
    assert wallets.balance(team.workspace).available == 500


def test_the_success_event_before_the_completed_event_grants_once(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    completed = fake_stripe.complete(session_id, delayed=True)
    succeeded = fake_stripe.async_succeed(session_id)
    deliver(client, succeeded)
    deliver(client, completed)
    run_tasks()
    assert len(_grants(team)) == 1
    assert Purchase.objects.get().status == PurchaseStatus.PAID


def test_a_failed_delayed_payment_grants_nothing(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    failed_first = fake_stripe.complete(session_id, delayed=True)
    deliver(client, fake_stripe.async_fail(session_id))
    deliver(client, failed_first)  # the older news arrives last
    run_tasks()
    assert Purchase.objects.get().status == PurchaseStatus.FAILED
    assert wallets.balance(team.workspace).available == 0
    page = client.get(f"/w/{team.workspace.slug}/billing/").content.decode()
    assert "Payment failed" in page


def test_an_abandoned_checkout_expires(client: Client, team: Team, fake_stripe: FakeStripe) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    deliver(client, fake_stripe.expire(session_id))
    run_tasks()
    assert Purchase.objects.get().status == PurchaseStatus.EXPIRED


def test_an_expiry_never_undoes_a_payment(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    deliver(client, fake_stripe.complete(session_id))
    run_tasks()
    services.mark_expired(session_id)
    assert Purchase.objects.get().status == PurchaseStatus.PAID


def test_a_session_that_disagrees_with_the_purchase_grants_nothing(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    with fake_stripe.lock:
        fake_stripe.state.sessions[session_id]["amount_total"] = 1  # not what the pack costs
    deliver(client, fake_stripe.complete(session_id))
    run_tasks()
    event = StripeEvent.objects.get()
    assert event.processed_at is None
    assert "PurchaseMismatch" in event.error
    assert event.next_attempt_at is None  # trying again cannot help: the operator looks
    assert wallets.balance(team.workspace).available == 0


def test_a_checkout_that_is_not_ours_is_ignored(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    Purchase.objects.all().delete()
    deliver(client, fake_stripe.complete(session_id))
    run_tasks()
    assert StripeEvent.objects.get().outcome == "ignored: not a Mochi Studio checkout"


def test_a_failed_handler_keeps_the_event_and_the_sweep_retries_it(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    event = fake_stripe.complete(session_id)
    fake_stripe.fail_next(503, "/v1/checkout/sessions", times=3)  # each try retries twice
    deliver(client, event)
    run_tasks()

    row = StripeEvent.objects.get()
    assert row.processed_at is None
    assert row.attempts == 1
    assert "503" in row.error or "Injected fault" in row.error
    assert row.next_attempt_at is not None
    assert wallets.balance(team.workspace).available == 0

    # Not due yet: the sweep leaves it.
    assert tasks.retry_stripe_events() == 0
    StripeEvent.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert tasks.retry_stripe_events() == 1
    run_tasks()
    row.refresh_from_db()
    assert row.processed_at is not None
    assert row.error == ""
    assert row.attempts == 2
    assert wallets.balance(team.workspace).available == 500


def test_an_event_whose_task_was_lost_is_picked_up_by_the_sweep(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    from django_q.models import OrmQ

    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    deliver(client, fake_stripe.complete(session_id))
    OrmQ.objects.all().delete()  # the queue lost it
    assert tasks.retry_stripe_events() == 0  # within the safety net's delay
    StripeEvent.objects.update(next_attempt_at=timezone.now())
    assert tasks.retry_stripe_events() == 1
    run_tasks()
    assert wallets.balance(team.workspace).available == 500


def test_an_event_held_by_another_worker_is_left_alone(
    client: Client, team: Team, fake_stripe: FakeStripe
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    deliver(client, fake_stripe.complete(session_id))
    StripeEvent.objects.update(locked_until=timezone.now() + timedelta(minutes=1))
    assert tasks.process_stripe_event(StripeEvent.objects.get().pk) is None
    assert wallets.balance(team.workspace).available == 0


def test_the_operator_processes_a_failed_event_again_from_the_admin(
    client: Client, team: Team, fake_stripe: FakeStripe, settings: Any
) -> None:
    client.force_login(team.alice)
    session_id = buy(client, team.workspace)
    event = fake_stripe.complete(session_id)
    fake_stripe.fail_next(404, "/v1/checkout/sessions")  # permanent: not retried by itself
    deliver(client, event)
    run_tasks()
    row = StripeEvent.objects.get()
    assert row.error
    assert row.next_attempt_at is None

    staff = team.dave
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    listing = client.get("/admin/billing/stripeevent/?q=checkout.session")
    assert event["id"] in listing.content.decode()
    response = client.post(
        "/admin/billing/stripeevent/",
        {"action": "process_again", "_selected_action": [row.pk]},
        follow=True,
    )
    assert "Queued 1 event(s)" in response.content.decode()
    run_tasks()
    row.refresh_from_db()
    assert row.processed_at is not None
    assert wallets.balance(team.workspace).available == 500
    assert site.is_registered(StripeEvent)
