"""Site-wide pages: landing, pricing, the health check."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.access import CURRENT_WORKSPACE_SESSION_KEY
from accounts.models import Membership, Role
from billing.packs import credit_packs
from billing.pricing import duration_seconds, generation_cost, rate_description
from mochi_site.health import run_checks


def home(request: HttpRequest) -> HttpResponse:
    """Signed out: the landing page. Signed in: the workspace the user last opened."""
    if not request.user.is_authenticated:
        return render(
            request,
            "pages/landing.html",
            {"hide_brand_in_title": True, "signup_credits": settings.SIGNUP_CREDITS},
        )
    memberships = Membership.objects.live().filter(user=request.user).select_related("workspace")
    remembered = request.session.get(CURRENT_WORKSPACE_SESSION_KEY)
    chosen = (
        memberships.filter(workspace__slug=remembered).first()
        or memberships.filter(workspace__kind="personal").first()
        or memberships.first()
    )
    if chosen is None:
        return redirect("team_create")
    return redirect("workspace_home", chosen.workspace.slug)


def pricing(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "pages/pricing.html",
        {"pricing": _pricing_context(), "packs": credit_packs(), "buy_url": _buy_url(request)},
    )


def _buy_url(request: HttpRequest) -> str:
    """Where a visitor buys: signing up, or the billing page of a workspace they manage
    (the one they last opened, else their personal workspace)."""
    if not request.user.is_authenticated:
        return reverse("account_signup")
    managed = (
        Membership.objects.live()
        .filter(user=request.user, role__in=[Role.OWNER, Role.ADMIN])
        .select_related("workspace")
    )
    remembered = request.session.get(CURRENT_WORKSPACE_SESSION_KEY)
    chosen = (remembered and managed.filter(workspace__slug=remembered).first()) or managed.filter(
        workspace__kind="personal"
    ).first()
    return reverse("billing", args=[chosen.workspace.slug]) if chosen else reverse("home")


def _pricing_context() -> dict[str, object]:
    examples = [
        ("Default: 52 frames at 16 fps, 30 steps", 52, 16, 30),
        ("Short and quick: 31 frames at 24 fps, 20 steps", 31, 24, 20),
        ("Longest, best quality: 160 frames at 24 fps, 75 steps", 160, 24, 75),
    ]
    return {
        "signup_credits": settings.SIGNUP_CREDITS,
        "rate": rate_description(),
        "examples": [
            {
                "label": label,
                "seconds": duration_seconds(frames, fps),
                "cost": generation_cost(frames, steps),
            }
            for label, frames, fps, steps in examples
        ],
    }


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    down = [name for name, check in checks.items() if not check.ok]
    body = {
        "status": "unavailable" if down else "ok",
        "down": down,
        "checks": {name: {"ok": c.ok, **c.details} for name, c in checks.items()},
    }
    return JsonResponse(body, status=503 if down else 200)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for any URL nothing answers: the API's envelope under /api/, the page elsewhere."""
    if _is_api(request):
        return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            {"error": {"code": "server_error", "message": "Something went wrong on our side."}},
            status=500,
        )
    return defaults.server_error(request)
