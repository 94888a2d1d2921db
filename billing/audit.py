"""The ledger audit: proves the invariants from the transfers themselves.

1. Double entry: over all accounts, posted debits = posted credits and pending
   debits = pending credits.
2. Every account's cached counters equal a replay of its transfers.
3. No counter is negative and no wallet has spent more than it holds.
4. Every hold resolves at most once, and every resolution matches its hold.
5. No finished generation still holds credits (when the pipeline is installed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import connection
from django.db.models import Count, F, Q
from django.utils import timezone

from billing.models import RESOLUTION_PHASES, Account, AuditRun, Phase, Transfer

COUNTERS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


@dataclass
class AuditReport:
    accounts: int = 0
    transfers: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": self.ok,
            "accounts": self.accounts,
            "transfers": self.transfers,
            "checked_at": timezone.now().isoformat(),
        }
        if self.violations:
            body["violations"] = self.violations
        return body


_REPLAY_SQL = """
SELECT account_id, SUM(d_pending), SUM(d_posted), SUM(c_pending), SUM(c_posted) FROM (
    SELECT t.debit_account_id AS account_id,
           CASE WHEN t.phase = 'pending' THEN t.amount
                WHEN t.phase IN ('post', 'void', 'expire') THEN -h.amount ELSE 0 END AS d_pending,
           CASE WHEN t.phase IN ('single', 'post') THEN t.amount ELSE 0 END AS d_posted,
           0 AS c_pending, 0 AS c_posted
    FROM {transfer} t LEFT JOIN {transfer} h ON h.id = t.pending_id
    UNION ALL
    SELECT t.credit_account_id, 0, 0,
           CASE WHEN t.phase = 'pending' THEN t.amount
                WHEN t.phase IN ('post', 'void', 'expire') THEN -h.amount ELSE 0 END,
           CASE WHEN t.phase IN ('single', 'post') THEN t.amount ELSE 0 END
    FROM {transfer} t LEFT JOIN {transfer} h ON h.id = t.pending_id
) AS effects GROUP BY account_id
"""


def replay() -> dict[int, dict[str, int]]:
    """Each account's four counters recomputed from the transfers alone (one query)."""
    sql = _REPLAY_SQL.format(transfer=connection.ops.quote_name(Transfer._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return {
            row[0]: dict(zip(COUNTERS, (int(v or 0) for v in row[1:]), strict=True))
            for row in cursor.fetchall()
        }


def run_audit(*, record: bool = True) -> AuditReport:
    accounts = list(Account.objects.order_by("pk"))
    report = AuditReport(accounts=len(accounts), transfers=Transfer.objects.count())
    problems = report.violations

    totals = {name: sum(getattr(a, name) for a in accounts) for name in COUNTERS}
    if totals["debits_posted"] != totals["credits_posted"]:
        problems.append(
            f"posted debits {totals['debits_posted']} != posted credits {totals['credits_posted']}"
        )
    if totals["debits_pending"] != totals["credits_pending"]:
        problems.append(
            f"pending debits {totals['debits_pending']} != pending credits "
            f"{totals['credits_pending']}"
        )

    replayed = replay()
    for account in accounts:
        expected = replayed.get(account.pk, dict.fromkeys(COUNTERS, 0))
        for name in COUNTERS:
            cached = getattr(account, name)
            if cached != expected[name]:
                problems.append(
                    f"account {account.pk} ({account}): {name} is {cached}, "
                    f"transfers say {expected[name]}"
                )
            if expected[name] < 0:
                problems.append(f"account {account.pk}: {name} replays to {expected[name]}")
        if account.debits_must_not_exceed_credits:
            spent = expected["debits_posted"] + expected["debits_pending"]
            if spent > expected["credits_posted"]:
                problems.append(
                    f"account {account.pk} ({account}) spends {spent} "
                    f"but holds {expected['credits_posted']}"
                )

    twice = (
        Transfer.objects.filter(pending__isnull=False)
        .values("pending")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    problems.extend(f"hold {row['pending']} resolved {row['n']} times" for row in twice)

    mismatched = Transfer.objects.filter(phase__in=RESOLUTION_PHASES).filter(
        ~Q(pending__phase=Phase.PENDING)
        | ~Q(debit_account=F("pending__debit_account"))
        | ~Q(credit_account=F("pending__credit_account"))
        | Q(amount__gt=F("pending__amount"))
        | (Q(phase__in=[Phase.VOID, Phase.EXPIRE]) & ~Q(amount=F("pending__amount")))
    )
    problems.extend(f"resolution {t.pk} does not match its hold" for t in mismatched)

    if apps.is_installed("generations"):
        from generations.audit import ledger_violations

        problems.extend(ledger_violations())

    if record:
        AuditRun.objects.create(
            ok=report.ok,
            accounts=report.accounts,
            transfers=report.transfers,
            violations=report.violations,
        )
    return report
