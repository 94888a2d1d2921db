"""REST API endpoint for the workspace's ledger (its statement, newest first)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Scope
from billing import statement
from billing.models import Code, Phase
from mochi_site.api import (
    NewestFirst,
    PageQuerySerializer,
    WorkspaceAPIView,
    error_responses,
    validation_error,
)


class LedgerEntrySerializer(serializers.Serializer):
    class Meta:
        ref_name = "LedgerEntry"

    id = serializers.UUIDField()
    created_at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=Code.choices)
    description = serializers.CharField()
    phase = serializers.ChoiceField(choices=Phase.choices)
    amount = serializers.IntegerField()
    available_change = serializers.IntegerField()
    held_change = serializers.IntegerField()
    owed_change = serializers.IntegerField()
    member = serializers.EmailField(allow_null=True)
    reference = serializers.CharField(allow_blank=True)


class LedgerApi(WorkspaceAPIView):
    scope = Scope.BILLING_READ

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "LedgerPage"

        results = serializers.ListField(child=LedgerEntrySerializer())
        next = serializers.URLField(allow_null=True)
        previous = serializers.URLField(allow_null=True)

    @extend_schema(
        operation_id="list_ledger",
        summary="The workspace's ledger, newest first",
        parameters=[
            OpenApiParameter("kind", enum=Code.values, description="Only this kind."),
            PageQuerySerializer,
        ],
        responses={200: OutputSerializer, **error_responses(400, 403)},
    )
    def get(self, request: Request) -> Response:
        workspace = self.access.workspace
        filters = {}
        kind = request.query_params.get("kind")
        if kind is not None:
            if kind not in Code.values:
                raise validation_error({"kind": [f"One of {', '.join(Code.values)}."]})
            filters["code"] = kind
        pages = NewestFirst()
        rows = pages.paginate_queryset(statement.ledger_rows(workspace, filters), request, self)
        results = [statement.record(t, workspace.pk) for t in rows or []]
        return Response(
            {
                "results": results,
                "next": pages.get_next_link(),
                "previous": pages.get_previous_link(),
            }
        )
