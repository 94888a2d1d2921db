"""ledger_audit and grant_credits, as the operator runs them."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection

from billing import tasks, wallets
from billing.audit import run_audit
from billing.models import AuditRun, Code, Transfer
from tests.billing.conftest import Funded

pytestmark = pytest.mark.django_db


def _audit() -> tuple[int, dict[str, object]]:
    out = StringIO()
    try:
        call_command("ledger_audit", stdout=out)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, json.loads(out.getvalue())


def test_a_clean_ledger_passes(funded: Funded) -> None:
    workspace = funded(100)
    wallets.hold(workspace, 39, key="gen-1")
    wallets.capture(wallets.hold_id("gen-1"), 30, key="gen-1")
    code, body = _audit()
    assert code == 0
    assert body["ok"] is True
    assert body["transfers"] == Transfer.objects.count()
    assert AuditRun.objects.get().ok


@pytest.mark.ledger_tampered
def test_a_tampered_counter_is_reported_and_exits_1(funded: Funded) -> None:
    workspace = funded(100)
    wallet, _ = wallets.workspace_accounts(workspace)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_account SET credits_posted = credits_posted + 5 WHERE id = %s",
            [wallet.pk],
        )
    code, body = _audit()
    assert code == 1
    assert body["ok"] is False
    violations = "\n".join(body["violations"])  # type: ignore[arg-type]
    assert f"account {wallet.pk}" in violations
    assert "credits_posted is 105, transfers say 100" in violations
    assert "posted debits" in violations  # the books no longer balance


@pytest.mark.ledger_tampered
def test_the_daily_audit_alerts_the_operator(funded: Funded, settings: object) -> None:
    settings.ADMINS = ["ops@example.com"]  # type: ignore[attr-defined]
    workspace = funded(10)
    wallet, _ = wallets.workspace_accounts(workspace)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_account SET debits_posted = 1 WHERE id = %s", [wallet.pk])
    assert tasks.audit_ledger() is False
    assert len(mail.outbox) == 1
    assert "Ledger audit found" in mail.outbox[0].subject + mail.outbox[0].body
    assert mail.outbox[0].to == ["ops@example.com"]


def test_the_reaper_expires_only_overdue_holds(funded: Funded, settings: object) -> None:
    workspace = funded(100)
    wallets.hold(workspace, 10, key="fresh")
    assert tasks.expire_overdue_holds() == 0
    settings.HOLD_TIMEOUT_SECONDS = 0.01  # type: ignore[attr-defined]
    wallets.hold(workspace, 20, key="stale")
    import time

    time.sleep(0.05)
    assert tasks.expire_overdue_holds() == 1
    assert wallets.balance(workspace).available == 90
    assert run_audit(record=False).ok


def test_grant_credits_grants_and_prints_the_balance(funded: Funded) -> None:
    workspace = funded(0)
    out = StringIO()
    call_command("grant_credits", workspace.slug, "250", "--reason", "Support: outage", stdout=out)
    assert json.loads(out.getvalue()) == {"workspace": workspace.slug, "available": 250}
    assert Transfer.objects.get(code=Code.GRANT, reference="Support: outage").amount == 250


def test_grant_credits_with_a_request_id_grants_once(funded: Funded) -> None:
    workspace = funded(0)
    for _ in range(2):
        call_command(
            "grant_credits",
            workspace.slug,
            "50",
            "--reason",
            "promo",
            "--request-id",
            "r-1",
            stdout=StringIO(),
        )
    assert wallets.balance(workspace).available == 50


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-team", "10"], "No workspace"),
        (["{slug}", "ten"], "whole number"),
        (["{slug}", "2.5"], "whole number"),
        (["{slug}", "0"], "positive"),
        (["{slug}", "-4"], "positive"),
    ],
)
def test_grant_credits_refuses_bad_input_and_writes_nothing(
    funded: Funded, args: list[str], message: str
) -> None:
    workspace = funded(0)
    before = Transfer.objects.count()
    with pytest.raises(CommandError, match=message):
        call_command(
            "grant_credits",
            *[a.format(slug=workspace.slug) for a in args],
            "--reason",
            "x",
            stdout=StringIO(),
        )
    assert Transfer.objects.count() == before


def test_grant_credits_needs_a_reason(funded: Funded) -> None:
    workspace = funded(0)
    with pytest.raises(CommandError, match="reason"):
        call_command("grant_credits", workspace.slug, "10", "--reason", "  ", stdout=StringIO())


@pytest.mark.ledger_tampered
def test_a_finished_generation_that_still_holds_credits_is_reported(funded: Funded) -> None:
    from generations import services
    from generations.models import Generation, Phase, Status
    from generations.params import parse_params

    workspace = funded(100)
    membership = workspace.memberships.get(role="owner")
    generation = services.submit_generation(
        workspace=workspace,
        params=parse_params({"prompt": "a fox", "frames": 13, "steps": 10}),
        user=membership.user,
        membership=membership,
    )
    assert _audit()[0] == 0  # running work may hold credits
    # A bug marks it failed without releasing the hold.
    Generation.objects.filter(pk=generation.pk).update(phase=Phase.FAILED, status=Status.FAILED)
    code, body = _audit()
    assert code == 1
    assert body["violations"] == [
        f"generation {generation.pk} is failed but its hold is still pending"
    ]
