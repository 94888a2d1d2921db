"""The ledger in the admin: read-only, because transfers are never edited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.models import Account, AuditRun, Transfer


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
