"""The Segmind-compatible drop-in: Segmind's Mochi 1 API (DESIGN §2), served by us.

An app written for Segmind switches to us by changing only the base URL and the key:
`x-api-key` carries one of our workspace API keys, bodies and answers have Segmind's
shapes (errors are `{"error": "<text>"}`), and every generation is billed through our
ledger like any other API generation (source `api`, the key recorded).

- `POST /v1/mochi-1` waits until the video is done and answers the MP4 itself, with
  `x-cost` (credits charged), `x-remaining-credits`, `x-request-id` (the generation id)
  and `x-seed-value`. It is an async view: while it waits it holds no worker and no
  database connection, only a timer; every SEGMIND_COMPAT_CHECK_SECONDS it reads the
  generation in one short query. After SEGMIND_COMPAT_V1_TIMEOUT_SECONDS it answers 504
  and the generation goes on (`GET /v2/requests/<id>` finds it).
  A client that disconnects while waiting does not cancel it either: it is finished,
  stored and charged like any API generation. A disconnect is as often a proxy's idle
  timeout or a dropped network as a change of mind; Segmind itself renders and bills
  such a call; the upstream cannot be canceled anyway; and the video is not lost: it is
  in the workspace's gallery and API, and at `/v2/requests/<id>`.
- `POST /v2/mochi-1` queues and answers `{"request_id", "status": "QUEUED", "poll_url",
  "status_url", "response_url"}`; `GET /v2/requests/<id>/status` and
  `GET /v2/requests/<id>` (also `GET /v1/requests/<id>`, Segmind's legacy poll URL)
  answer its status and result; a failed job answers 422, as Segmind's do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from rest_framework.request import Request

from accounts.models import Role, Scope
from billing import wallets
from generations import services, storage
from generations.api import absolute
from generations.models import Generation, Phase, Source
from generations.params import GenerationParams, InvalidParams, parse_params
from mochi_site import streaming
from mochi_site.api_auth import Access, KeyRateThrottle, WorkspaceRateThrottle, authenticate_key

logger = logging.getLogger(__name__)

# Our phases as Segmind's four job states.
SEGMIND_STATUS = {
    Phase.QUEUED: "QUEUED",
    Phase.SUBMITTING: "QUEUED",
    Phase.UPSTREAM_QUEUED: "QUEUED",
    Phase.PROCESSING: "PROCESSING",
    Phase.DOWNLOADING: "PROCESSING",
    Phase.SUCCEEDED: "COMPLETED",
    Phase.FAILED: "FAILED",
    Phase.CANCELED: "FAILED",
}


class Refused(Exception):
    """An answer in Segmind's error shape: `{"error": message}`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.headers = headers or {}
        super().__init__(message)

    def response(self) -> JsonResponse:
        return _error(self.status, self.message, self.headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    if status >= 500:
        # A failed generation, the upstream's breaker, our timeout: answers Segmind gives
        # with 5xx codes, not server errors. Logged here, and not mailed to the operators
        # as Django does for every 5xx (it skips responses marked as logged).
        logger.info("Segmind-compatible answer %s: %s", status, message)
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response


# --- The steps every endpoint shares (synchronous: they talk to the database) ---------


def _give_back_connection() -> None:
    """Return this thread's database connection (to the pool, under ASGI) so that a
    request that waits holds none. Never inside a transaction (tests run in one)."""
    if not connection.in_atomic_block:
        connection.close()


def _authenticate(request: HttpRequest, *, scope: str, creates: bool = False) -> Access:
    text = request.headers.get("x-api-key", "").strip()
    if not text:
        raise Refused(401, "Missing Authorization or x-api-key in header")
    access = authenticate_key(text)
    if access is None:
        raise Refused(401, "Unauthorized. API key is invalid or may have expired")
    if not access.has_scope(scope):
        raise Refused(403, f"Forbidden: this API key lacks the {scope} scope.")
    if creates and not access.membership.has_role(Role.MEMBER):
        raise Refused(403, "Forbidden: viewers cannot create generations.")
    _throttle(access)
    return access


def _throttle(access: Access) -> None:
    """The REST API's rate limits per key and per workspace, counted together with it."""
    caller = cast(Request, SimpleNamespace(auth=access))  # the throttles read only `.auth`
    for kind in (KeyRateThrottle, WorkspaceRateThrottle):
        throttle = kind()
        if not throttle.allow_request(caller, None):
            wait = max(int(throttle.wait() or 1), 1)
            reset = datetime.now(UTC) + timedelta(seconds=wait)
            raise Refused(
                429,
                f"Too many requests; try again in {wait} s.",
                {
                    "Retry-After": str(wait),
                    "x-rate-limit-reset-at-utc": reset.isoformat().replace("+00:00", "Z"),
                },
            )


def _params(request: HttpRequest) -> GenerationParams:
    """Segmind's JSON parameters, checked as every entry point checks them. Fields we
    do not know are ignored, as an app written for Segmind may send more."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > settings.API_MAX_BODY_BYTES:
        raise Refused(
            413, f"Request bodies are limited to {settings.API_MAX_BODY_BYTES // 1024} KB."
        )
    if "application/json" not in request.META.get("CONTENT_TYPE", ""):
        raise Refused(406, "Invalid content type, expected application/json")
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        raise Refused(400, "Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, "Request body must be a JSON object")
    try:
        return parse_params(body)
    except InvalidParams as invalid:
        raise Refused(
            400, " ".join(f"{name}: {' '.join(texts)}" for name, texts in invalid.fields.items())
        ) from None


def _submit(request: HttpRequest, *, scope: str) -> Generation:
    """Authenticate, check the body, hold the price and queue the work."""
    access = _authenticate(request, scope=scope, creates=True)
    params = _params(request)
    try:
        return services.submit_generation(
            workspace=access.workspace,
            params=params,
            user=access.user,
            membership=access.membership,
            source=Source.API,
            api_key=access.key,
        )
    except services.NotEnoughCredits as refused:
        # Segmind's code for "Not enough credits" (and for team spend limits).
        raise Refused(406, f"Not enough credits. {refused.message}") from None
    except services.SubmitRefused as refused:
        raise Refused(refused.status, refused.message) from None


def _generation_of(request: HttpRequest, request_id: str) -> Generation:
    access = _authenticate(request, scope=Scope.GENERATIONS_READ)
    generation_id: uuid.UUID | None
    try:
        generation_id = uuid.UUID(request_id)
    except ValueError:
        generation_id = None
    generation = (
        Generation.objects.for_workspace(access.workspace).filter(pk=generation_id).first()
        if generation_id
        else None
    )
    if generation is None:  # also another workspace's
        raise Refused(404, f"Request {request_id} not found")
    return generation


def _seconds(start: datetime | None, end: datetime | None) -> float:
    return round((end - start).total_seconds(), 2) if start and end else 0.0


def _metrics(generation: Generation) -> dict[str, Any]:
    """Segmind's `metrics`: timings in seconds; cost (credits) once completed."""
    now = timezone.now()
    sent = generation.submit_started_at
    metrics: dict[str, Any] = {
        "queue_time": _seconds(generation.created_at, sent or generation.finished_at or now),
        "inference_time": _seconds(sent, generation.upstream_done_at or generation.finished_at),
    }
    if generation.finished_at:
        metrics["total_time"] = _seconds(generation.created_at, generation.finished_at)
    if generation.phase == Phase.SUCCEEDED:
        metrics["cost"] = generation.cost
        metrics["remaining_credits"] = wallets.balance(generation.workspace).available
    return metrics


def _job(generation: Generation, *, with_output: bool) -> JsonResponse:
    """A v2 job's status (or result), in Segmind's shape; 422 when it failed."""
    status = SEGMIND_STATUS[Phase(generation.phase)]
    body: dict[str, Any] = {
        "status": status,
        "request_id": str(generation.pk),
        "metrics": _metrics(generation),
    }
    if status == "FAILED":
        body["error"] = generation.error_message
        return JsonResponse(body, status=422)
    if status == "COMPLETED" and with_output:
        body["output"] = absolute(storage.signed_url(generation.video_key))
    return JsonResponse(body)


# --- v2: submit, then poll -----------------------------------------------------------


@csrf_exempt
@require_POST
def v2_submit(request: HttpRequest) -> JsonResponse:
    """`POST /v2/mochi-1`: queue a generation; answer where to poll it."""
    try:
        generation = _submit(request, scope=Scope.GENERATIONS_WRITE)
    except Refused as refused:
        return refused.response()
    request_id = str(generation.pk)
    return JsonResponse(
        {
            "request_id": request_id,
            "status": "QUEUED",
            "poll_url": absolute(reverse("segmind_v1_request", args=[request_id])),
            "status_url": absolute(reverse("segmind_v2_status", args=[request_id])),
            "response_url": absolute(reverse("segmind_v2_request", args=[request_id])),
        }
    )


@require_GET
def v2_status(request: HttpRequest, request_id: str) -> JsonResponse:
    """`GET /v2/requests/<id>/status`."""
    try:
        return _job(_generation_of(request, request_id), with_output=False)
    except Refused as refused:
        return refused.response()


@require_GET
def v2_result(request: HttpRequest, request_id: str) -> JsonResponse:
    """`GET /v2/requests/<id>` (and `/v1/requests/<id>`): `output` is a short-lived URL
    of the MP4 (SIGNED_URL_SECONDS); ask again for a fresh one. Unlike Segmind's, the
    record does not expire after an hour."""
    try:
        return _job(_generation_of(request, request_id), with_output=True)
    except Refused as refused:
        return refused.response()


# --- v1: one call that answers the video --------------------------------------------


def _submit_v1(request: HttpRequest) -> Generation:
    try:
        return _submit(request, scope=Scope.GENERATIONS_WRITE)
    finally:
        _give_back_connection()


def _read(generation_id: uuid.UUID) -> Generation:
    try:
        return Generation.objects.select_related("workspace").get(pk=generation_id)
    finally:
        _give_back_connection()


def _remaining(generation: Generation) -> int:
    try:
        return wallets.balance(generation.workspace).available
    finally:
        _give_back_connection()


async def _wait_until_finished(generation: Generation) -> Generation | None:
    """The generation once it is finished, or None when the wait is over first."""
    deadline = time.monotonic() + settings.SEGMIND_COMPAT_V1_TIMEOUT_SECONDS
    while not generation.is_terminal:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        await asyncio.sleep(min(settings.SEGMIND_COMPAT_CHECK_SECONDS, left))
        generation = await sync_to_async(_read)(generation.pk)
    return generation


@csrf_exempt
@require_POST
async def v1_generate(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """`POST /v1/mochi-1`: make the video and answer its bytes (`video/mp4`)."""
    request_id = ""
    try:
        try:
            generation = await sync_to_async(_submit_v1)(request)
        except Refused as refused:
            return refused.response()
        request_id = str(generation.pk)
        finished = await _wait_until_finished(generation)
    except asyncio.CancelledError:
        # The client went away (Django cancels the view; a submit under way in its
        # thread still completes): the generation goes on.
        logger.info(
            "Client left POST /v1/mochi-1 waiting for %s; it goes on", request_id or "its submit"
        )
        raise
    headers = {"x-request-id": request_id}
    if finished is None:
        return _error(
            504,
            f"The video is not ready after {settings.SEGMIND_COMPAT_V1_TIMEOUT_SECONDS} s. "
            f"It is still being made and is charged when done: GET /v2/requests/{request_id} "
            "answers it.",
            headers,
        )
    if finished.phase != Phase.SUCCEEDED:
        status = 400 if finished.error_code == "invalid_request" else 500
        return _error(status, finished.error_message, headers)
    remaining = await sync_to_async(_remaining)(finished)
    key = finished.video_key
    response = streaming.file_response(
        request,
        lambda: storage.open_stream(key),
        length=finished.video_bytes,
        content_type="video/mp4",
    )
    response["Content-Length"] = str(finished.video_bytes)
    response["x-cost"] = str(finished.cost)
    response["x-remaining-credits"] = str(remaining)
    response["x-request-id"] = request_id
    response["x-seed-value"] = str(finished.seed)
    response["x-generation-time"] = f"{_seconds(finished.created_at, finished.finished_at):.2f}"
    return response
