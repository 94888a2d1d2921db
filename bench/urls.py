"""The site's URLs plus `/bench/constant`: a workspace API endpoint (API-key
authentication, scope check, both rate limits) that does no work, the ceiling that
bench/api.py measures the real endpoints against."""

from __future__ import annotations

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Scope
from mochi_site.api import WorkspaceAPIView
from mochi_site.urls import urlpatterns as site


class ConstantApi(WorkspaceAPIView):
    scope = Scope.GENERATIONS_READ

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


urlpatterns = [path("bench/constant", ConstantApi.as_view()), *site]
