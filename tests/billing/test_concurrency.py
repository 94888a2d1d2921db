"""Real concurrency on PostgreSQL: separate connections released together by a barrier."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from billing import wallets
from billing.audit import run_audit
from billing.ledger import (
    HoldAlreadyResolved,
    InsufficientCredits,
    NewTransfer,
    create_transfers,
)
from billing.models import Code, Phase, Transfer
from billing.pricing import generation_cost
from tests.billing.conftest import Funded
from tests.support.concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_fifty_holds_on_a_wallet_worth_ten_exactly_ten_succeed(funded: Funded) -> None:
    cost = generation_cost(52, 30)
    workspace = funded(10 * cost)
    results = run_together(
        [(lambda n=n: wallets.hold(workspace, cost, key=f"gen-{n}")) for n in range(50)]
    )
    outcomes = Counter(type(r).__name__ for r in results)
    assert outcomes == {"Transfer": 10, "InsufficientCredits": 40}
    assert all(isinstance(r, (Transfer, InsufficientCredits)) for r in results)
    assert wallets.balance(workspace) == wallets.Balance(available=0, held=10 * cost, owed=0)
    assert run_audit(record=False).ok


def test_captures_and_releases_racing_on_one_hold_resolve_it_once(funded: Funded) -> None:
    workspace = funded(100)
    held = wallets.hold(workspace, 39, key="gen-1")
    racers = [
        (lambda n=n: wallets.capture(held.pk, 30, key=f"capture-{n}"))
        if n % 2
        else (lambda n=n: wallets.release(held.pk, key=f"release-{n}"))
        for n in range(20)
    ]
    results = run_together(racers)
    winners = [r for r in results if isinstance(r, Transfer)]
    assert len(winners) == 1
    assert all(isinstance(r, HoldAlreadyResolved) for r in results if r not in winners)
    assert Transfer.objects.filter(pending=held).count() == 1
    expected = 100 - 30 if winners[0].phase == Phase.POST else 100
    assert wallets.balance(workspace) == wallets.Balance(available=expected, held=0, owed=0)
    assert run_audit(record=False).ok


def test_opposite_transfers_between_two_wallets_never_deadlock(funded: Funded) -> None:
    a, b = funded(10_000), funded(10_000)
    wallet_a, _ = wallets.workspace_accounts(a)
    wallet_b, _ = wallets.workspace_accounts(b)

    def shuttle(debit: object, credit: object) -> int:
        for _ in range(150):
            create_transfers(
                [
                    NewTransfer(
                        id=uuid.uuid4(), code=Code.TRANSFER, amount=1, debit=debit, credit=credit
                    )
                ]
            )
        return 150

    results = run_together(
        [
            (lambda: shuttle(wallet_a, wallet_b))
            if n % 2
            else (lambda: shuttle(wallet_b, wallet_a))
            for n in range(8)
        ]
    )
    assert results == [150] * 8
    assert wallets.balance(a).available == wallets.balance(b).available == 10_000
    assert run_audit(record=False).ok


def test_a_members_monthly_cap_holds_under_concurrent_submits(funded: Funded) -> None:
    from tests.conftest import make_user

    workspace = funded(10_000)
    bob = make_user("bob@example.com")
    results = run_together(
        [
            (
                lambda n=n: wallets.hold(
                    workspace, 39, key=f"gen-{n}", member_id=bob.pk, monthly_cap=100
                )
            )
            for n in range(20)
        ]
    )
    outcomes = Counter(type(r).__name__ for r in results)
    assert outcomes == {"Transfer": 2, "MonthlyCapExceeded": 18}  # 2 × 39 ≤ 100 < 3 × 39
    wallet, _ = wallets.workspace_accounts(workspace)
    assert wallets.member_spend_this_month(wallet.pk, bob.pk) == 78
    assert run_audit(record=False).ok


def test_the_same_grant_sent_concurrently_is_written_once(funded: Funded) -> None:
    workspace = funded(0)
    results = run_together(
        [(lambda: wallets.grant(workspace, 500, key="purchase:pi_123")) for _ in range(10)]
    )
    assert len({r.pk for r in results}) == 1
    assert wallets.balance(workspace).available == 500
    assert run_audit(record=False).ok


@pytest.mark.django_db
def test_a_system_account_created_meanwhile_is_not_taken_for_a_refusal(
    funded: Funded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write's UPDATE of a system shard can miss a row that another transaction
    created a moment before the next statement sees it; the function then reports the
    account as short. A shard has no balance rule: the write runs again."""
    from django.db import connection

    from billing import ledger
    from billing.models import AccountKind

    workspace = funded(0)
    wallet, _ = wallets.workspace_accounts(workspace)
    shard = wallets.system_account(AccountKind.GRANTS, near=wallet)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY SEQUENCE refusals")
        cursor.execute("CREATE TEMPORARY TABLE refused AS SELECT %s::bigint AS id", [shard.pk])
        # The function's report of that race, once (a sequence is not rolled back).
        cursor.execute(
            """CREATE FUNCTION pg_temp.refused_once() RETURNS boolean LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('refusals') = 1 THEN
                    RAISE EXCEPTION USING ERRCODE = 'ML001', MESSAGE = (
                        SELECT to_jsonb(a)::text FROM billing_account a
                        WHERE a.id = (SELECT id FROM refused)
                    );
                END IF;
                RETURN false;
            END $$"""
        )
    racy = ledger._APPLY_SQL.replace(
        "SELECT billing_apply_transfers(",
        "SELECT CASE WHEN pg_temp.refused_once() THEN NULL ELSE billing_apply_transfers(",
    )
    monkeypatch.setattr(ledger, "_APPLY_SQL", racy + " END")
    granted = wallets.grant(workspace, 500, key="purchase:pi_race")
    assert granted.amount == 500
    assert wallets.balance(workspace).available == 500
