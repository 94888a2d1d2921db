"""The write path: idempotency, two-phase spending, balances and batches."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from billing import wallets
from billing.ledger import (
    HoldAlreadyResolved,
    InsufficientCredits,
    InvalidTransfer,
    NewTransfer,
    TransferConflict,
    create_transfers,
    transfer_id,
)
from billing.models import AccountKind, Code, Phase, Transfer
from tests.billing.conftest import Funded

pytestmark = pytest.mark.django_db


def test_the_same_id_and_fields_return_the_existing_transfer(funded: Funded) -> None:
    workspace = funded(0)
    first = wallets.grant(workspace, 30, key="promo-1")
    again = wallets.grant(workspace, 30, key="promo-1")
    assert again.pk == first.pk
    assert Transfer.objects.filter(pk=first.pk).count() == 1
    assert wallets.balance(workspace).available == 30


def test_the_same_id_with_other_fields_is_refused_and_writes_nothing(funded: Funded) -> None:
    workspace = funded(0)
    wallets.grant(workspace, 30, key="promo-1")
    with pytest.raises(TransferConflict) as error:
        wallets.grant(workspace, 31, key="promo-1")
    assert error.value.fields == ["amount"]
    assert wallets.balance(workspace).available == 30


def test_a_hold_reserves_and_a_partial_capture_gives_the_rest_back(funded: Funded) -> None:
    workspace = funded(100)
    held = wallets.hold(workspace, 10, key="gen-1")
    assert wallets.balance(workspace).available == 90
    assert wallets.balance(workspace).held == 10

    with pytest.raises(InvalidTransfer):
        wallets.capture(held.pk, 11, key="gen-1")
    captured = wallets.capture(held.pk, 7, key="gen-1")
    assert captured.phase == Phase.POST
    assert wallets.balance(workspace) == wallets.Balance(available=93, held=0, owed=0)


def test_a_hold_resolves_once(funded: Funded) -> None:
    workspace = funded(100)
    held = wallets.hold(workspace, 10, key="gen-1")
    wallets.release(held.pk, key="gen-1")
    assert wallets.release(held.pk, key="gen-1").phase == Phase.VOID  # replay: same transfer
    with pytest.raises(HoldAlreadyResolved) as error:
        wallets.capture(held.pk, 10, key="gen-1")
    assert error.value.resolution.phase == Phase.VOID
    assert wallets.balance(workspace).available == 100


def test_holding_more_than_available_is_refused(funded: Funded) -> None:
    workspace = funded(39)
    wallets.hold(workspace, 39, key="gen-1")
    with pytest.raises(InsufficientCredits) as error:
        wallets.hold(workspace, 1, key="gen-2")
    assert error.value.available == 0
    assert not Transfer.objects.filter(pk=wallets.hold_id("gen-2")).exists()


def test_a_batch_is_all_or_nothing(funded: Funded) -> None:
    workspace = funded(10)
    wallet, _ = wallets.workspace_accounts(workspace)
    grants = wallets.system_account(AccountKind.GRANTS, near=wallet)
    usage = wallets.system_account(AccountKind.USAGE, near=wallet)
    with pytest.raises(InsufficientCredits):
        create_transfers(
            [
                NewTransfer(
                    id=uuid.uuid4(), code=Code.GRANT, amount=5, debit=grants, credit=wallet
                ),
                NewTransfer(
                    id=uuid.uuid4(), code=Code.CAPTURE, amount=50, debit=wallet, credit=usage
                ),
            ]
        )
    assert wallets.balance(workspace).available == 10
    assert Transfer.objects.filter(credit_account=wallet).count() == 1  # only the funding


@pytest.mark.parametrize("amount", [0, -5])
def test_amounts_are_positive(funded: Funded, amount: int) -> None:
    workspace = funded(10)
    with pytest.raises(InvalidTransfer):
        wallets.grant(workspace, amount, key="zero")


def test_a_hold_expires_only_after_its_timeout(funded: Funded) -> None:
    workspace = funded(50)
    wallet, _ = wallets.workspace_accounts(workspace)
    usage = wallets.system_account(AccountKind.USAGE, near=wallet)
    hold = create_transfers(
        [
            NewTransfer(
                id=transfer_id("hold", "short"),
                code=Code.HOLD,
                amount=20,
                debit=wallet,
                credit=usage,
                phase=Phase.PENDING,
                timeout=timedelta(milliseconds=50),
            )
        ]
    ).transfers[0]
    long_hold = wallets.hold(workspace, 5, key="long")
    with pytest.raises(InvalidTransfer):
        wallets.expire(long_hold.pk)
    time.sleep(0.1)
    assert wallets.expire(hold.pk).phase == Phase.EXPIRE
    assert wallets.balance(workspace).available == 45
    with pytest.raises(HoldAlreadyResolved):
        wallets.capture(hold.pk, 20, key="short")


def test_captures_and_releases_count_against_the_holds_member(funded: Funded) -> None:
    workspace = funded(100)
    member = workspace.memberships.get().user
    held = wallets.hold(workspace, 10, key="gen-1", member_id=member.pk)
    captured = wallets.capture(held.pk, 10, key="gen-1")
    assert captured.member_id == member.pk


def test_new_workspaces_have_a_wallet_and_personal_ones_get_trial_credits_once(
    funded: Funded, settings: object
) -> None:
    team = funded(0)
    assert wallets.balance(team).available == 0
    owner = team.memberships.get().user
    personal = owner.personal_workspace
    assert wallets.balance(personal).available == 100
    assert wallets.grant_signup_credits(personal) is not None
    assert wallets.balance(personal).available == 100
    assert Transfer.objects.filter(code=Code.SIGNUP).count() == 1
