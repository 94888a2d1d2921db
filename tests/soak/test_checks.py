"""The soak test's invariants catch what they promise to catch: each check is shown a
world where its invariant holds and one where it is broken."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from accounts.models import User
from billing.models import Purchase
from generations import storage
from generations.models import STATUS_OF_PHASE, Generation, Phase
from soak import checks
from tests.conftest import make_user
from tests.generations.helpers import finished, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice() -> User:
    return make_user("alice@example.com")


def test_charges_hold_for_captured_successes_and_released_failures(alice: User) -> None:
    finished(alice.personal_workspace, alice)
    finished(alice.personal_workspace, alice, status="failed")

    result = checks.charges_match_work()

    assert result.ok, result.violations
    assert result.checked == 2


@pytest.mark.ledger_tampered  # a success whose hold is still pending: the audit objects too
def test_a_success_that_was_never_charged_is_a_violation(alice: User) -> None:
    generation = submit(alice.personal_workspace, frames=13, steps=10)
    Generation.objects.filter(pk=generation.pk).update(
        phase=Phase.SUCCEEDED,
        status=STATUS_OF_PHASE[Phase.SUCCEEDED],
        video_key="v.mp4",
        poster_key="v.jpg",
        video_bytes=1,
    )

    violations = checks.charges_match_work().violations

    assert f"{generation.pk} succeeded at {generation.cost} credits but 0 were captured" in (
        violations
    )
    workspace = alice.personal_workspace.pk
    assert (
        f"workspace {workspace} was charged 0 credits; its succeeded generations cost "
        f"{generation.cost}" in violations
    )
    assert not checks.ledger_audit().ok


def test_unfinished_work_after_the_drain_is_a_violation(alice: User) -> None:
    generation = submit(alice.personal_workspace)
    generation.refresh_from_db()
    assert not generation.is_terminal

    result = checks.nothing_unfinished()

    assert result.violations == [f"{generation.pk} is {generation.phase} after the drain"]


def test_a_success_whose_video_is_missing_or_broken_is_a_violation(alice: User) -> None:
    kept = finished(alice.personal_workspace, alice)
    assert checks.videos_stored().ok

    storage.delete(kept.video_key)
    missing = checks.videos_stored().violations
    assert len(missing) == 1
    assert missing[0].startswith(f"{kept.pk}: {kept.video_key} cannot be read")

    other = finished(alice.personal_workspace, alice, prompt="a second fox")
    broken = checks.videos_stored(valid=lambda path: False).violations
    assert f"{other.pk}: {other.video_key} is not a playable MP4" in broken


def _purchase(user: User, session_id: str) -> Purchase:
    return Purchase.objects.create(
        workspace=user.personal_workspace,
        created_by=user,
        pack_id="starter",
        pack_name="Starter",
        credits=500,
        amount_cents=500,
        currency="usd",
        checkout_session_id=session_id,
    )


def test_a_payment_that_was_not_granted_is_a_violation(alice: User) -> None:
    paid = _purchase(alice, "cs_paid")
    _purchase(alice, "cs_abandoned")
    stripe: Any = SimpleNamespace(
        sessions={
            "cs_paid": {"id": "cs_paid", "payment_intent": "pi_1"},
            "cs_abandoned": {"id": "cs_abandoned", "payment_intent": None},
            "cs_unknown": {"id": "cs_unknown", "payment_intent": None},
        },
        charges={"ch_1": {"payment_intent": "pi_1", "amount_refunded": 0}},
    )

    violations = checks.payments_granted_once(stripe).violations

    assert violations == [
        f"{paid.pk} paid once, granted 0 times (0 credits of 500)",
        "Stripe session cs_unknown has no purchase",
    ]


def test_budgets_and_replays_are_judged_from_the_load_figures() -> None:
    budgets: dict[str, Any] = {
        "error_ratio": 0.01,
        "p95_ms": 5000,
        "p95_ratio": 2.0,
        "p95_floor_ms": 1000,
    }
    within = {"requests": 1000, "error_ratio": 0.004, "p95_ms": 800, "baseline_p95_ms": 500,
              "replay_mismatches": 0}  # fmt: skip
    assert checks.locust_budgets(within, replay_name="r", **budgets).ok

    over = {"requests": 1000, "error_ratio": 0.02, "p95_ms": 6000, "baseline_p95_ms": 1000,
            "replay_mismatches": 2}  # fmt: skip
    assert checks.locust_budgets(over, replay_name="r", **budgets).violations == [
        "2 replays answered another generation (r)",
        "error ratio 2.00% is over its budget 1.00%",
        "p95 latency 6000 ms is over its budget 5000 ms",
        "p95 latency 6000 ms is 6.0× the baseline page's 1000 ms, over its budget 2×",
    ]
    # An idle machine: 19x a 20 ms baseline, but under the floor.
    idle = {**within, "p95_ms": 380, "baseline_p95_ms": 20}
    assert checks.locust_budgets(idle, replay_name="r", **budgets).ok
    unmeasured = {**within, "baseline_p95_ms": 0}
    assert checks.locust_budgets(unmeasured, replay_name="r", **budgets).violations == [
        "the baseline page was never requested"
    ]


def test_stripe_deliveries_fail_on_a_lost_event_or_an_accepted_forgery() -> None:
    fine = {"events delivered": 10, "forged deliveries refused": 3, "events never accepted": 0}
    assert checks.stripe_deliveries(fine).ok
    bad = {"events never accepted": 1, "forged deliveries answered 200": 2}
    assert checks.stripe_deliveries(bad).violations == [
        "events never accepted: 1",
        "forged deliveries answered 200: 2",
    ]
