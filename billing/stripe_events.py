"""What each Stripe event does. One handler per event type, run by the worker.

Events are triggers, not truths: Stripe delivers them at least once and in any
order, so each handler reads the current object from Stripe (through
`billing.services`) and converges on it. Every handler is idempotent on its own
key: the purchase's Checkout Session for payments, the charge's cumulative
refunded amount for refunds, the dispute's before and after for disputes.
A handler returns a short outcome for the admin; raising keeps the event for retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings

from billing import services

Handler = Callable[[dict[str, Any]], str]


def checkout_completed(obj: dict[str, Any]) -> str:
    """Paid at once (cards): grant. A delayed method: the purchase awaits its payment."""
    purchase = services.fulfil_checkout(str(obj["id"]))
    if purchase is None:
        return "ignored: not a Mochi Studio checkout"
    return f"purchase {purchase.pk}: {purchase.label}"


def async_payment_succeeded(obj: dict[str, Any]) -> str:
    """A delayed payment (bank debit…) arrived: grant, with the same key as any other path."""
    return checkout_completed(obj)


def async_payment_failed(obj: dict[str, Any]) -> str:
    purchase = services.mark_payment_failed(str(obj["id"]))
    if purchase is None:
        return "ignored: not a Mochi Studio checkout"
    return f"purchase {purchase.pk}: {purchase.label}"


def checkout_expired(obj: dict[str, Any]) -> str:
    purchase = services.mark_expired(str(obj["id"]))
    if purchase is None:
        return "ignored: not a Mochi Studio checkout"
    return f"purchase {purchase.pk}: {purchase.label}"


def charge_refunded(obj: dict[str, Any]) -> str:
    """Full or partial refund: take back credits in proportion to the cumulative refund."""
    return str(services.reconcile_charge(str(obj["id"])))


def dispute_created(obj: dict[str, Any]) -> str:
    """A chargeback: take back what refunds have not already taken of the pack."""
    return str(services.reconcile_charge(str(obj["charge"])))


def dispute_closed(obj: dict[str, Any]) -> str:
    """Won: the credits come back. Lost: they stay taken."""
    return str(services.reconcile_charge(str(obj["charge"])))


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": checkout_completed,
    "checkout.session.async_payment_succeeded": async_payment_succeeded,
    "checkout.session.async_payment_failed": async_payment_failed,
    "checkout.session.expired": checkout_expired,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": dispute_created,
    "charge.dispute.closed": dispute_closed,
}

# The events the webhook endpoint should be subscribed to (README: "Billing with Stripe").
EVENT_TYPES = tuple(HANDLERS)


def handle(event: dict[str, Any]) -> str:
    """Process one verified event; returns what it did. Unknown types are ignored."""
    handler = HANDLERS.get(str(event.get("type")))
    if handler is None:
        return "ignored: Mochi Studio does not use this event type"
    if bool(event.get("livemode")) != _live_key():
        # A test-mode event sent to a live endpoint (or the reverse) is about other money.
        return "ignored: the event's mode does not match STRIPE_SECRET_KEY"
    return handler(event["data"]["object"])


def _live_key() -> bool:
    return settings.STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
