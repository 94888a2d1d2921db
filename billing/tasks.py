"""Scheduled ledger work, run by the django-q2 workers."""

from __future__ import annotations

import logging

from django.utils import timezone

from billing import wallets
from billing.audit import run_audit
from billing.ledger import HoldAlreadyResolved
from billing.models import Phase, Transfer

logger = logging.getLogger(__name__)
alerts = logging.getLogger("mochi.alerts")


def audit_ledger() -> bool:
    """Daily: run the audit; alert the operator (mail to ADMINS and the error log) if it fails."""
    report = run_audit()
    if not report.ok:
        alerts.error(
            "Ledger audit found %d violation(s):\n%s",
            len(report.violations),
            "\n".join(report.violations[:50]),
        )
    return report.ok


def expire_overdue_holds(limit: int = 500) -> int:
    """Give back holds past their timeout that nothing resolved (crashed or lost work)."""
    overdue = (
        Transfer.objects.filter(
            phase=Phase.PENDING, timeout_at__lte=timezone.now(), resolutions__isnull=True
        )
        .order_by("timeout_at")
        .values_list("pk", flat=True)[:limit]
    )
    expired = 0
    for hold_pk in overdue:
        try:
            wallets.expire(hold_pk)
        except HoldAlreadyResolved:
            continue  # resolved meanwhile by its own work
        expired += 1
        logger.warning("Expired hold %s past its timeout", hold_pk)
    return expired
