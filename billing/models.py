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
