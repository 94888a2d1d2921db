"""The operator's view: the staff-only page `/ops/` and the Prometheus endpoint `/metrics`."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from ops import figures
from ops.metrics import OperatorCollector


@never_cache
@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Staff only. Signed out: the sign-in page; signed in without staff rights: 404, as
    for any page that does not exist for them."""
    if not (request.user.is_active and request.user.is_staff):
        raise Http404
    return render(request, "ops/dashboard.html", {"figures": figures.collect()})


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The figures in Prometheus's text format, for `Authorization: Bearer METRICS_TOKEN`."""
    if not settings.METRICS_TOKEN:
        raise Http404
    if not _bearer_matches(request, settings.METRICS_TOKEN):
        response = HttpResponse("A valid bearer token is required.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OperatorCollector())
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry), content_type=content_type)


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        supplied = ""
    # Digests of equal length, so the comparison takes the same time whatever was sent.
    return hmac.compare_digest(
        hashlib.sha256(supplied.strip().encode()).digest(),
        hashlib.sha256(token.encode()).digest(),
    )
