"""The database refuses what the ledger code would never write, even when code forgets."""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test import Client

from billing import wallets
from billing.models import Account, Code, Phase, Transfer
from tests.billing.conftest import Funded
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_a_wallet_cannot_be_made_to_spend_more_than_it_holds(funded: Funded) -> None:
    workspace = funded(50)
    wallet, _ = wallets.workspace_accounts(workspace)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_account SET debits_pending = debits_pending + 51 WHERE id = %s",
            [wallet.pk],
        )


def test_counters_cannot_go_negative(funded: Funded) -> None:
    workspace = funded(50)
    _, receivable = wallets.workspace_accounts(workspace)
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=receivable.pk).update(credits_posted=-1)


@pytest.mark.parametrize("amount", [0, -3])
def test_a_transfer_amount_must_be_positive(funded: Funded, amount: int) -> None:
    wallet, receivable = wallets.workspace_accounts(funded(0))
    with pytest.raises(IntegrityError), transaction.atomic():
        Transfer.objects.create(
            id=uuid.uuid4(),
            debit_account=receivable,
            credit_account=wallet,
            amount=amount,
            phase=Phase.SINGLE,
            code=Code.ADJUSTMENT,
        )


def test_a_hold_cannot_be_resolved_twice(funded: Funded) -> None:
    workspace = funded(50)
    held = wallets.hold(workspace, 10, key="gen-1")
    wallets.capture(held.pk, 10, key="gen-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Transfer.objects.create(
            id=uuid.uuid4(),
            debit_account_id=held.debit_account_id,
            credit_account_id=held.credit_account_id,
            amount=10,
            phase=Phase.VOID,
            pending=held,
            code=Code.RELEASE,
        )


@pytest.mark.postgres
def test_transfers_cannot_be_updated_or_deleted(funded: Funded) -> None:
    workspace = funded(50)
    grant = wallets.grant(workspace, 5, key="g")
    for statement in (
        "UPDATE billing_transfer SET amount = 500 WHERE id = %s",
        "DELETE FROM billing_transfer WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [grant.pk])
    assert Transfer.objects.get(pk=grant.pk).amount == 5


def test_the_admin_shows_the_ledger_read_only(client: Client, funded: Funded) -> None:
    workspace = funded(50)
    grant = wallets.grant(workspace, 5, key="g")
    staff = make_user("ops@example.com")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    page = client.get(f"/admin/billing/transfer/{grant.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.post(f"/admin/billing/transfer/{grant.pk}/delete/").status_code == 403
    assert client.get("/admin/billing/transfer/add/").status_code == 403
    assert client.get("/admin/billing/transfer/?q=g").status_code == 200
