"""The pages customers use: create, watch, the gallery, sharing, and private files."""

from __future__ import annotations

import mimetypes
import re
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.db.models import Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_date
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.access import get_workspace_for_user
from accounts.models import Membership, Role, User, Workspace
from billing import wallets
from billing.pricing import duration_seconds, generation_cost
from generations import services, storage, webhooks
from generations.models import Generation, Phase, Source, Status
from generations.params import LIMITS, MAX_PROMPT_CHARS, InvalidParams, parse_params
from mochi_site import streaming

PAGE_SIZE = 24
# Frame counts Mochi renders natively ((frames - 1) divisible by 6), offered as lengths.
DURATION_PRESETS = (25, 49, 73, 97, 121, 145)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _generation(workspace: Workspace, generation_id: uuid.UUID) -> Generation:
    """A generation of this workspace (another workspace's id, or a deleted one, is a 404).

    Found by its id alone and then checked, so that the lookup is always the primary key's:
    given the workspace too, a planner without fresh statistics may walk the workspace's
    whole history to find one row."""
    generation = Generation.objects.select_related("created_by").filter(pk=generation_id).first()
    if generation is None or generation.workspace_id != workspace.pk or generation.deleted_at:
        raise Http404("No such generation.")
    return generation


# --- Create --------------------------------------------------------------------------


def _affordability(workspace: Workspace, membership: Membership, cost: int) -> dict[str, Any]:
    balance = wallets.balance(workspace)
    context: dict[str, Any] = {"balance": balance, "cost": cost, "problem": ""}
    if balance.suspended:
        context["problem"] = (
            f"Spending is paused: {balance.owed} credits taken back after a refund are still owed."
        )
    elif cost > balance.available:
        context["problem"] = f"This costs {cost} credits; {balance.available} are available."
    if workspace.is_team and membership.monthly_cap is not None:
        used = wallets.member_spend_this_month(
            wallets.wallet_account_id(workspace.pk), membership.user_id
        )
        context["cap"] = {"limit": membership.monthly_cap, "used": used}
        if not context["problem"] and used + cost > membership.monthly_cap:
            left = max(membership.monthly_cap - used, 0)
            context["problem"] = (
                f"This passes your monthly limit in this team ({left} credits left)."
            )
    return context


def _initial(request: HttpRequest, workspace: Workspace) -> dict[str, Any]:
    """The form's starting values: Segmind's defaults, or a generation being remixed."""
    values: dict[str, Any] = {
        "prompt": "",
        "negative_prompt": "",
        **{name: limit.default for name, limit in LIMITS.items()},
        "seed": "",
        "seed_locked": False,
    }
    remix = request.GET.get("remix", "")
    try:
        source = Generation.objects.for_workspace(workspace).filter(pk=uuid.UUID(remix)).first()
    except ValueError:
        source = None
    if source is not None:
        values.update({name: getattr(source, name) for name in Generation.FIELDS_SENT_UPSTREAM})
        values["seed_locked"] = True
        values["remix_of"] = source
    return values


@login_required
def create(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug)
    values = _initial(request, workspace)
    return _render_create(request, workspace, membership, values, {})


def _render_create(
    request: HttpRequest,
    workspace: Workspace,
    membership: Membership,
    values: dict[str, Any],
    errors: dict[str, list[str]],
    status: int = 200,
) -> HttpResponse:
    frames, steps, fps = _numbers(values)
    recent = list(Generation.objects.for_workspace(workspace).order_by("-created_at", "-pk")[:6])
    return render(
        request,
        "generations/create.html",
        {
            "workspace": workspace,
            "membership": membership,
            "values": values,
            "errors": errors,
            "limits": LIMITS,
            "max_prompt": MAX_PROMPT_CHARS,
            "presets": [
                {"frames": n, "seconds": duration_seconds(n, fps or 16)} for n in DURATION_PRESETS
            ],
            "price": _price_context(workspace, membership, frames, steps, fps),
            "recent": _with_media(recent, posters_only=True),
        },
        status=status,
    )


def _numbers(values: dict[str, Any]) -> tuple[int, int, float]:
    """Frames, steps and fps for the live price, clamped into range; defaults when unreadable."""

    def read(name: str) -> float:
        limit = LIMITS[name]
        try:
            number = float(values.get(name) or limit.default)
        except (TypeError, ValueError):
            number = limit.default
        return min(max(number, limit.minimum), limit.maximum)

    return int(read("frames")), int(read("steps")), read("fps")


def _price_context(
    workspace: Workspace, membership: Membership, frames: int, steps: int, fps: float
) -> dict[str, Any]:
    cost = generation_cost(frames, steps)
    return {
        "seconds": duration_seconds(frames, fps),
        "frames": frames,
        "steps": steps,
        **_affordability(workspace, membership, cost),
    }


@login_required
@require_POST
def estimate(request: HttpRequest, slug: str) -> HttpResponse:
    """The live price beside the create form (htmx), from the same pricing function."""
    workspace, membership = get_workspace_for_user(request, slug)
    frames, steps, fps = _numbers(request.POST.dict())
    return render(
        request,
        "generations/_price.html",
        {
            "workspace": workspace,
            "membership": membership,
            "price": _price_context(workspace, membership, frames, steps, fps),
        },
    )


@login_required
@require_POST
def submit(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug, minimum=Role.MEMBER)
    data = request.POST.dict()
    if not data.get("seed_locked"):
        data["seed"] = ""  # unlocked: a new seed every time
    values = {**data, "seed_locked": bool(data.get("seed_locked"))}
    try:
        params = parse_params(data, strict_types=False)
        generation = services.submit_generation(
            workspace=workspace,
            params=params,
            user=_user(request),
            membership=membership,
            source=Source.WEB,
        )
    except InvalidParams as invalid:
        return _render_create(request, workspace, membership, values, invalid.fields, status=400)
    except services.SubmitRefused as refused:
        messages.error(request, refused.message)
        return _render_create(request, workspace, membership, values, {}, status=refused.status)
    return redirect("generation_detail", workspace.slug, generation.pk)


# --- Watch one generation ---------------------------------------------------------------


def _with_media(generations: list[Generation], *, posters_only: bool = False) -> list[Generation]:
    """Attach short-lived links (computed after the access check, never stored)."""
    posters = iter(storage.signed_urls([g.poster_key for g in generations if g.poster_key]))
    for generation in generations:
        generation.poster_url = next(posters) if generation.poster_key else ""  # type: ignore[attr-defined]
        if not posters_only:
            generation.video_url = (  # type: ignore[attr-defined]
                storage.signed_url(generation.video_key) if generation.video_key else ""
            )
    return generations


def _as_cards(workspace: Workspace, generations: list[Generation]) -> list[Generation]:
    """Gallery cards: each with its poster link and the link to its page. The page's
    pattern is reversed once for all the cards: they differ only by the id at its end."""
    probe = str(uuid.UUID(int=0))
    head, _, tail = reverse("generation_detail", args=[workspace.slug, probe]).rpartition(probe)
    for generation in generations:
        generation.detail_url = f"{head}{generation.pk}{tail}"  # type: ignore[attr-defined]
    return _with_media(generations, posters_only=True)


def _detail_context(
    request: HttpRequest, workspace: Workspace, membership: Membership, generation: Generation
) -> dict[str, Any]:
    _with_media([generation])
    share_url = (
        request.build_absolute_uri(reverse("shared", args=[generation.share_token]))
        if generation.share_token
        else ""
    )
    return {
        "workspace": workspace,
        "membership": membership,
        "generation": generation,
        "progress": services.progress(generation),
        "share_url": share_url,
        "poll_seconds": 2,
        "max_running": settings.MAX_RUNNING_PER_WORKSPACE,
        "deliveries": (
            list(generation.webhook_deliveries.order_by("created_at"))
            if generation.webhook_url
            else []
        ),
    }


@login_required
def detail(request: HttpRequest, slug: str, generation_id: uuid.UUID) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug)
    generation = _generation(workspace, generation_id)
    return render(
        request,
        "generations/detail.html",
        _detail_context(request, workspace, membership, generation),
    )


@never_cache
@login_required
@require_GET
def live(request: HttpRequest, slug: str, generation_id: uuid.UUID) -> HttpResponse:
    """The detail page's live part, polled by htmx until the generation finishes."""
    workspace, membership = get_workspace_for_user(request, slug)
    generation = _generation(workspace, generation_id)
    return render(
        request,
        "generations/_live.html",
        _detail_context(request, workspace, membership, generation),
    )


def _act(request: HttpRequest, slug: str, generation_id: uuid.UUID) -> tuple[Workspace, Generation]:
    """Actions that change a generation need the member role (viewers only look)."""
    workspace, _ = get_workspace_for_user(request, slug, minimum=Role.MEMBER)
    return workspace, _generation(workspace, generation_id)


@login_required
@require_POST
def cancel(request: HttpRequest, slug: str, generation_id: uuid.UUID) -> HttpResponse:
    workspace, generation = _act(request, slug, generation_id)
    try:
        services.cancel_generation(generation)
    except services.NotCancelable:
        messages.info(request, "It had already finished.")
    else:
        messages.success(request, "Canceled. You were not charged.")
    return redirect("generation_detail", workspace.slug, generation.pk)


@login_required
@require_POST
def delete(request: HttpRequest, slug: str, generation_id: uuid.UUID) -> HttpResponse:
    workspace, generation = _act(request, slug, generation_id)
    services.delete_generation(generation)
    messages.success(request, "The video was deleted.")
    return redirect("generation_list", workspace.slug)


@login_required
@require_POST
def redeliver_webhook(
    request: HttpRequest, slug: str, generation_id: uuid.UUID, delivery_id: uuid.UUID
) -> HttpResponse:
    workspace, generation = _act(request, slug, generation_id)
    delivery = get_object_or_404(generation.webhook_deliveries, pk=delivery_id)
    webhooks.redeliver(delivery)
    messages.success(request, "The webhook is being sent again.")
    return redirect("generation_detail", workspace.slug, generation.pk)


@login_required
@require_POST
def favorite(request: HttpRequest, slug: str, generation_id: uuid.UUID) -> HttpResponse:
    workspace, generation = _act(request, slug, generation_id)
    services.set_favorite(generation, request.POST.get("favorite") == "1")
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request,
            "generations/_favorite.html",
            {"workspace": workspace, "generation": generation},
        )
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("generation_detail", args=[slug, generation.pk])  # never off-site
    return redirect(back)


@login_required
@require_POST
def share(request: HttpRequest, slug: str, generation_id: uuid.UUID) -> HttpResponse:
    workspace, generation = _act(request, slug, generation_id)
    if generation.status != Status.SUCCEEDED:
        messages.error(request, "Only finished videos can be shared.")
    elif request.POST.get("action") == "revoke":
        services.unshare(generation)
        messages.success(request, "The share link no longer works.")
    else:
        services.share(generation)
        messages.success(request, "Anyone with the link can now watch this video.")
    return redirect("generation_detail", workspace.slug, generation.pk)


@login_required
@require_GET
def download(request: HttpRequest, slug: str, generation_id: uuid.UUID) -> HttpResponse:
    workspace, _ = get_workspace_for_user(request, slug)
    generation = _generation(workspace, generation_id)
    if not generation.video_key:
        raise Http404("This generation has no video.")
    url = storage.signed_url(
        generation.video_key, filename=storage.download_name(generation.prompt)
    )
    return HttpResponseRedirect(url)


# --- The gallery ------------------------------------------------------------------------


def _cursor(value: str) -> tuple[datetime, uuid.UUID] | None:
    try:
        stamp, _, ident = value.partition("_")
        return datetime.fromisoformat(stamp), uuid.UUID(ident)
    except ValueError:
        return None


def _cursor_of(generation: Generation) -> str:
    return f"{generation.created_at.isoformat()}_{generation.pk}"


@login_required
def gallery(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, membership = get_workspace_for_user(request, slug)
    query = Generation.objects.for_workspace(workspace)
    filters = {
        "status": request.GET.get("status", ""),
        "member": request.GET.get("member", ""),
        "since": request.GET.get("since", ""),
        "until": request.GET.get("until", ""),
        "favorites": request.GET.get("favorites", ""),
        "q": request.GET.get("q", "").strip(),
    }
    if filters["status"] in Status.values:
        query = query.filter(status=filters["status"])
    if filters["member"].isdigit():
        query = query.filter(created_by_id=int(filters["member"]))
    if since := parse_date(filters["since"]):
        query = query.filter(created_at__gte=datetime.combine(since, time.min, tzinfo=UTC))
    if until := parse_date(filters["until"]):
        end = datetime.combine(until, time.min, tzinfo=UTC) + timedelta(days=1)
        query = query.filter(created_at__lt=end)
    if filters["favorites"]:
        query = query.filter(is_favorite=True)
    if filters["q"]:
        query = query.filter(prompt__icontains=filters["q"])

    # Keyset pagination: a page costs the same whatever its depth in 100,000 videos. The
    # plain bound on created_at is implied by the other condition; it is there because an
    # index can start reading at it, where an OR would be checked on every newer row.
    before, after = _cursor(request.GET.get("before", "")), _cursor(request.GET.get("after", ""))
    if after:
        rows = list(
            query.filter(created_at__gte=after[0])
            .filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], pk__gt=after[1]))
            .order_by("created_at", "pk")[: PAGE_SIZE + 1]
        )
        has_newer = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        has_older = True
    else:
        if before:
            query = query.filter(created_at__lte=before[0]).filter(
                Q(created_at__lt=before[0]) | Q(created_at=before[0], pk__lt=before[1])
            )
        rows = list(query.order_by("-created_at", "-pk")[: PAGE_SIZE + 1])
        has_older = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        has_newer = before is not None
    positions = services.queue_positions(rows)
    for generation in rows:
        generation.queue_position = positions.get(generation.pk)  # type: ignore[attr-defined]
    members = (
        list(workspace.memberships.select_related("user").order_by("user__email"))
        if workspace.is_team
        else []
    )
    params = request.GET.copy()
    for key in ("before", "after"):
        params.pop(key, None)
    return render(
        request,
        "generations/gallery.html",
        {
            "workspace": workspace,
            "membership": membership,
            "generations": _as_cards(workspace, rows),
            "filters": filters,
            "filtered": any(filters.values()),
            "statuses": Status.choices,
            "members": members,
            "query_string": params.urlencode(),
            "older": _cursor_of(rows[-1]) if rows and has_older else "",
            "newer": _cursor_of(rows[0]) if rows and has_newer else "",
        },
    )


@never_cache
@login_required
@require_GET
def card(request: HttpRequest, slug: str, generation_id: uuid.UUID) -> HttpResponse:
    """One gallery card, polled while its generation runs."""
    workspace, membership = get_workspace_for_user(request, slug)
    generation = _generation(workspace, generation_id)
    generation.queue_position = services.queue_positions([generation]).get(generation.pk)  # type: ignore[attr-defined]
    return render(
        request,
        "generations/_card.html",
        {
            "workspace": workspace,
            "membership": membership,
            "generation": _as_cards(workspace, [generation])[0],
        },
    )


@login_required
@require_POST
def bulk_delete(request: HttpRequest, slug: str) -> HttpResponse:
    workspace, _ = get_workspace_for_user(request, slug, minimum=Role.MEMBER)
    ids = []
    for value in request.POST.getlist("ids"):
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    chosen = list(Generation.objects.for_workspace(workspace).filter(pk__in=ids))
    for generation in chosen:
        services.delete_generation(generation)
    if chosen:
        messages.success(request, f"Deleted {len(chosen)} video{'s' if len(chosen) != 1 else ''}.")
    else:
        messages.info(request, "Select the videos to delete first.")
    return redirect("generation_list", workspace.slug)


# --- Public share page and private files -------------------------------------------------


def shared(request: HttpRequest, token: str) -> HttpResponse:
    """A shared video, for anyone with the link (signed out too); 404 once revoked."""
    generation = (
        Generation.objects.filter(
            share_token=token, deleted_at__isnull=True, phase=Phase.SUCCEEDED
        ).first()
        if token
        else None
    )
    if generation is None:
        raise Http404("This share link does not work (any more).")
    _with_media([generation])
    return render(
        request,
        "generations/shared.html",
        {"generation": generation, "hide_brand_in_title": False},
    )


_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


@require_GET
def serve_file(request: HttpRequest, token: str) -> HttpResponseBase:
    """Local storage only: a file named by a signed, short-lived link (S3 uses presigned
    URLs instead). Supports byte ranges so browsers can seek in videos."""
    if settings.AWS_STORAGE_BUCKET_NAME:
        raise Http404
    try:
        key, filename = storage.unsign(token)
    except signing.BadSignature:
        raise PermissionDenied("This link has expired. Reload the page for a new one.") from None
    if not default_storage.exists(key):
        raise Http404
    size = default_storage.size(key)
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    disposition = f'attachment; filename="{filename}"' if filename else "inline"
    match = _RANGE.match(request.headers.get("Range", ""))
    if match and (match.group(1) or match.group(2)):
        first, last = match.groups()
        start = int(first) if first else max(size - int(last), 0)
        end = min(int(last), size - 1) if first and last else size - 1
        if start >= size or start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        partial = _streamed(request, key, start, end, status=206, content_type=content_type)
        partial["Content-Range"] = f"bytes {start}-{end}/{size}"
        partial["Content-Length"] = str(end - start + 1)
    else:
        partial = _streamed(request, key, 0, size - 1, status=200, content_type=content_type)
        partial["Content-Length"] = str(size)
    partial["Accept-Ranges"] = "bytes"
    partial["Content-Disposition"] = disposition
    partial["Cache-Control"] = f"private, max-age={settings.SIGNED_URL_SECONDS}"
    return partial


def _streamed(
    request: HttpRequest, key: str, start: int, end: int, **options: Any
) -> StreamingHttpResponse:
    """Bytes `start`–`end` of a stored file, read a chunk at a time (also under ASGI)."""

    def opened() -> Any:
        handle = default_storage.open(key, "rb")
        handle.seek(start)
        return handle

    return streaming.file_response(request, opened, length=end - start + 1, **options)
