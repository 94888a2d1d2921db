"""A workspace's statement: its ledger as the customer reads it, and usage by member.

The billing page and its CSV export both read the workspace's transfers (those of
its wallet and of its receivable) through `ledger_rows`, and describe each one by
what it did to the three numbers the customer sees: available, held and owed.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import QuerySet

from billing import wallets
from billing.models import Phase, Transfer, receivable_account_id, wallet_account_id

if TYPE_CHECKING:
    from accounts.models import Membership, Workspace


@dataclass(frozen=True)
class Entry:
    transfer: Transfer
    available: int
    held: int
    owed: int

    @property
    def label(self) -> str:
        return self.transfer.get_code_display()


def ledger_rows(workspace: Workspace, filters: dict[str, Any] | None = None) -> QuerySet[Transfer]:
    """The workspace's transfers, newest first, narrowed by the ledger filters."""
    filters = filters or {}
    rows = Transfer.objects.touching(
        wallet_account_id(workspace.pk), receivable_account_id(workspace.pk)
    )
    if filters.get("code"):
        rows = rows.filter(code=filters["code"])
    since: date | None = filters.get("since")
    until: date | None = filters.get("until")
    # Dates are whole days in UTC, the end day included.
    if since:
        rows = rows.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=UTC))
    if until:
        end = datetime.combine(until, time.min, tzinfo=UTC) + timedelta(days=1)
        rows = rows.filter(created_at__lt=end)
    # A capture's effect depends on its hold's amount: read both in one query.
    return rows.select_related("member", "pending").order_by("-created_at", "-id")


def entry(transfer: Transfer, workspace_id: int) -> Entry:
    """What one transfer did to the workspace's available, held and owed credits."""
    wallet, receivable = wallet_account_id(workspace_id), receivable_account_id(workspace_id)
    available = held = owed = 0
    amount = transfer.amount
    if transfer.phase == Phase.PENDING:
        available, held = -amount, amount
    elif transfer.phase == Phase.POST:
        hold_amount = transfer.pending.amount if transfer.pending else amount
        # The hold already left "available"; only what the capture did not take returns.
        held, available = -hold_amount, hold_amount - amount
    elif transfer.phase in (Phase.VOID, Phase.EXPIRE):
        held, available = -amount, amount
    else:
        if transfer.credit_account_id == wallet:
            available += amount
        if transfer.debit_account_id == wallet:
            available -= amount
        if transfer.debit_account_id == receivable:
            owed += amount
        if transfer.credit_account_id == receivable:
            owed -= amount
    return Entry(transfer, available, held, owed)


def entries(transfers: Iterable[Transfer], workspace_id: int) -> list[Entry]:
    return [entry(t, workspace_id) for t in transfers]


def record(transfer: Transfer, workspace_id: int) -> dict[str, Any]:
    """One line of the statement as data: the CSV export's columns and the API's entry."""
    e = entry(transfer, workspace_id)
    return {
        "id": str(transfer.pk),
        "created_at": transfer.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "kind": transfer.code,
        "description": transfer.get_code_display(),
        "phase": transfer.phase,
        "amount": transfer.amount,
        "available_change": e.available,
        "held_change": e.held,
        "owed_change": e.owed,
        "member": transfer.member.email if transfer.member else None,
        "reference": transfer.reference,
    }


CSV_HEADER = [
    "id",
    "created_at",
    "kind",
    "description",
    "phase",
    "amount",
    "available_change",
    "held_change",
    "owed_change",
    "member",
    "reference",
]


class _Echo:
    """A file whose write() hands the line back, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: QuerySet[Transfer], workspace_id: int) -> Iterator[str]:
    """The rows as CSV lines, read from the database in chunks (memory stays flat)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_HEADER)
    for transfer in rows.iterator(chunk_size=2000):
        line = record(transfer, workspace_id)
        for text in ("description", "reference"):
            line[text] = _spreadsheet_safe(line[text])
        yield writer.writerow(["" if line[c] is None else line[c] for c in CSV_HEADER])


def _spreadsheet_safe(text: str) -> str:
    # A cell starting with = + - @ would run as a formula in a spreadsheet (CSV injection).
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@dataclass(frozen=True)
class MemberUsage:
    membership: Membership
    captured: int
    held: int

    @property
    def total(self) -> int:
        return self.captured + self.held

    @property
    def cap_left(self) -> int | None:
        cap = self.membership.monthly_cap
        return None if cap is None else max(cap - self.total, 0)


def member_usage(workspace: Workspace, now: datetime | None = None) -> list[MemberUsage]:
    """Each member's spend this month (captured plus held now), by the caps' rule."""
    spend = wallets.spend_this_month_by_member(wallet_account_id(workspace.pk), now)
    none = wallets.MemberSpend(0, 0)
    usage = [
        MemberUsage(m, spend.get(m.user_id, none).captured, spend.get(m.user_id, none).held)
        for m in workspace.memberships.select_related("user")
    ]
    return sorted(usage, key=lambda u: (-u.total, u.membership.user.email))
