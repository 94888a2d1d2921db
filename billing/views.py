"""The billing page (balance, packs, purchases, ledger, usage), Checkout and Stripe's webhook."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.csp import CSP
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.access import get_workspace_for_user
from accounts.models import Role, User
from billing import services, statement, stripe_client, wallets
from billing.forms import BuyForm, LedgerFilterForm
from billing.models import Purchase, StripeCustomer
from billing.packs import UnknownPack, credit_packs

logger = logging.getLogger(__name__)

LEDGER_PAGE_SIZE = 50
PURCHASES_SHOWN = 25


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


class _SeeOther(HttpResponseRedirect):
    # After a POST, the browser must GET the next page (Checkout, the portal).
    status_code = 303


@login_required
@require_GET
def billing(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    form = LedgerFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_bound and form.is_valid() else {}
    page = Paginator(statement.ledger_rows(workspace, filters), LEDGER_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    purchases = list(
        Purchase.objects.filter(workspace=workspace)
        .select_related("created_by")
        .order_by("-created_at")[:PURCHASES_SHOWN]
    )
    context = {
        "workspace": workspace,
        "membership": membership,
        "balance": wallets.balance(workspace),
        "packs": credit_packs(),
        "can_buy": stripe_client.configured(),
        "email_verified": _user(request).has_verified_email(),
        "has_customer": StripeCustomer.objects.filter(workspace=workspace).exists(),
        "purchases": purchases,
        "usage": statement.member_usage(workspace),
        "month_start": timezone.now().replace(day=1),
        "filter_form": form,
        "filtered": bool(filters),
        "page": page,
        "entries": statement.entries(page.object_list, workspace.pk),
    }
    response = render(request, "billing/billing.html", context)
    # The buy and portal forms answer with a redirect to Stripe's hosted pages, which
    # the browser checks against form-action: allow those origins on this page only.
    response._csp_config = {  # type: ignore[attr-defined]
        **settings.SECURE_CSP,
        "form-action": [CSP.SELF, *stripe_client.redirect_origins()],
    }
    return response


@login_required
@require_GET
def ledger_csv(request: HttpRequest, slug: str) -> HttpResponseBase:
    workspace, _ = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    form = LedgerFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        problems = "; ".join(str(e) for errors in form.errors.values() for e in errors)
        return HttpResponseBadRequest(f"Invalid filters: {problems}", content_type="text/plain")
    filters = form.cleaned_data if form.is_bound else {}
    rows = statement.ledger_rows(workspace, filters)
    response = StreamingHttpResponse(
        statement.csv_lines(rows, workspace.pk), content_type="text/csv; charset=utf-8"
    )
    filename = f"mochi-ledger-{workspace.slug}-{timezone.now():%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_POST
def checkout(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, _ = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    form = BuyForm(request.POST)
    pack_id = form.cleaned_data["pack"] if form.is_valid() else ""
    try:
        url = services.start_checkout(workspace=workspace, user=_user(request), pack_id=pack_id)
    except (UnknownPack, services.CheckoutRefused) as error:
        messages.error(request, str(error))
        return redirect("billing", slug)
    except stripe_client.StripeServiceError as error:
        logger.warning("Checkout for %s could not start: %s", workspace.slug, error)
        messages.error(
            request,
            "The payment service could not be reached, so nothing was charged. "
            "Please try again in a moment.",
        )
        return redirect("billing", slug)
    return _SeeOther(url)


@login_required
@require_GET
def checkout_success(request: HttpRequest, slug: str) -> HttpResponse:
    """Where Checkout sends the customer back: fulfil now rather than wait for the webhook."""
    workspace, _ = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    session_id = request.GET.get("session_id", "")
    if not Purchase.objects.filter(workspace=workspace, checkout_session_id=session_id).exists():
        messages.error(request, "We could not find that checkout in this workspace.")
        return redirect("billing", slug)
    try:
        purchase = services.fulfil_checkout(session_id, workspace=workspace)
    except (stripe_client.StripeServiceError, services.PurchaseMismatch) as error:
        logger.warning("Fulfilment on return from Checkout failed: %s", error)
        messages.info(
            request,
            "Thank you! Your payment is being confirmed; the credits appear here within "
            "a few minutes.",
        )
        return redirect("billing", slug)
    if purchase is not None and purchase.is_granted:
        messages.success(
            request, f"Thank you! {purchase.credits:,} credits were added to {workspace.name}."
        )
    else:
        messages.info(
            request,
            "Thank you! Your bank is confirming the payment; the credits are added as soon "
            "as it does, and we email you a receipt.",
        )
    return redirect("billing", slug)


@login_required
@require_GET
def checkout_cancel(request: HttpRequest, slug: str) -> HttpResponse:
    get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    messages.info(request, "Checkout canceled: nothing was charged.")
    return redirect("billing", slug)


@login_required
@require_POST
def portal(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, _ = get_workspace_for_user(request, slug, minimum=Role.ADMIN)
    try:
        url = services.portal_url(workspace)
    except services.CheckoutRefused as error:
        messages.error(request, str(error))
        return redirect("billing", slug)
    except stripe_client.StripeServiceError as error:
        logger.warning("Customer Portal for %s failed: %s", workspace.slug, error)
        messages.error(request, "The payment service could not be reached. Please try again.")
        return redirect("billing", slug)
    return _SeeOther(url)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Stripe's events: verified on the raw body, stored once, processed by a worker."""
    try:
        event = stripe_client.verify_webhook(request.body, request.headers.get("Stripe-Signature"))
    except stripe_client.InvalidWebhook as error:
        return HttpResponseBadRequest(f"{error}\n", content_type="text/plain")
    # A database failure raises here: the 500 makes Stripe deliver the event again.
    recorded = services.record_event(event)
    return HttpResponse(
        "recorded\n" if recorded else "already recorded\n", content_type="text/plain"
    )
