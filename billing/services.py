"""Buying credits with Stripe: checkout, fulfilment, refunds and disputes.

Every paid cent becomes the credits it bought exactly once, whatever Stripe delivers
and in whatever order:

- A purchase's credits are granted by `fulfil_checkout`, which the webhook handlers
  and the success page all call. It reads the Checkout Session from Stripe (never
  trusting an event's copy), and grants under the purchase's row lock with a ledger
  key derived from the payment, so two callers racing grant once.
- Refunds and disputes are triggers: `reconcile_charge` reads the charge and its
  disputes as Stripe has them now and moves the ledger to what that state implies.
  Refunds only ever grow and a closed dispute never reopens, so a late or repeated
  event can never undo newer news. Each ledger move is keyed on what caused it
  (the charge and its cumulative refunded amount, the dispute's before and after),
  so a replay writes nothing twice.

No database transaction is ever held open across a Stripe call: read from Stripe,
then record the outcome in one short transaction.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_q.tasks import async_task

from billing import stripe_client, wallets
from billing.models import (
    DISPUTE_CLOSED,
    DISPUTE_RESOLVED_FOR_US,
    AccountKind,
    Code,
    Purchase,
    PurchaseStatus,
    StripeCustomer,
    StripeEvent,
)
from billing.packs import get_pack

if TYPE_CHECKING:
    from accounts.models import User, Workspace

logger = logging.getLogger(__name__)

# How long after receipt the retry sweep processes an event whose task was lost.
EVENT_SAFETY_NET_SECONDS = 600
# A worker holds an event while it runs; the queue kills a task after its timeout, so
# after that long the event is free again for the sweep (its worker died).
EVENT_LEASE = timedelta(seconds=settings.Q_CLUSTER["timeout"])


class CheckoutRefused(Exception):
    """The customer cannot start a checkout (unverified email, payments off)."""


class PurchaseMismatch(Exception):
    """Stripe's session does not describe the purchase we recorded: never grant on it."""


class PaymentNotSettled(Exception):
    """Refund or dispute news about a payment whose session is not paid (yet): try later."""


# --- Starting a checkout ----------------------------------------------------------------


def start_checkout(*, workspace: Workspace, user: User, pack_id: str) -> str:
    """Record a pending purchase of `pack_id`, open a Stripe Checkout Session for it and
    return the URL to send the customer to. Raises UnknownPack, CheckoutRefused or
    StripeServiceError (then nothing was charged and the purchase says why)."""
    pack = get_pack(pack_id)
    if not stripe_client.configured():
        raise CheckoutRefused(
            "Card payments are not set up on this server yet. Ask the operator for credits."
        )
    if not user.has_verified_email():
        raise CheckoutRefused(f"Confirm your email address {user.email} before buying credits.")
    purchase = Purchase.objects.create(
        workspace=workspace,
        created_by=user,
        pack_id=pack.id,
        pack_name=pack.name,
        credits=pack.credits,
        amount_cents=pack.price_cents,
        currency=pack.currency,
    )
    success_path = reverse("billing_success", args=[workspace.slug])
    cancel_path = reverse("billing_cancel", args=[workspace.slug])
    metadata = {
        "purchase_id": str(purchase.pk),
        "workspace_id": str(workspace.pk),
        "pack": pack.id,
        "credits": str(pack.credits),
    }
    try:
        customer_id = ensure_customer(workspace, user)
        session = stripe_client.create_checkout_session(
            customer_id=customer_id,
            purchase_id=str(purchase.pk),
            product_name=pack.description,
            amount_cents=pack.price_cents,
            currency=pack.currency,
            metadata=metadata,
            # Stripe puts the session's id in place of the placeholder.
            success_url=f"{settings.SITE_URL}{success_path}?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=f"{settings.SITE_URL}{cancel_path}?purchase={purchase.pk}",
            idempotency_key=f"checkout:{purchase.pk}",
        )
    except stripe_client.StripeServiceError as error:
        Purchase.objects.filter(pk=purchase.pk).update(
            status=PurchaseStatus.EXPIRED, last_error=error.message[:1000]
        )
        raise
    Purchase.objects.filter(pk=purchase.pk).update(checkout_session_id=session.id)
    return session.url


def ensure_customer(workspace: Workspace, user: User) -> str:
    """The workspace's Stripe Customer id, created on first use and then reused."""
    known = StripeCustomer.objects.filter(workspace=workspace).first()
    if known is not None:
        return known.customer_id
    customer_id = stripe_client.create_customer(
        name=workspace.name,
        email=user.email,
        workspace_id=workspace.pk,
        idempotency_key=f"customer:workspace:{workspace.pk}:user:{user.pk}",
    )
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(workspace=workspace, customer_id=customer_id)
    except IntegrityError:
        # Two first purchases raced: the other one's customer is the workspace's.
        return StripeCustomer.objects.get(workspace=workspace).customer_id
    return customer_id


def portal_url(workspace: Workspace) -> str:
    """A Stripe Customer Portal session (invoices, receipts, payment methods)."""
    customer = StripeCustomer.objects.filter(workspace=workspace).first()
    if customer is None:
        raise CheckoutRefused("This workspace has not bought credits yet: nothing to show.")
    return stripe_client.create_portal_session(
        customer_id=customer.customer_id,
        return_url=f"{settings.SITE_URL}{reverse('billing', args=[workspace.slug])}",
    )


# --- Fulfilment ---------------------------------------------------------------------------


def fulfil_checkout(session_id: str, *, workspace: Workspace | None = None) -> Purchase | None:
    """Bring the purchase of Checkout Session `session_id` up to date with Stripe and grant
    its credits once the session is paid. Safe to call any number of times, from the
    webhook and the success page at once. None when the session is not one of ours."""
    session = stripe_client.retrieve_checkout_session(session_id)
    purchase_pk = _uuid(session.client_reference_id) or _uuid(session.metadata.get("purchase_id"))
    with transaction.atomic():
        # The row lock makes "granted yet?" and the grant one step: racing callers queue.
        wanted = Q(checkout_session_id=session.id)
        if purchase_pk is not None:
            wanted |= Q(pk=purchase_pk)
        purchase = (
            Purchase.objects.select_for_update(of=("self",))
            .select_related("workspace")
            .filter(wanted)
            .first()
        )
        if purchase is None:
            return None
        if workspace is not None and purchase.workspace_id != workspace.pk:
            return None
        _check_session(purchase, session)
        purchase.checkout_session_id = session.id
        if session.payment_intent_id:
            purchase.payment_intent_id = session.payment_intent_id
        if session.payment_status in ("paid", "no_payment_required"):
            _grant(purchase, payment_key=session.payment_intent_id or session.id)
        elif session.status == "complete" and purchase.status == PurchaseStatus.PENDING:
            # A delayed method (bank debit…): the async events say how it ends.
            purchase.status = PurchaseStatus.AWAITING_PAYMENT
        elif session.status == "expired" and purchase.status == PurchaseStatus.PENDING:
            purchase.status = PurchaseStatus.EXPIRED
        purchase.save()
    return purchase


def _check_session(purchase: Purchase, session: stripe_client.CheckoutSession) -> None:
    problems = []
    if purchase.checkout_session_id not in (None, session.id):
        problems.append(f"session {session.id} is not {purchase.checkout_session_id}")
    reference = session.client_reference_id or session.metadata.get("purchase_id")
    if reference != str(purchase.pk):
        problems.append(f"the session names purchase {reference!r}")
    if session.amount_total != purchase.amount_cents or session.currency != purchase.currency:
        problems.append(
            f"the session charges {session.amount_total} {session.currency}, "
            f"the pack costs {purchase.amount_cents} {purchase.currency}"
        )
    if session.quantity != 1:
        problems.append(f"the session sells {session.quantity} packs")
    if problems:
        raise PurchaseMismatch(f"Purchase {purchase.pk}: " + "; ".join(problems))


def _grant(purchase: Purchase, *, payment_key: str) -> None:
    """Under the purchase's row lock: grant its credits if that has not happened yet."""
    if purchase.granted_at is not None:
        return
    # Keyed on the payment, not on whoever asked: every path names the same transfer.
    wallets.grant(
        purchase.workspace,
        purchase.credits,
        key=f"stripe:{payment_key}",
        code=Code.PURCHASE,
        source=AccountKind.PURCHASES,
        reference=f"purchase:{purchase.pk}",
    )
    purchase.status = PurchaseStatus.PAID
    purchase.granted_at = timezone.now()
    purchase.last_error = ""
    purchase_pk = purchase.pk
    transaction.on_commit(lambda: send_receipt(purchase_pk))


def mark_payment_failed(session_id: str) -> Purchase | None:
    """A delayed payment failed: the purchase ends without credits (unless already paid)."""
    with transaction.atomic():
        purchase = _locked(session_id)
        if purchase is None:
            return None
        if purchase.status in (PurchaseStatus.PENDING, PurchaseStatus.AWAITING_PAYMENT):
            purchase.status = PurchaseStatus.FAILED
            purchase.save(update_fields=["status", "updated_at"])
    return purchase


def _locked(session_id: str) -> Purchase | None:
    return Purchase.objects.select_for_update().filter(checkout_session_id=session_id).first()


def mark_expired(session_id: str) -> Purchase | None:
    """The customer never finished the checkout (Stripe expires a session after 24 h)."""
    with transaction.atomic():
        purchase = _locked(session_id)
        if purchase is None:
            return None
        if purchase.status == PurchaseStatus.PENDING:
            purchase.status = PurchaseStatus.EXPIRED
            purchase.save(update_fields=["status", "updated_at"])
    return purchase


# --- Refunds and disputes -----------------------------------------------------------------


@dataclass(frozen=True)
class Reconciled:
    purchase: Purchase | None
    changes: list[str]

    def __str__(self) -> str:
        if self.purchase is None:
            return "ignored: not a Mochi Studio purchase"
        return "; ".join(self.changes) or "no change"


def reconcile_charge(charge_id: str) -> Reconciled:
    """Take back (or give back) credits so the purchase matches its charge's refunds and
    disputes as Stripe has them now."""
    charge = stripe_client.retrieve_charge(charge_id)
    disputes = stripe_client.list_disputes(charge_id)
    purchase = _purchase_for_payment(charge.payment_intent_id)
    if purchase is None:
        return Reconciled(None, [])
    if purchase.granted_at is None and purchase.checkout_session_id:
        # Refund or dispute news before the payment's own: a charge exists, so the
        # session is paid; grant first so the clawback has credits to take.
        purchase = fulfil_checkout(purchase.checkout_session_id) or purchase
    if purchase.granted_at is None:
        raise PaymentNotSettled(
            f"Charge {charge_id} belongs to purchase {purchase.pk}, whose session is not paid."
        )
    dispute = disputes[-1] if disputes else None
    with transaction.atomic():
        purchase = (
            Purchase.objects.select_for_update(of=("self",))
            .select_related("workspace")
            .get(pk=purchase.pk)
        )
        changes = _converge(purchase, charge, dispute)
        purchase.save()
    return Reconciled(purchase, changes)


def _purchase_for_payment(payment_intent_id: str) -> Purchase | None:
    if not payment_intent_id:
        return None
    purchase = Purchase.objects.filter(payment_intent_id=payment_intent_id).first()
    if purchase is not None:
        return purchase
    # Not fulfilled yet, so we have not seen the PaymentIntent: its metadata names us.
    intent = stripe_client.retrieve_payment_intent(payment_intent_id)
    purchase_pk = _uuid(intent.metadata.get("purchase_id"))
    return Purchase.objects.filter(pk=purchase_pk).first() if purchase_pk else None


def _converge(
    purchase: Purchase, charge: stripe_client.Charge, dispute: stripe_client.Dispute | None
) -> list[str]:
    """Under the purchase's row lock: move its clawbacks to what the charge implies."""
    changes: list[str] = []
    credits = purchase.credits
    # Refunds only grow: an older view of the charge (a late event) changes nothing.
    paid_cents = charge.amount or purchase.amount_cents
    refunded_cents = max(purchase.refunded_cents, min(charge.amount_refunded, paid_cents))
    # In proportion to the money returned, rounded in the customer's favour; a full
    # refund takes back exactly the pack.
    refund_target = max(purchase.credits_refunded, credits * refunded_cents // paid_cents)
    # A closed dispute stays closed, whatever an older view of it says.
    dispute_status = purchase.dispute_status
    if dispute is not None and (
        dispute.id != purchase.dispute_id or dispute_status not in DISPUTE_CLOSED
    ):
        dispute_status = dispute.status
    standing = bool(dispute_status) and dispute_status not in DISPUTE_RESOLVED_FOR_US
    # A standing dispute (open or lost) takes back whatever refunds have not.
    dispute_target = credits - refund_target if standing else 0

    workspace, before = purchase.workspace, purchase.credits_disputed
    dispute_key = f"charge:{charge.id}:disputed:{before}->{dispute_target}"
    if dispute_target < before:
        amount = before - dispute_target
        wallets.give_back(workspace, amount, key=dispute_key, code=Code.DISPUTE_WON)
        changes.append(f"gave back {amount} credits (dispute {dispute_status})")
    if refund_target > purchase.credits_refunded:
        amount = refund_target - purchase.credits_refunded
        wallets.clawback(
            workspace,
            amount,
            key=f"charge:{charge.id}:amount_refunded:{refunded_cents}",
            code=Code.REFUND,
        )
        changes.append(f"took back {amount} credits (refunded {refunded_cents})")
    if dispute_target > before:
        wallets.clawback(workspace, dispute_target - before, key=dispute_key, code=Code.DISPUTE)
        changes.append(f"took back {dispute_target - before} credits (dispute {dispute_status})")

    purchase.charge_id = charge.id
    purchase.refunded_cents = refunded_cents
    purchase.credits_refunded = refund_target
    purchase.credits_disputed = dispute_target
    if dispute is not None:
        purchase.dispute_id = dispute.id
    purchase.dispute_status = dispute_status
    return changes


# --- Incoming events ----------------------------------------------------------------------


def record_event(event: dict[str, object]) -> StripeEvent | None:
    """Store a verified webhook event once and queue its processing in the same
    transaction. None when the event was already recorded (a redelivery)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            row = StripeEvent.objects.create(
                event_id=str(event["id"]),
                type=str(event["type"]),
                livemode=bool(event.get("livemode")),
                api_version=str(event.get("api_version") or "")[:40],
                payload=event,
                received_at=now,
                next_attempt_at=now + timedelta(seconds=EVENT_SAFETY_NET_SECONDS),
            )
            enqueue_event(row)
    except IntegrityError:
        if StripeEvent.objects.filter(event_id=str(event["id"])).exists():
            return None
        raise
    return row


def enqueue_event(row: StripeEvent) -> None:
    """Queue processing of `row` (inside the caller's transaction: they commit together)."""
    task_id = async_task(
        "billing.tasks.process_stripe_event",
        row.pk,
        task_name=f"stripe-event-{row.event_id}"[:100],
        group="stripe-events",
    )
    StripeEvent.objects.filter(pk=row.pk).update(task_id=str(task_id))


# --- Receipts -----------------------------------------------------------------------------


def send_receipt(purchase_pk: uuid.UUID) -> None:
    """Email the buyer (or, if they left, the owner) a receipt for a granted purchase."""
    purchase = Purchase.objects.select_related("workspace", "created_by").get(pk=purchase_pk)
    recipient = purchase.created_by
    if recipient is None or not recipient.is_active:
        owner = purchase.workspace.memberships.filter(role="owner").select_related("user").first()
        recipient = owner.user if owner else None
    if recipient is None:
        return
    context = {
        "purchase": purchase,
        "workspace": purchase.workspace,
        "recipient": recipient,
        "billing_url": f"{settings.SITE_URL}{reverse('billing', args=[purchase.workspace.slug])}",
    }
    message = EmailMultiAlternatives(
        subject=render_to_string("emails/receipt-subject.txt", context).strip(),
        body=render_to_string("emails/receipt-body.txt", context),
        to=[recipient.email],
    )
    message.attach_alternative(render_to_string("emails/receipt-body.html", context), "text/html")
    try:
        message.send()
    except Exception:
        # The credits are granted; Stripe sends its own receipt and the portal keeps it.
        logger.exception("Could not send the receipt for purchase %s", purchase_pk)


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None
