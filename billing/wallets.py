"""A workspace's credits: every operation the product performs on the ledger.

Each function writes its transfers through `ledger.create_transfers`, which
locks every account involved in one ordered pass. Ids derive from the caller's
key (a generation id, a Stripe payment id, an operator's request id), so
calling any of them twice with the same key does the work once.

Clawbacks never take a wallet below zero: what the wallet cannot cover is
recorded as owed on the workspace's receivable account, and the wallet may
not start new spending until credits arriving later have settled it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from billing.ledger import (
    AccountOwes,
    InvalidTransfer,
    LedgerError,
    NewTransfer,
    TransferConflict,
    Written,
    create_transfers,
    load_transfers,
    lock_accounts,
    transfer_id,
)
from billing.models import (
    Account,
    AccountKind,
    Code,
    Phase,
    Transfer,
    receivable_account_id,
    system_account_id,
    system_shard_for,
    wallet_account_id,
)

if TYPE_CHECKING:
    from accounts.models import Workspace


class WalletSuspended(LedgerError):
    def __init__(self, owed: int) -> None:
        self.owed = owed
        super().__init__(
            f"Spending is paused: {owed} credits taken back after a refund or dispute "
            "are still owed. Buying credits settles it."
        )


class MonthlyCapExceeded(LedgerError):
    def __init__(self, cap: int, used: int, needed: int) -> None:
        self.cap, self.used, self.needed = cap, used, needed
        left = max(cap - used, 0)
        super().__init__(
            f"This would pass your monthly limit of {cap} credits in this team "
            f"({left} left this month)."
        )


@dataclass(frozen=True)
class Balance:
    available: int
    held: int
    owed: int

    @property
    def suspended(self) -> bool:
        return self.owed > 0


# --- Accounts ----------------------------------------------------------------


def open_accounts(workspace: Workspace) -> None:
    """Create the workspace's wallet and receivable (once)."""
    Account.objects.get_or_create(
        pk=wallet_account_id(workspace.pk),
        defaults={
            "kind": AccountKind.WALLET,
            "workspace": workspace,
            "debits_must_not_exceed_credits": True,
        },
    )
    Account.objects.get_or_create(
        pk=receivable_account_id(workspace.pk),
        defaults={"kind": AccountKind.RECEIVABLE, "workspace": workspace},
    )


def workspace_accounts(workspace: Workspace) -> tuple[Account, Account]:
    """(wallet, receivable) of a workspace, read now."""
    wallet_id, receivable_id = wallet_account_id(workspace.pk), receivable_account_id(workspace.pk)
    rows = {a.pk: a for a in Account.objects.filter(pk__in=[wallet_id, receivable_id])}
    return rows[wallet_id], rows[receivable_id]


def system_account(kind: AccountKind, *, near: Account) -> Account:
    """The shard of a system account that serves the wallet `near`."""
    account, _ = Account.objects.get_or_create(
        pk=system_account_id(kind, system_shard_for(near.pk)),
        defaults={"kind": kind, "shard": system_shard_for(near.pk)},
    )
    return account


def _system(kind: AccountKind, wallet_id: int) -> int:
    return system_account_id(kind, system_shard_for(wallet_id))


def balance(workspace: Workspace) -> Balance:
    wallet, receivable = workspace_accounts(workspace)
    return Balance(available=wallet.available, held=wallet.debits_pending, owed=receivable.owed)


# --- Credits in ------------------------------------------------------------------


def grant(
    workspace: Workspace,
    amount: int,
    *,
    key: str,
    code: Code = Code.GRANT,
    source: AccountKind = AccountKind.GRANTS,
    reference: str = "",
) -> Transfer:
    """Credit `amount` to the workspace from `source` (grants, purchases), once per key."""
    wallet, receivable = wallet_account_id(workspace.pk), receivable_account_id(workspace.pk)
    written = create_transfers(
        [
            NewTransfer(
                id=transfer_id(code, key),
                code=code,
                amount=amount,
                debit=_system(source, wallet),
                credit=wallet,
                reference=reference or key,
            )
        ],
        also_lock=[receivable],
    )
    _settle_if_owed(written, wallet, receivable)
    return written.transfers[0]


def grant_signup_credits(workspace: Workspace) -> Transfer | None:
    if settings.SIGNUP_CREDITS <= 0:
        return None
    return grant(
        workspace,
        settings.SIGNUP_CREDITS,
        key=f"workspace:{workspace.pk}",
        code=Code.SIGNUP,
        reference=f"workspace:{workspace.pk}",
    )


# --- Spending: hold, capture, release, expire -------------------------------------


def hold(
    workspace: Workspace,
    amount: int,
    *,
    key: str,
    member_id: int | None = None,
    monthly_cap: int | None = None,
) -> Transfer:
    """Reserve `amount` for the work named by `key`; refuses when the wallet cannot
    cover it, is suspended, or the member's monthly cap would be passed."""
    wallet, receivable = wallet_account_id(workspace.pk), receivable_account_id(workspace.pk)

    def check_cap(accounts: dict[int, Account]) -> None:
        assert member_id is not None
        assert monthly_cap is not None
        used = member_spend_this_month(wallet, member_id)
        if used + amount > monthly_cap:
            raise MonthlyCapExceeded(monthly_cap, used, amount)

    capped = monthly_cap is not None and member_id is not None
    try:
        written = create_transfers(
            [
                NewTransfer(
                    id=hold_id(key),
                    code=Code.HOLD,
                    amount=amount,
                    debit=wallet,
                    credit=_system(AccountKind.USAGE, wallet),
                    phase=Phase.PENDING,
                    timeout=timedelta(seconds=settings.HOLD_TIMEOUT_SECONDS),
                    reference=key,
                    member_id=member_id,
                )
            ],
            check=check_cap if capped else None,
            settled=[receivable],
        )
    except AccountOwes as owing:
        raise WalletSuspended(owing.owed) from None
    return written.transfers[0]


def hold_id(key: str) -> uuid.UUID:
    return transfer_id("hold", key)


def capture(held: Transfer | uuid.UUID, amount: int, *, key: str) -> Transfer:
    """Charge `amount` (at most the hold) and give the rest back; once per hold."""
    return _resolve(held, transfer_id("capture", key), Phase.POST, key, amount)


def release(held: Transfer | uuid.UUID, *, key: str) -> Transfer:
    """Give the whole hold back (failure, cancel); once per hold."""
    return _resolve(held, transfer_id("release", key), Phase.VOID, key)


def expire(held: Transfer | uuid.UUID) -> Transfer:
    """Give back a hold that reached its timeout (the reaper)."""
    hold_pk = held.pk if isinstance(held, Transfer) else held
    key = f"hold:{hold_pk}"
    return _resolve(held, transfer_id("expire", key), Phase.EXPIRE, key)


_RESOLUTION_CODES = {Phase.POST: Code.CAPTURE, Phase.VOID: Code.RELEASE, Phase.EXPIRE: Code.EXPIRE}


def _resolve(
    held: Transfer | uuid.UUID, new_id: uuid.UUID, phase: Phase, key: str, amount: int = 0
) -> Transfer:
    """Resolve a hold; whatever it gives back first pays down what the workspace owes."""
    if not isinstance(held, Transfer):
        found = load_transfers([held])
        if not found:
            raise InvalidTransfer(f"{held} is not a hold.")
        held = found[0]
    wallet = held.debit_account_id
    receivable = wallet + 1 if wallet > 0 and wallet % 2 == 0 else None
    written = create_transfers(
        [
            NewTransfer(
                id=new_id,
                code=_RESOLUTION_CODES[phase],
                amount=amount,
                phase=phase,
                pending_id=held.pk,
                reference=key,
            )
        ],
        also_lock=[receivable] if receivable else [],
        holds=[held],
    )
    if receivable:
        _settle_if_owed(written, wallet, receivable)
    return written.transfers[0]


def member_spend_this_month(wallet_id: int, member_id: int, now: datetime | None = None) -> int:
    """Credits a member has captured this calendar month (UTC) plus what they hold now."""
    now = now or timezone.now()
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # Holds older than their timeout are expired (or about to be): bound the scan.
    oldest_hold = now - timedelta(seconds=settings.HOLD_TIMEOUT_SECONDS) - timedelta(hours=1)
    totals = Transfer.objects.filter(
        debit_account_id=wallet_id,
        member_id=member_id,
        created_at__gte=min(month_start, oldest_hold),
    ).aggregate(
        captured=Sum("amount", filter=Q(phase=Phase.POST, created_at__gte=month_start)),
        held=Sum("amount", filter=Q(phase=Phase.PENDING, resolutions__isnull=True)),
    )
    return int(totals["captured"] or 0) + int(totals["held"] or 0)


# --- Clawbacks ---------------------------------------------------------------------


def clawback(workspace: Workspace, amount: int, *, key: str, code: Code) -> list[Transfer]:
    """Take `amount` back (refund, dispute): what the wallet cannot cover is owed."""
    wallet, receivable = wallet_account_id(workspace.pk), receivable_account_id(workspace.pk)
    refunds = _system(AccountKind.REFUNDS, wallet)
    take_id, short_id = transfer_id(code, key, "take"), transfer_id(code, key, "shortfall")
    with transaction.atomic():
        accounts = lock_accounts([wallet, receivable, refunds])
        done = _already(amount, [take_id, short_id])
        if done is not None:
            return done
        take = min(amount, max(accounts[wallet].available, 0))
        batch = []
        if take:
            batch.append(
                NewTransfer(
                    id=take_id, code=code, amount=take, debit=wallet, credit=refunds, reference=key
                )
            )
        if amount - take:
            batch.append(
                NewTransfer(
                    id=short_id,
                    code=Code.SHORTFALL,
                    amount=amount - take,
                    debit=receivable,
                    credit=refunds,
                    reference=key,
                )
            )
        return create_transfers(batch).transfers


def give_back(workspace: Workspace, amount: int, *, key: str, code: Code) -> list[Transfer]:
    """Return `amount` taken back earlier (a won dispute): first cancel what is owed."""
    wallet, receivable = wallet_account_id(workspace.pk), receivable_account_id(workspace.pk)
    refunds = _system(AccountKind.REFUNDS, wallet)
    cancel_id, credit_id = transfer_id(code, key, "cancel"), transfer_id(code, key, "credit")
    with transaction.atomic():
        accounts = lock_accounts([wallet, receivable, refunds])
        done = _already(amount, [cancel_id, credit_id])
        if done is not None:
            return done
        cancel = min(amount, max(accounts[receivable].owed, 0))
        batch = []
        if cancel:
            batch.append(
                NewTransfer(
                    id=cancel_id,
                    code=code,
                    amount=cancel,
                    debit=refunds,
                    credit=receivable,
                    reference=key,
                )
            )
        if amount - cancel:
            batch.append(
                NewTransfer(
                    id=credit_id,
                    code=code,
                    amount=amount - cancel,
                    debit=refunds,
                    credit=wallet,
                    reference=key,
                )
            )
        return create_transfers(batch).transfers


def _already(amount: int, ids: list[uuid.UUID]) -> list[Transfer] | None:
    """The transfers an earlier call with the same key wrote, checked against `amount`."""
    done = list(Transfer.objects.filter(pk__in=ids))
    if not done:
        return None
    if sum(t.amount for t in done) != amount:
        raise TransferConflict(done[0].pk, ["amount"])
    return sorted(done, key=lambda t: ids.index(t.pk))


def _settle_if_owed(written: Written, wallet: int, receivable: int) -> None:
    """After credits arrived: if the workspace owes and now has credits, settle."""
    states = written.accounts
    if receivable in states and states[receivable].owed > 0 and states[wallet].available > 0:
        settle(wallet, receivable)


def settle(wallet: int, receivable: int) -> Transfer | None:
    """Pay what the workspace owes from its available credits, under the locks.

    Its own short transaction, after the transfer that brought the credits: if the
    process dies in between, the next credits to arrive settle it. The id names the
    receivable's state, so two concurrent attempts write one settlement."""
    with transaction.atomic():
        accounts = lock_accounts([wallet, receivable])
        owed, available = accounts[receivable].owed, accounts[wallet].available
        amount = min(owed, available)
        if amount <= 0:
            return None
        settled_so_far = accounts[receivable].credits_posted
        return create_transfers(
            [
                NewTransfer(
                    id=transfer_id("settle", receivable, settled_so_far),
                    code=Code.SETTLEMENT,
                    amount=amount,
                    debit=wallet,
                    credit=receivable,
                    reference=f"account:{receivable}:{settled_so_far}",
                )
            ]
        ).transfers[0]


# --- Reports -----------------------------------------------------------------------


@dataclass(frozen=True)
class MemberSpend:
    captured: int
    held: int

    @property
    def total(self) -> int:
        return self.captured + self.held


def spend_this_month_by_member(
    wallet_id: int, now: datetime | None = None
) -> dict[int, MemberSpend]:
    """Every member's spend this month, by the rule of `member_spend_this_month` (the caps'),
    captured and held apart, in one query (the billing page's usage by member)."""
    now = now or timezone.now()
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    oldest_hold = now - timedelta(seconds=settings.HOLD_TIMEOUT_SECONDS) - timedelta(hours=1)
    grouped = (
        Transfer.objects.filter(
            debit_account_id=wallet_id,
            member_id__isnull=False,
            created_at__gte=min(month_start, oldest_hold),
        )
        .values_list("member_id")
        .annotate(
            captured=Sum("amount", filter=Q(phase=Phase.POST, created_at__gte=month_start)),
            held=Sum("amount", filter=Q(phase=Phase.PENDING, resolutions__isnull=True)),
        )
        .order_by()
    )
    return {
        int(member): MemberSpend(int(captured or 0), int(held or 0))
        for member, captured, held in grouped
    }
