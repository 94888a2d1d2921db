from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from generations import webhooks
from generations.models import (
    Generation,
    IdempotencyRecord,
    UpstreamCallCount,
    UpstreamGate,
    WebhookDelivery,
)


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "workspace",
        "status",
        "phase",
        "cost",
        "upstream_mode",
        "prompt_start",
    )
    list_filter = ("status", "phase", "upstream_mode", "source")
    search_fields = ("id", "prompt", "upstream_request_id", "workspace__slug", "created_by__email")
    date_hierarchy = "created_at"
    list_select_related = ("workspace",)
    readonly_fields = [f.name for f in Generation._meta.fields]

    @admin.display(description="Prompt")
    def prompt_start(self, generation: Generation) -> str:
        return generation.prompt[:60]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UpstreamGate)
class UpstreamGateAdmin(admin.ModelAdmin):
    list_display = (
        "breaker",
        "breaker_reason",
        "breaker_opened_at",
        "breaker_probe_at",
        "blocked_until",
    )
    readonly_fields = ("recent_calls", "breaker_opened_at", "probe_generation")
    search_fields = ("breaker_reason",)
    actions = ["probe_now"]

    @admin.action(description="Let the next generation through as a probe")
    def probe_now(self, request: HttpRequest, queryset: QuerySet[UpstreamGate]) -> None:
        from django.utils import timezone

        queryset.filter(breaker=UpstreamGate.Breaker.OPEN).update(breaker_probe_at=timezone.now())
        messages.info(request, "The breaker will let one generation through as a probe.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ("key", "workspace", "state", "response_status", "created_at")
    list_filter = ("state",)
    search_fields = ("key", "workspace__slug", "generation__id")
    readonly_fields = [f.name for f in IdempotencyRecord._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("event_id", "event_type", "url", "attempts", "last_status", "delivered_at")
    list_filter = ("event_type",)
    search_fields = ("event_id", "url", "generation__id", "generation__workspace__slug")
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    actions = ["redeliver"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Redeliver (send the same message again now)")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset:
            webhooks.redeliver(delivery)
        self.message_user(request, f"Sending {queryset.count()} webhook(s) again.")


@admin.register(UpstreamCallCount)
class UpstreamCallCountAdmin(admin.ModelAdmin):
    list_display = ("minute", "operation", "outcome", "calls")
    list_filter = ("operation", "outcome")
    search_fields = ("operation", "outcome")
    date_hierarchy = "minute"
    readonly_fields = ("minute", "operation", "outcome", "calls")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
