"""Refund and dispute clawbacks never take a wallet below zero; what is owed pauses spending."""

from __future__ import annotations

import pytest

from billing import wallets
from billing.ledger import TransferConflict
from billing.models import AccountKind, Code, Transfer
from tests.billing.conftest import Funded

pytestmark = pytest.mark.django_db


def test_a_clawback_within_the_balance_takes_it_all(funded: Funded) -> None:
    workspace = funded(500)
    transfers = wallets.clawback(workspace, 200, key="refund:ch_1:2000", code=Code.REFUND)
    assert [t.code for t in transfers] == [Code.REFUND]
    assert wallets.balance(workspace) == wallets.Balance(available=300, held=0, owed=0)


def test_a_clawback_beyond_the_balance_records_the_shortfall_and_suspends(
    funded: Funded,
) -> None:
    workspace = funded(500)
    wallets.hold(workspace, 400, key="gen-1")  # 80 % spent
    wallets.capture(wallets.hold_id("gen-1"), 400, key="gen-1")

    transfers = wallets.clawback(workspace, 500, key="refund:ch_1:5000", code=Code.REFUND)
    assert [(t.code, t.amount) for t in transfers] == [(Code.REFUND, 100), (Code.SHORTFALL, 400)]
    shortfall = transfers[1]
    assert shortfall.debit_account.kind == AccountKind.RECEIVABLE
    assert wallets.balance(workspace) == wallets.Balance(available=0, held=0, owed=400)
    assert wallets.balance(workspace).suspended

    with pytest.raises(wallets.WalletSuspended):
        wallets.hold(workspace, 1, key="gen-2")


def test_credits_arriving_later_settle_the_debt_first(funded: Funded) -> None:
    workspace = funded(100)
    wallets.clawback(workspace, 250, key="dispute:dp_1", code=Code.DISPUTE)
    assert wallets.balance(workspace).owed == 150

    wallets.grant(workspace, 100, key="pack-1", code=Code.PURCHASE, source=AccountKind.PURCHASES)
    assert wallets.balance(workspace) == wallets.Balance(available=0, held=0, owed=50)

    wallets.grant(workspace, 80, key="pack-2", code=Code.PURCHASE, source=AccountKind.PURCHASES)
    assert wallets.balance(workspace) == wallets.Balance(available=30, held=0, owed=0)
    wallets.hold(workspace, 30, key="gen-1")


def test_a_released_hold_pays_down_the_debt(funded: Funded) -> None:
    workspace = funded(100)
    wallets.hold(workspace, 60, key="gen-1")
    wallets.clawback(workspace, 100, key="refund:ch_1:1000", code=Code.REFUND)
    assert wallets.balance(workspace) == wallets.Balance(available=0, held=60, owed=60)
    wallets.release(wallets.hold_id("gen-1"), key="gen-1")
    assert wallets.balance(workspace) == wallets.Balance(available=0, held=0, owed=0)


def test_a_clawback_is_idempotent_on_its_key(funded: Funded) -> None:
    workspace = funded(100)
    first = wallets.clawback(workspace, 150, key="refund:ch_1:1500", code=Code.REFUND)
    wallets.grant(workspace, 500, key="later")  # the replay must not take more
    again = wallets.clawback(workspace, 150, key="refund:ch_1:1500", code=Code.REFUND)
    assert [t.pk for t in again] == [t.pk for t in first]
    with pytest.raises(TransferConflict):
        wallets.clawback(workspace, 10, key="refund:ch_1:1500", code=Code.REFUND)
    assert wallets.balance(workspace).available == 450


def test_a_won_dispute_cancels_the_debt_before_crediting(funded: Funded) -> None:
    workspace = funded(100)
    wallets.clawback(workspace, 300, key="dp_1", code=Code.DISPUTE)
    assert wallets.balance(workspace).owed == 200
    wallets.give_back(workspace, 300, key="dp_1", code=Code.DISPUTE_WON)
    assert wallets.balance(workspace) == wallets.Balance(available=100, held=0, owed=0)
    wallets.give_back(workspace, 300, key="dp_1", code=Code.DISPUTE_WON)
    assert wallets.balance(workspace).available == 100
    assert Transfer.objects.filter(code=Code.DISPUTE_WON).count() == 2
