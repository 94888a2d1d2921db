"""The credit ledger: accounts and immutable double-entry transfers.

Modelled on TigerBeetle. Every movement of credits is one `Transfer` row that
debits one account and credits another by the same positive, whole amount, so
an unbalanced entry cannot be written. Accounts cache four counters (posted
and pending debits and credits) that `billing.ledger.create_transfers`, the
only writer, updates in the same transaction as the transfer rows; the audit
replays the transfers and compares.

A customer's balance lives in the workspace's wallet (credit-normal):
``available = credits_posted - debits_posted - debits_pending``. Wallets carry
``debits_must_not_exceed_credits``, enforced under a row lock and again by a
CHECK constraint, so spending can never make available negative.
"""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Workspace


class AccountKind(models.TextChoices):
    WALLET = "wallet", "Wallet"
    RECEIVABLE = "receivable", "Owed by the workspace"
    PURCHASES = "purchases", "Purchases"
    GRANTS = "grants", "Grants"
    USAGE = "usage", "Usage"
    REFUNDS = "refunds", "Refunds and disputes"
    ADJUSTMENTS = "adjustments", "Adjustments"


# One account per workspace of each of these kinds.
WORKSPACE_KINDS = (AccountKind.WALLET, AccountKind.RECEIVABLE)
# System accounts: each is split into SYSTEM_SHARDS rows, picked by the wallet's
# id, so that transfers of different workspaces do not queue on one hot row.
# Reports and the audit add the shards up.
SYSTEM_KINDS = (
    AccountKind.PURCHASES,
    AccountKind.GRANTS,
    AccountKind.USAGE,
    AccountKind.REFUNDS,
    AccountKind.ADJUSTMENTS,
)
SYSTEM_SHARDS = 32


def wallet_account_id(workspace_id: int) -> int:
    return 2 * workspace_id


def receivable_account_id(workspace_id: int) -> int:
    return 2 * workspace_id + 1


def system_account_id(kind: AccountKind, shard: int) -> int:
    return -(100 * (SYSTEM_KINDS.index(kind) + 1) + shard)


def system_shard_for(wallet_id: int) -> int:
    return (wallet_id // 2) % SYSTEM_SHARDS


class Account(models.Model):
    # Ids are a function of what the account is (see the *_account_id helpers):
    # a workspace's wallet is 2·id and its receivable 2·id+1, system shards are
    # negative. No lookup is needed to name an account, and locking in id order
    # always takes the shared system shards first.
    id = models.BigIntegerField(primary_key=True)
    kind = models.CharField(max_length=12, choices=AccountKind.choices)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_accounts"
    )
    shard = models.PositiveSmallIntegerField(default=0)
    debits_must_not_exceed_credits = models.BooleanField(default=False)
    debits_pending = models.BigIntegerField(default=0)
    debits_posted = models.BigIntegerField(default=0)
    credits_pending = models.BigIntegerField(default=0)
    credits_posted = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "kind"],
                condition=Q(workspace__isnull=False),
                name="billing_account_one_per_workspace_kind",
            ),
            models.UniqueConstraint(
                fields=["kind", "shard"],
                condition=Q(workspace__isnull=True),
                name="billing_account_one_per_system_shard",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind="wallet", id=F("workspace_id") * 2)
                    | Q(kind="receivable", id=F("workspace_id") * 2 + 1)
                    | Q(id__lt=0, workspace__isnull=True)
                ),
                name="billing_account_id_matches_owner",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind__in=["wallet", "receivable"], workspace__isnull=False)
                    | Q(
                        kind__in=["purchases", "grants", "usage", "refunds", "adjustments"],
                        workspace__isnull=True,
                    )
                ),
                name="billing_account_kind_matches_owner",
            ),
            models.CheckConstraint(
                condition=Q(debits_pending__gte=0)
                & Q(debits_posted__gte=0)
                & Q(credits_pending__gte=0)
                & Q(credits_posted__gte=0),
                name="billing_account_counters_not_negative",
            ),
            # The backstop for any code path that forgets the balance rule.
            models.CheckConstraint(
                condition=Q(debits_must_not_exceed_credits=False)
                | Q(credits_posted__gte=F("debits_posted") + F("debits_pending")),
                name="billing_account_debits_within_credits",
            ),
        ]

    def __str__(self) -> str:
        if self.workspace_id:
            return f"{self.get_kind_display()} of workspace {self.workspace_id}"
        return f"{self.get_kind_display()} (shard {self.shard})"

    @property
    def available(self) -> int:
        """What a credit-normal account may still spend."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @property
    def owed(self) -> int:
        """What a debit-normal account (a workspace's receivable) is owed."""
        return self.debits_posted - self.credits_posted


class Phase(models.TextChoices):
    SINGLE = "single", "Posted"
    PENDING = "pending", "Hold"
    POST = "post", "Capture"
    VOID = "void", "Release"
    EXPIRE = "expire", "Expiry"


RESOLUTION_PHASES = (Phase.POST, Phase.VOID, Phase.EXPIRE)


class Code(models.TextChoices):
    """Why a transfer happened, for people reading the ledger."""

    SIGNUP = "signup", "Trial credits"
    GRANT = "grant", "Credits granted"
    PURCHASE = "purchase", "Credit purchase"
    HOLD = "hold", "Held for a generation"
    CAPTURE = "capture", "Generation charged"
    RELEASE = "release", "Hold released"
    EXPIRE = "expire", "Hold expired"
    REFUND = "refund", "Refund clawback"
    DISPUTE = "dispute", "Dispute clawback"
    DISPUTE_WON = "dispute_won", "Dispute won: credits returned"
    SHORTFALL = "shortfall", "Clawback shortfall owed"
    SETTLEMENT = "settlement", "Shortfall settled"
    ADJUSTMENT = "adjustment", "Adjustment"
    TRANSFER = "transfer", "Transfer between workspaces"


class TransferQuerySet(models.QuerySet["Transfer"]):
    def touching(self, *account_ids: int) -> TransferQuerySet:
        """Transfers that debit or credit any of these accounts (a workspace's statement)."""
        return self.filter(
            Q(debit_account_id__in=account_ids) | Q(credit_account_id__in=account_ids)
        )


class Transfer(models.Model):
    # Deterministic (UUIDv5 of what caused it): the id is the idempotency key.
    id = models.UUIDField(primary_key=True, editable=False)
    debit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    credit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    amount = models.BigIntegerField()
    phase = models.CharField(max_length=8, choices=Phase.choices)
    pending = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="resolutions",
        help_text="The hold that this capture, release or expiry resolves.",
    )
    timeout_at = models.DateTimeField(
        null=True, blank=True, help_text="Holds only: when the reaper may expire it."
    )
    code = models.CharField(max_length=12, choices=Code.choices)
    reference = models.CharField(
        max_length=200, blank=True, help_text="What caused it: a generation, a payment, …"
    )
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The member whose action spent the credits (for monthly caps).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = TransferQuerySet.as_manager()

    FIELDS_COMPARED_ON_REPLAY: ClassVar[tuple[str, ...]] = (
        "debit_account_id",
        "credit_account_id",
        "amount",
        "phase",
        "pending_id",
        "code",
        "reference",
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="billing_transfer_amount_positive"
            ),
            models.CheckConstraint(
                condition=~Q(debit_account=F("credit_account")),
                name="billing_transfer_two_accounts",
            ),
            models.CheckConstraint(
                condition=Q(phase__in=["post", "void", "expire"], pending__isnull=False)
                | Q(phase__in=["single", "pending"], pending__isnull=True),
                name="billing_transfer_resolution_names_its_hold",
            ),
            # A hold resolves at most once, whatever the code does.
            models.UniqueConstraint(
                fields=["pending"],
                condition=Q(pending__isnull=False),
                name="billing_transfer_hold_resolves_once",
            ),
        ]
        indexes = [
            # A workspace's ledger page and API, newest first (debit and credit side);
            # the debit side also serves a member's spend this month (monthly caps).
            models.Index(fields=["debit_account", "-created_at"], name="billing_tr_debit_recent"),
            models.Index(fields=["credit_account", "-created_at"], name="billing_tr_credit_recent"),
            # The reaper: holds past their timeout.
            models.Index(
                fields=["timeout_at"],
                condition=Q(phase="pending"),
                name="billing_tr_hold_timeout",
            ),
            # The operator's view: credits captured in a window (index-only on PostgreSQL).
            models.Index(
                fields=["created_at", "amount"],
                condition=Q(phase="post"),
                name="billing_tr_captures_recent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_code_display()}: {self.amount} ({self.get_phase_display()})"


class AuditRun(models.Model):
    """The result of one run of the ledger audit (the daily schedule and the command)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    ran_at = models.DateTimeField(default=timezone.now, db_index=True)
    ok = models.BooleanField()
    accounts = models.PositiveIntegerField(default=0)
    transfers = models.PositiveBigIntegerField(default=0)
    violations = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-ran_at"]

    def __str__(self) -> str:
        return f"Audit {self.ran_at:%Y-%m-%d %H:%M}: {'clean' if self.ok else 'VIOLATIONS'}"


# --- Stripe: customers, purchases of credit packs, incoming events ----------------------


class StripeCustomer(models.Model):
    """The workspace's Customer at Stripe: created with its first purchase, then reused."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.PROTECT, related_name="stripe_customer"
    )
    customer_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.customer_id} ({self.workspace})"


class PurchaseStatus(models.TextChoices):
    PENDING = "pending", "Checkout started"
    AWAITING_PAYMENT = "awaiting_payment", "Payment processing"
    PAID = "paid", "Paid"
    FAILED = "failed", "Payment failed"
    EXPIRED = "expired", "Not completed"


# Dispute statuses after which the money stays with the merchant: the credits return.
DISPUTE_RESOLVED_FOR_US = ("won", "warning_closed", "prevented")
DISPUTE_CLOSED = (*DISPUTE_RESOLVED_FOR_US, "lost")


class Purchase(models.Model):
    """One Stripe Checkout of one credit pack, from the click to its last refund."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="purchases")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who started the checkout.",
    )
    # What was bought, copied from the pack at the time: packs may change later.
    pack_id = models.CharField(max_length=40)
    pack_name = models.CharField(max_length=100)
    credits = models.PositiveIntegerField()
    amount_cents = models.PositiveIntegerField(help_text="In the currency's smallest unit.")
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=20, choices=PurchaseStatus.choices, default=PurchaseStatus.PENDING
    )
    checkout_session_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, default="")
    charge_id = models.CharField(max_length=255, blank=True, default="")
    refunded_cents = models.PositiveIntegerField(
        default=0, help_text="The charge's cumulative amount refunded, as last seen."
    )
    credits_refunded = models.PositiveIntegerField(
        default=0, help_text="Credits taken back for refunds."
    )
    credits_disputed = models.PositiveIntegerField(
        default=0, help_text="Credits taken back while a dispute stands."
    )
    dispute_id = models.CharField(max_length=255, blank=True, default="")
    dispute_status = models.CharField(max_length=40, blank=True, default="")
    granted_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # Refunds and disputes find their purchase by its PaymentIntent.
            models.UniqueConstraint(
                fields=["payment_intent_id"],
                condition=~Q(payment_intent_id=""),
                name="billing_purchase_one_per_payment",
            ),
            models.CheckConstraint(
                condition=Q(credits__gt=0) & Q(amount_cents__gt=0),
                name="billing_purchase_sells_something",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in PurchaseStatus]),
                name="billing_purchase_status_valid",
            ),
            # Credits are granted exactly when the purchase is paid.
            models.CheckConstraint(
                condition=Q(status="paid", granted_at__isnull=False)
                | (~Q(status="paid") & Q(granted_at__isnull=True)),
                name="billing_purchase_paid_means_granted",
            ),
            models.CheckConstraint(
                condition=Q(credits__gte=F("credits_refunded") + F("credits_disputed")),
                name="billing_purchase_takes_back_at_most_its_credits",
            ),
        ]
        indexes = [
            # The billing page: a workspace's purchases, newest first.
            models.Index(fields=["workspace", "-created_at"], name="billing_purchase_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.pack_name} ({self.credits} credits) for {self.workspace}: {self.status}"

    @property
    def amount(self) -> str:
        from billing.packs import format_money

        return format_money(self.amount_cents, self.currency)

    @property
    def refunded(self) -> str:
        from billing.packs import format_money

        return format_money(self.refunded_cents, self.currency)

    @property
    def credits_clawed_back(self) -> int:
        return self.credits_refunded + self.credits_disputed

    @property
    def is_granted(self) -> bool:
        return self.granted_at is not None

    @property
    def label(self) -> str:
        """The state a customer reads: payment, then refunds and disputes."""
        if self.status != PurchaseStatus.PAID:
            return self.get_status_display()
        if self.dispute_status == "lost":
            return "Dispute lost"
        if self.dispute_status and self.dispute_status not in DISPUTE_CLOSED:
            return "Disputed"
        if self.refunded_cents >= self.amount_cents:
            return "Refunded"
        if self.refunded_cents:
            return "Partly refunded"
        return "Paid"

    @property
    def badge(self) -> str:
        """The CSS badge for `label`."""
        label = self.label
        if label == "Paid":
            return "badge-ok"
        if label in ("Checkout started", "Payment processing"):
            return "badge-info"
        if label in ("Partly refunded", "Refunded", "Not completed"):
            return "badge-warn"
        return "badge-bad"


class StripeEvent(models.Model):
    """A webhook event from Stripe, stored once under its id and processed by a worker."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    api_version = models.CharField(max_length=40, blank=True, default="")
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=300, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    # A worker processing the event holds it until then (see billing.tasks).
    locked_until = models.DateTimeField(null=True, blank=True)
    # When the sweep should process it (again) if it is still unprocessed by then.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    task_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        indexes = [
            # The retry sweep: unprocessed events that are due.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(processed_at__isnull=True),
                name="billing_stripeevent_due",
            ),
            models.Index(fields=["-received_at"], name="billing_stripeevent_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"

    @property
    def state(self) -> str:
        if self.processed_at:
            return "processed"
        return "failed" if self.error else "pending"
