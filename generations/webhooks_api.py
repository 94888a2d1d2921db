"""REST API endpoints for a generation's outgoing webhooks: the deliveries with every
attempt, and redelivery. The generation detail page shows and redelivers the same."""

from __future__ import annotations

import uuid
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role, Scope
from generations import webhooks
from generations.api import _generation_of
from generations.models import WebhookDelivery
from mochi_site.api import ApiError, WorkspaceAPIView, error_responses


def _stamp(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": str(delivery.pk),
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "url": delivery.url,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": _stamp(delivery.next_attempt_at)
        if delivery.state == "pending"
        else None,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error or None,
        "delivered_at": _stamp(delivery.delivered_at),
        "failed_at": _stamp(delivery.failed_at),
        "created_at": _stamp(delivery.created_at),
        "log": [
            {
                "at": entry.get("at"),
                "attempt": entry.get("attempt"),
                "status": entry.get("status"),
                "error": entry.get("error") or None,
                "duration_ms": entry.get("duration_ms"),
            }
            for entry in delivery.log
        ],
    }


class WebhookAttemptSerializer(serializers.Serializer):
    class Meta:
        ref_name = "WebhookAttempt"

    at = serializers.DateTimeField(help_text="When the attempt started.")
    attempt = serializers.IntegerField(help_text="Its place in the retry schedule (1 = first).")
    status = serializers.IntegerField(allow_null=True, help_text="The receiver's HTTP status.")
    error = serializers.CharField(allow_null=True, help_text="Why it failed, when it did.")
    duration_ms = serializers.IntegerField()


class WebhookDeliverySerializer(serializers.Serializer):
    """Documents `delivery_json`."""

    class Meta:
        ref_name = "WebhookDelivery"

    id = serializers.UUIDField()
    event_id = serializers.CharField(help_text="The `webhook-id` header, the same every attempt.")
    event_type = serializers.ChoiceField(choices=sorted(webhooks.EVENT_TYPES.values()))
    url = serializers.URLField()
    state = serializers.ChoiceField(choices=["pending", "delivered", "failed"])
    attempts = serializers.IntegerField(
        help_text="Attempts in the current schedule (a redelivery starts a new one)."
    )
    next_attempt_at = serializers.DateTimeField(allow_null=True, help_text="While pending.")
    last_status = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    failed_at = serializers.DateTimeField(
        allow_null=True, help_text="Every attempt of the schedule failed."
    )
    created_at = serializers.DateTimeField()
    log = WebhookAttemptSerializer(many=True, help_text="Every attempt, oldest first.")


class GenerationWebhooksApi(WorkspaceAPIView):
    scope = Scope.GENERATIONS_READ

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "WebhookDeliveryList"

        results = WebhookDeliverySerializer(many=True)

    @extend_schema(
        operation_id="list_generation_webhooks",
        summary="A generation's webhook deliveries",
        description="Each message sent about the generation, with every attempt.",
        responses={200: OutputSerializer, **error_responses(403, 404)},
    )
    def get(self, request: Request, generation_id: uuid.UUID) -> Response:
        generation = _generation_of(self, generation_id)
        deliveries = generation.webhook_deliveries.order_by("created_at")
        return Response({"results": [delivery_json(d) for d in deliveries]})


class WebhookRedeliverApi(WorkspaceAPIView):
    scope = Scope.GENERATIONS_WRITE
    minimum_role = Role.MEMBER

    @extend_schema(
        operation_id="redeliver_webhook",
        summary="Send a webhook again",
        description=(
            "Sends the same message again now (same `webhook-id` and body, a new "
            "timestamp and signature), whether it was delivered, failed or is still being "
            "retried; if that fails it is retried on the usual schedule."
        ),
        request=None,
        responses={202: WebhookDeliverySerializer, **error_responses(403, 404)},
    )
    def post(self, request: Request, generation_id: uuid.UUID, delivery_id: uuid.UUID) -> Response:
        generation = _generation_of(self, generation_id)
        delivery = generation.webhook_deliveries.filter(pk=delivery_id).first()
        if delivery is None:
            raise ApiError(404, "not_found", "No such webhook delivery of this generation.")
        return Response(delivery_json(webhooks.redeliver(delivery)), status=202)
