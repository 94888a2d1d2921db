"""The only module that talks to Stripe.

Every call goes through one `stripe.StripeClient` pinned to `API_VERSION` (the
version stripe-python 16.1 was generated for; create the webhook endpoint with
the same version so event payloads have the shapes this code reads) and pointed
at `STRIPE_API_BASE` (a fake Stripe in the tests). Creates carry an idempotency
key derived from our own row, so a retried request can never make a second
Customer or Checkout Session. Answers come back as small plain records, and
every failure is one `StripeServiceError` that says whether trying again may help.

Webhook signatures are checked here too, with Stripe's scheme and its 300 s
tolerance for replays.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import stripe
from django.conf import settings

API_VERSION = "2026-10-28.endive"
WEBHOOK_TOLERANCE_SECONDS = 300
DEFAULT_API_BASE = "https://api.stripe.com"
# Where Stripe's hosted pages live: the billing page's forms redirect there.
HOSTED_ORIGINS = ("https://checkout.stripe.com", "https://billing.stripe.com")
# (connect, read) seconds; the client retries network errors and 409/429/5xx itself.
TIMEOUT = (5.0, 30.0)
NETWORK_RETRIES = 2


class StripeServiceError(Exception):
    """A Stripe call failed. `retryable`: the same call may work later (network, 429, 5xx)."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        self.message = message
        self.retryable = retryable
        self.status = status
        super().__init__(message)


class NotConfigured(StripeServiceError):
    def __init__(self) -> None:
        super().__init__(
            "Card payments are not set up on this server (STRIPE_SECRET_KEY is unset).",
            retryable=False,
        )


class InvalidWebhook(Exception):
    """A webhook whose signature, timestamp or body cannot be trusted."""


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    status: str  # open | complete | expired
    payment_status: str  # paid | unpaid | no_payment_required
    payment_intent_id: str
    customer_id: str
    client_reference_id: str
    metadata: dict[str, str]
    amount_total: int
    currency: str
    quantity: int = 1


@dataclass(frozen=True)
class Charge:
    id: str
    amount: int
    amount_refunded: int
    currency: str
    payment_intent_id: str
    disputed: bool


@dataclass(frozen=True)
class Dispute:
    id: str
    charge_id: str
    status: str
    amount: int
    created: int


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    metadata: dict[str, str] = field(default_factory=dict)
    latest_charge_id: str = ""


def configured() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def redirect_origins() -> list[str]:
    """Origins the browser is sent to from our forms (Checkout, the Customer Portal)."""
    base = settings.STRIPE_API_BASE.rstrip("/")
    if base == DEFAULT_API_BASE:
        return list(HOSTED_ORIGINS)
    parts = urlsplit(base)
    return [f"{parts.scheme}://{parts.netloc}"]


# --- The client -----------------------------------------------------------------------

_local = threading.local()


def client() -> stripe.StripeClient:
    """One client per thread and configuration (the HTTP session is reused)."""
    if not configured():
        raise NotConfigured
    config = (settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)
    cached = getattr(_local, "client", None)
    if cached is None or cached[0] != config:
        instance = stripe.StripeClient(
            settings.STRIPE_SECRET_KEY,
            stripe_version=API_VERSION,
            base_addresses={"api": settings.STRIPE_API_BASE},
            max_network_retries=NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=TIMEOUT),
        )
        cached = (config, instance)
        _local.client = cached
    return cached[1]


def _failure(error: stripe.StripeError) -> StripeServiceError:
    status = error.http_status
    retryable = isinstance(error, stripe.APIConnectionError | stripe.RateLimitError) or (
        status is not None and (status >= 500 or status in (409, 429))
    )
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        retryable = False
    detail = error.user_message or str(error) or type(error).__name__
    return StripeServiceError(f"Stripe: {detail}", retryable=retryable, status=status)


def _data(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _id(value: Any) -> str:
    """An expandable field: an id, an expanded object, or nothing."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value)


def _metadata(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


# --- Customers and the Customer Portal ------------------------------------------------


def create_customer(*, name: str, email: str, workspace_id: int, idempotency_key: str) -> str:
    try:
        customer = client().v1.customers.create(
            params={
                "name": name,
                "email": email,
                "metadata": {"workspace_id": str(workspace_id)},
            },
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as error:
        raise _failure(error) from error
    return str(customer.id)


def create_portal_session(*, customer_id: str, return_url: str) -> str:
    """A Customer Portal session (invoices, receipts, payment methods); returns its URL."""
    try:
        session = client().v1.billing_portal.sessions.create(
            params={"customer": customer_id, "return_url": return_url}
        )
    except stripe.StripeError as error:
        raise _failure(error) from error
    return str(session.url)


# --- Checkout -------------------------------------------------------------------------


def create_checkout_session(
    *,
    customer_id: str,
    purchase_id: str,
    product_name: str,
    amount_cents: int,
    currency: str,
    metadata: dict[str, str],
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
) -> CheckoutSession:
    """A one-time payment for one credit pack. The metadata goes on the session and on
    its PaymentIntent, because refunds and disputes arrive with the charge, not the session."""
    try:
        session = client().v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "customer": customer_id,
                "client_reference_id": purchase_id,
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": currency,
                            "unit_amount": amount_cents,
                            "product_data": {"name": product_name},
                        },
                    }
                ],
                "metadata": metadata,
                "payment_intent_data": {"metadata": metadata},
                # An invoice per purchase, so receipts appear in the Customer Portal.
                "invoice_creation": {"enabled": True},
                "success_url": success_url,
                "cancel_url": cancel_url,
            },
            options={"idempotency_key": idempotency_key},
        )
    except stripe.StripeError as error:
        raise _failure(error) from error
    return _session(_data(session))


def retrieve_checkout_session(session_id: str) -> CheckoutSession:
    """The session as Stripe has it now, with its line items."""
    try:
        session = client().v1.checkout.sessions.retrieve(
            session_id, params={"expand": ["line_items"]}
        )
    except stripe.StripeError as error:
        raise _failure(error) from error
    return _session(_data(session))


def _session(data: dict[str, Any]) -> CheckoutSession:
    items = (data.get("line_items") or {}).get("data") or []
    return CheckoutSession(
        id=str(data["id"]),
        url=str(data.get("url") or ""),
        status=str(data.get("status") or ""),
        payment_status=str(data.get("payment_status") or ""),
        payment_intent_id=_id(data.get("payment_intent")),
        customer_id=_id(data.get("customer")),
        client_reference_id=str(data.get("client_reference_id") or ""),
        metadata=_metadata(data.get("metadata")),
        amount_total=int(data.get("amount_total") or 0),
        currency=str(data.get("currency") or "").lower(),
        quantity=sum(int(item.get("quantity") or 0) for item in items) if items else 1,
    )


# --- Payments, refunds, disputes ------------------------------------------------------


def retrieve_charge(charge_id: str) -> Charge:
    try:
        charge = client().v1.charges.retrieve(charge_id)
    except stripe.StripeError as error:
        raise _failure(error) from error
    data = _data(charge)
    return Charge(
        id=str(data["id"]),
        amount=int(data.get("amount") or 0),
        amount_refunded=int(data.get("amount_refunded") or 0),
        currency=str(data.get("currency") or "").lower(),
        payment_intent_id=_id(data.get("payment_intent")),
        disputed=bool(data.get("disputed")),
    )


def list_disputes(charge_id: str) -> list[Dispute]:
    """Every dispute of a charge (at most a few), oldest first."""
    try:
        page = client().v1.disputes.list(params={"charge": charge_id, "limit": 100})
    except stripe.StripeError as error:
        raise _failure(error) from error
    disputes = [
        Dispute(
            id=str(d["id"]),
            charge_id=_id(d.get("charge")),
            status=str(d.get("status") or ""),
            amount=int(d.get("amount") or 0),
            created=int(d.get("created") or 0),
        )
        for d in (_data(page).get("data") or [])
    ]
    return sorted(disputes, key=lambda d: (d.created, d.id))


def retrieve_payment_intent(payment_intent_id: str) -> PaymentIntent:
    try:
        intent = client().v1.payment_intents.retrieve(payment_intent_id)
    except stripe.StripeError as error:
        raise _failure(error) from error
    data = _data(intent)
    return PaymentIntent(
        id=str(data["id"]),
        metadata=_metadata(data.get("metadata")),
        latest_charge_id=_id(data.get("latest_charge")),
    )


# --- Webhooks -------------------------------------------------------------------------


def verify_webhook(payload: bytes, signature_header: str | None) -> dict[str, Any]:
    """The event in a webhook body whose `Stripe-Signature` proves it came from Stripe
    within the last 300 s; `InvalidWebhook` otherwise (or when the body is not an event)."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise InvalidWebhook("No webhook secret is configured (STRIPE_WEBHOOK_SECRET).")
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature_header, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as error:
        raise InvalidWebhook(str(error).split(". ")[0]) from None
    except UnicodeDecodeError:
        raise InvalidWebhook("The body is not UTF-8.") from None
    try:
        event = json.loads(payload)
    except ValueError:
        raise InvalidWebhook("The body is not JSON.") from None
    if not (
        isinstance(event, dict)
        and event.get("object") == "event"
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
        and isinstance((event.get("data") or {}).get("object"), dict)
    ):
        raise InvalidWebhook("The body is not a Stripe event.")
    return event
