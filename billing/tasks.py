"""Background billing work, run by the django-q2 workers: ledger upkeep, Stripe events."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from billing import services, stripe_events, wallets
from billing.audit import run_audit
from billing.ledger import HoldAlreadyResolved
from billing.models import Phase, StripeEvent, Transfer
from billing.stripe_client import StripeServiceError

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


# --- Stripe events ------------------------------------------------------------------------

EVENT_LEASE = services.EVENT_LEASE
# Waits before processing a failed event again; after the last one, the operator decides.
EVENT_RETRY_DELAYS = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=12),
)


def process_stripe_event(event_pk: int) -> str | None:
    """Run the handler of one recorded Stripe event; keep the error for retry if it fails."""
    now = timezone.now()
    # Claim it: 0 rows means processed already, or another worker holds it.
    claimed = (
        StripeEvent.objects.filter(pk=event_pk, processed_at__isnull=True)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .update(locked_until=now + EVENT_LEASE, attempts=F("attempts") + 1)
    )
    if not claimed:
        return None
    event = StripeEvent.objects.get(pk=event_pk)
    try:
        outcome = stripe_events.handle(event.payload)
    except Exception as error:
        failures = event.attempts
        # Trying again cannot fix a purchase that disagrees with Stripe, or a request
        # Stripe refused for good (an unknown charge): the operator must look.
        permanent = isinstance(error, services.PurchaseMismatch) or (
            isinstance(error, StripeServiceError) and not error.retryable
        )
        retry_at = (
            now + EVENT_RETRY_DELAYS[failures - 1]
            if failures <= len(EVENT_RETRY_DELAYS) and not permanent
            else None
        )
        StripeEvent.objects.filter(pk=event_pk).update(
            error=f"{type(error).__name__}: {error}"[:2000],
            locked_until=None,
            next_attempt_at=retry_at,
        )
        if retry_at is None:
            alerts.error(
                "Stripe event %s (%s) failed (%d tries) and is no longer retried: %s. "
                "Fix the cause, then use 'Process again' in the admin.",
                event.event_id,
                event.type,
                failures,
                error,
            )
        else:
            logger.warning("Stripe event %s failed (try %d): %s", event.event_id, failures, error)
        return None
    StripeEvent.objects.filter(pk=event_pk).update(
        processed_at=timezone.now(),
        outcome=outcome[:300],
        error="",
        locked_until=None,
        next_attempt_at=None,
    )
    return outcome


def retry_stripe_events(limit: int = 200) -> int:
    """Every few minutes: queue again the events that failed and are due, and those whose
    task was lost before it ran."""
    now = timezone.now()
    due = (
        StripeEvent.objects.filter(processed_at__isnull=True, next_attempt_at__lte=now)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .order_by("next_attempt_at")[:limit]
    )
    queued = 0
    for event in due:
        with transaction.atomic():
            # Until this new task runs, the sweep leaves the event alone.
            StripeEvent.objects.filter(pk=event.pk).update(next_attempt_at=now + EVENT_LEASE)
            services.enqueue_event(event)
        queued += 1
    return queued
