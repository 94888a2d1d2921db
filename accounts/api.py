"""REST API endpoints about the workspace itself: its summary and its webhook secret."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import services
from accounts.models import Role, Scope
from billing import wallets
from mochi_site.api import WorkspaceAPIView, error_responses


class WorkspaceApi(WorkspaceAPIView):
    scope = Scope.BILLING_READ

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Workspace"

        slug = serializers.SlugField()
        name = serializers.CharField()
        available = serializers.IntegerField(help_text="Credits that can be spent now.")
        pending = serializers.IntegerField(help_text="Credits held by unfinished generations.")
        max_running = serializers.IntegerField(
            help_text="Generations of this workspace at the model at once; the rest queue."
        )

    @extend_schema(
        operation_id="get_workspace",
        summary="The workspace and its balance",
        responses={200: OutputSerializer, **error_responses(403)},
    )
    def get(self, request: Request) -> Response:
        workspace = self.access.workspace
        balance = wallets.balance(workspace)
        return Response(
            {
                "slug": workspace.slug,
                "name": workspace.name,
                "available": balance.available,
                "pending": balance.held,
                "max_running": settings.MAX_RUNNING_PER_WORKSPACE,
            }
        )


class WebhookSecretApi(WorkspaceAPIView):
    """The secret that signs this workspace's webhooks: owners and admins only."""

    scope = Scope.GENERATIONS_WRITE
    minimum_role = Role.ADMIN

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "WebhookSecret"

        secret = serializers.CharField(help_text="whsec_… (Standard Webhooks).")

    @extend_schema(
        operation_id="get_webhook_secret",
        summary="Read the webhook signing secret",
        responses={200: OutputSerializer, **error_responses(403)},
    )
    def get(self, request: Request) -> Response:
        return Response({"secret": self.access.workspace.webhook_secret})

    @extend_schema(
        operation_id="rotate_webhook_secret",
        summary="Rotate the webhook signing secret",
        description="The previous secret keeps signing beside the new one for 24 hours.",
        request=None,
        responses={200: OutputSerializer, **error_responses(403)},
    )
    def post(self, request: Request) -> Response:
        workspace = services.rotate_webhook_secret(actor=self.access.membership)
        return Response({"secret": workspace.webhook_secret})
