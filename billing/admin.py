"""The ledger in the admin (read-only: transfers are never edited), and Stripe's side:
customers, purchases and incoming events, with a retry for events that failed."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from billing import services
from billing.models import Account, AuditRun, Purchase, StripeCustomer, StripeEvent, Transfer


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "kind",
        "workspace",
        "shard",
        "credits_posted",
        "debits_posted",
        "debits_pending",
        "credits_pending",
    )
    list_filter = ("kind",)
    search_fields = ("workspace__slug", "workspace__name")
    list_select_related = ("workspace",)


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "code",
        "phase",
        "amount",
        "debit_account",
        "credit_account",
        "reference",
    )
    list_filter = ("code", "phase")
    search_fields = (
        "id",
        "reference",
        "debit_account__workspace__slug",
        "credit_account__workspace__slug",
    )
    date_hierarchy = "created_at"
    list_select_related = ("debit_account__workspace", "credit_account__workspace")


@admin.register(AuditRun)
class AuditRunAdmin(ReadOnlyAdmin):
    list_display = ("ran_at", "ok", "accounts", "transfers")
    list_filter = ("ok",)
    search_fields = ("violations",)


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ("customer_id", "workspace", "created_at")
    search_fields = ("customer_id", "workspace__slug", "workspace__name")
    list_select_related = ("workspace",)


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    # Read-only: a purchase changes only by what Stripe reports (refund in Stripe's dashboard).
    list_display = (
        "created_at",
        "workspace",
        "pack_name",
        "credits",
        "amount",
        "status",
        "refunded",
        "credits_refunded",
        "credits_disputed",
        "dispute_status",
    )
    list_filter = ("status", "dispute_status", "pack_id")
    search_fields = (
        "id",
        "checkout_session_id",
        "payment_intent_id",
        "charge_id",
        "dispute_id",
        "workspace__slug",
        "workspace__name",
        "created_by__email",
    )
    date_hierarchy = "created_at"
    list_select_related = ("workspace",)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at",
        "type",
        "event_id",
        "state",
        "attempts",
        "processed_at",
        "outcome",
        "next_attempt_at",
    )
    list_filter = ("type", ("processed_at", admin.EmptyFieldListFilter), "livemode")
    search_fields = ("event_id", "type", "error", "outcome")
    date_hierarchy = "received_at"
    actions = ["process_again"]

    @admin.display(description="State")
    def state(self, obj: StripeEvent) -> str:
        return obj.state

    @admin.action(description="Process again now (unprocessed events)")
    def process_again(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        queued = 0
        for event in queryset.filter(processed_at__isnull=True):
            with transaction.atomic():
                StripeEvent.objects.filter(pk=event.pk).update(
                    locked_until=None, next_attempt_at=timezone.now() + services.EVENT_LEASE
                )
                services.enqueue_event(event)
            queued += 1
        skipped = queryset.count() - queued
        self.message_user(
            request,
            f"Queued {queued} event(s) for processing"
            + (f"; {skipped} already processed were left alone." if skipped else "."),
            messages.SUCCESS if queued else messages.WARNING,
        )
