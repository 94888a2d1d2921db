"""REST API endpoints for generations (DESIGN §5): estimate, create (idempotently),
list, read, cancel, delete, and the video. They call the same services as the pages."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponseRedirect
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import Role, Scope
from billing.pricing import duration_seconds, generation_cost
from generations import idempotency, services, storage, webhooks
from generations.models import Generation, Phase, Source, Status
from generations.params import (
    LIMITS,
    MAX_PROMPT_CHARS,
    PROMPT_PATTERN,
    SEED_MAX,
    TEXT_PATTERN,
    InvalidParams,
    parse_params,
)
from mochi_site.api import (
    ApiError,
    NewestFirst,
    PageQuerySerializer,
    StrictSerializer,
    WorkspaceAPIView,
    error_responses,
    validation_error,
)

# --- The generation as JSON (the API, its webhooks and the drop-in share it) -------------


def absolute(url: str) -> str:
    """Links into local storage are paths on this site; the API answers whole URLs."""
    return f"{settings.SITE_URL}{url}" if url.startswith("/") else url


def generation_json(generation: Generation, *, position: int | None = None) -> dict[str, Any]:
    """A generation as the API shows it; links to its files live SIGNED_URL_SECONDS."""
    progress = services.progress(generation, position)
    succeeded = generation.phase == Phase.SUCCEEDED and generation.deleted_at is None
    return {
        "id": str(generation.pk),
        "status": generation.status,
        "prompt": generation.prompt,
        "negative_prompt": generation.negative_prompt,
        "guidance_scale": generation.guidance_scale,
        "fps": generation.fps,
        "frames": generation.frames,
        "steps": generation.steps,
        "seed": generation.seed,
        "cost": generation.cost,
        "created_at": _stamp(generation.created_at),
        "started_at": _stamp(generation.started_at),
        "finished_at": _stamp(generation.finished_at),
        "duration_seconds": generation.duration_seconds,
        "progress": {
            "phase": progress.phase,
            "queue_position": progress.queue_position,
            "elapsed_seconds": progress.elapsed_seconds,
            "eta_seconds": progress.eta_seconds,
        },
        "video_url": absolute(storage.signed_url(generation.video_key)) if succeeded else None,
        "poster_url": absolute(storage.signed_url(generation.poster_key)) if succeeded else None,
        "error": (
            {"code": generation.error_code, "message": generation.error_message}
            if generation.status in (Status.FAILED, Status.CANCELED)
            else None
        ),
        "source": generation.source,
        "webhook_url": generation.webhook_url or None,
    }


def _stamp(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def generations_json(generations: list[Generation]) -> list[dict[str, Any]]:
    positions = services.queue_positions(generations)
    return [generation_json(g, position=positions.get(g.pk)) for g in generations]


class ProgressSerializer(serializers.Serializer):
    phase = serializers.ChoiceField(choices=Phase.choices)
    queue_position = serializers.IntegerField(
        allow_null=True, help_text="Place in the workspace's line while queued (1 = next)."
    )
    elapsed_seconds = serializers.IntegerField()
    eta_seconds = serializers.IntegerField(
        allow_null=True, help_text="Estimated seconds until done, from recent durations."
    )


class GenerationErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField(help_text="Meant for the end customer.")


class GenerationSerializer(serializers.Serializer):
    """Documents `generation_json` (the endpoints build the dict directly)."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Status.choices)
    prompt = serializers.CharField()
    negative_prompt = serializers.CharField(allow_blank=True)
    guidance_scale = serializers.FloatField()
    fps = serializers.FloatField()
    frames = serializers.IntegerField()
    steps = serializers.IntegerField()
    seed = serializers.IntegerField(help_text="The seed actually used.")
    cost = serializers.IntegerField(help_text="Credits held at submit, charged on success.")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(help_text="frames / fps")
    progress = ProgressSerializer()
    video_url = serializers.URLField(
        allow_null=True, help_text="Short-lived (at most 15 minutes); only when succeeded."
    )
    poster_url = serializers.URLField(allow_null=True, help_text="Short-lived, like video_url.")
    error = GenerationErrorSerializer(allow_null=True)
    source = serializers.ChoiceField(choices=Source.choices)
    webhook_url = serializers.URLField(allow_null=True)


class GenerationPageSerializer(serializers.Serializer):
    results = GenerationSerializer(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


# --- Input ---------------------------------------------------------------------------------


def _number_field(name: str) -> serializers.Field:
    limit = LIMITS[name]
    kind = serializers.IntegerField if limit.integer else serializers.FloatField
    return kind(
        required=False,
        allow_null=True,
        min_value=limit.minimum,
        max_value=limit.maximum,
        help_text=f"{limit.minimum:g}–{limit.maximum:g}; absent or null: {limit.default:g}.",
    )


class ParamsSerializer(StrictSerializer):
    """Segmind's parameters, checked by `generations.params` like every other entry point."""

    prompt = serializers.RegexField(
        PROMPT_PATTERN,
        max_length=MAX_PROMPT_CHARS,
        help_text="What the video shows: some text besides whitespace, without NUL.",
    )
    negative_prompt = serializers.RegexField(
        TEXT_PATTERN,
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=MAX_PROMPT_CHARS,
        help_text="What to steer away from. Absent, null or empty: nothing.",
    )
    guidance_scale = _number_field("guidance_scale")
    fps = _number_field("fps")
    frames = _number_field("frames")
    steps = _number_field("steps")
    seed = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=-1,
        max_value=SEED_MAX,
        help_text="Absent, null or -1: we draw one and return it.",
    )

    def to_internal_value(self, data: Any) -> Any:
        # The fields above document the body; `parse_params` checks it, as it does for
        # the pages and the drop-in, so every entry point gives the same answers.
        self.check_shape(data)
        params = {k: v for k, v in data.items() if k != "webhook_url"}
        fields: dict[str, list[str]] = {}
        try:
            parsed = parse_params(params)
        except InvalidParams as invalid:
            fields.update(invalid.fields)
        try:
            more = self.more_fields(data)
        except serializers.ValidationError as refused:
            fields.update(refused.detail)
        if fields:
            raise serializers.ValidationError(fields)
        return {"params": parsed, **more}

    def more_fields(self, data: dict[str, Any]) -> dict[str, Any]:
        return {}


# --- Endpoints ---------------------------------------------------------------------------------


class EstimateApi(WorkspaceAPIView):
    scope = Scope.GENERATIONS_READ

    class InputSerializer(ParamsSerializer):
        class Meta:
            ref_name = "GenerationParameters"

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Estimate"

        cost = serializers.IntegerField(help_text="Credits this generation would cost.")
        duration_seconds = serializers.FloatField()

    @extend_schema(
        operation_id="estimate",
        summary="Price a generation",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 403, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = serializer.validated_data["params"]
        return Response(
            {
                "cost": generation_cost(params.frames, params.steps),
                "duration_seconds": duration_seconds(params.frames, params.fps),
            }
        )


def _fingerprint(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class GenerationsApi(WorkspaceAPIView):
    """`GET` lists the workspace's generations; `POST` creates one."""

    minimum_role = Role.VIEWER

    def required_scope(self, request: Request) -> str:
        return Scope.GENERATIONS_WRITE if request.method == "POST" else Scope.GENERATIONS_READ

    def check_permissions(self, request: Request) -> None:
        super().check_permissions(request)
        access = self.access
        if request.method == "POST" and not access.membership.has_role(Role.MEMBER):
            raise ApiError(403, "permission_denied", "Viewers cannot create generations.")

    class InputSerializer(ParamsSerializer):
        class Meta:
            ref_name = "NewGeneration"

        webhook_url = serializers.URLField(
            required=False,
            allow_blank=True,
            allow_null=True,
            max_length=2000,
            help_text=(
                "Told (Standard Webhooks) when the generation finishes. Public HTTPS;"
                " absent, null or empty: no webhook."
            ),
        )

        def more_fields(self, data: dict[str, Any]) -> dict[str, Any]:
            url = data.get("webhook_url")
            if url is None:
                url = ""
            if not isinstance(url, str) or len(url) > 2000:
                raise serializers.ValidationError(
                    {"webhook_url": ["A URL of at most 2000 characters."]}
                )
            if url:
                try:
                    webhooks.check_url(url)
                except webhooks.UnsafeWebhookUrl as unsafe:
                    raise serializers.ValidationError({"webhook_url": [str(unsafe)]}) from None
            return {"webhook_url": url}

    @extend_schema(
        operation_id="list_generations",
        summary="List generations, newest first",
        parameters=[
            OpenApiParameter("status", enum=Status.values, description="Only this status."),
            PageQuerySerializer,
        ],
        responses={200: GenerationPageSerializer, **error_responses(400, 403)},
    )
    def get(self, request: Request) -> Response:
        query: QuerySet[Generation] = Generation.objects.for_workspace(self.access.workspace)
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in Status.values:
                raise validation_error({"status": [f"One of {', '.join(Status.values)}."]})
            query = query.filter(status=wanted)
        pages = NewestFirst()
        rows = list(pages.paginate_queryset(query, request, view=self) or [])
        return Response(
            {
                "results": generations_json(rows),
                "next": pages.get_next_link(),
                "previous": pages.get_previous_link(),
            }
        )

    @extend_schema(
        operation_id="create_generation",
        summary="Create a generation",
        description=(
            "Holds the price and queues the work; answers 202 at once. Send an "
            "`Idempotency-Key` to retry safely: the same key and body answer the same "
            "generation again (24 h, per workspace)."
        ),
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "pattern": idempotency.KEY_PATTERN, "maxLength": 255},
                OpenApiParameter.HEADER,
                description="Up to 255 visible ASCII characters, e.g. a UUID.",
            )
        ],
        request=InputSerializer,
        responses={
            202: GenerationSerializer,
            **error_responses(400, 402, 403, 409, 413, 415, 422, 503),
        },
    )
    def post(self, request: Request) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not idempotency.valid_key(key):
            raise validation_error(
                {"Idempotency-Key": ["Up to 255 visible ASCII characters, such as a UUID."]}
            )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        access = self.access

        def create() -> Generation:
            try:
                return services.submit_generation(
                    workspace=access.workspace,
                    params=serializer.validated_data["params"],
                    user=access.user,
                    membership=access.membership,
                    source=Source.API,
                    api_key=access.key,
                    webhook_url=serializer.validated_data["webhook_url"],
                )
            except services.SubmitRefused as refused:
                raise ApiError(refused.status, refused.code, refused.message) from None

        if key is None:
            return Response(generation_json(create()), status=202)
        try:
            outcome = idempotency.run(
                workspace=access.workspace,
                key=key,
                fingerprint=_fingerprint(request.data),
                create=create,
                respond=generation_json,
            )
        except idempotency.KeyReused:
            raise ApiError(
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request body.",
            ) from None
        except idempotency.InProgress:
            raise ApiError(
                409,
                "idempotency_in_progress",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                headers={"Retry-After": "1"},
            ) from None
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else {}
        return Response(outcome.body, status=outcome.status, headers=headers)


def _generation_of(view: WorkspaceAPIView, generation_id: uuid.UUID) -> Generation:
    """One of the caller's workspace's generations; another workspace's id is a 404."""
    generation = (
        Generation.objects.for_workspace(view.access.workspace).filter(pk=generation_id).first()
    )
    if generation is None:
        raise ApiError(404, "not_found", "No such generation in this workspace.")
    return generation


class GenerationApi(WorkspaceAPIView):
    """`GET` reads one generation; `DELETE` deletes it (its files; the record stays)."""

    def required_scope(self, request: Request) -> str:
        return Scope.GENERATIONS_WRITE if request.method == "DELETE" else Scope.GENERATIONS_READ

    def check_permissions(self, request: Request) -> None:
        super().check_permissions(request)
        if request.method == "DELETE" and not self.access.membership.has_role(Role.MEMBER):
            raise ApiError(403, "permission_denied", "Viewers cannot delete generations.")

    @extend_schema(
        operation_id="get_generation",
        summary="Read a generation",
        responses={200: GenerationSerializer, **error_responses(403, 404)},
    )
    def get(self, request: Request, generation_id: uuid.UUID) -> Response:
        return Response(generation_json(_generation_of(self, generation_id)))

    @extend_schema(
        operation_id="delete_generation",
        summary="Delete a generation",
        description="Unfinished work is canceled first (not charged); the video is deleted.",
        responses={204: None, **error_responses(403, 404)},
    )
    def delete(self, request: Request, generation_id: uuid.UUID) -> Response:
        services.delete_generation(_generation_of(self, generation_id))
        return Response(status=204)


class GenerationCancelApi(WorkspaceAPIView):
    scope = Scope.GENERATIONS_WRITE
    minimum_role = Role.MEMBER

    @extend_schema(
        operation_id="cancel_generation",
        summary="Cancel a queued or running generation",
        description="The held credits are released at once; a finished one answers 409.",
        request=None,
        responses={200: GenerationSerializer, **error_responses(403, 404, 409)},
    )
    def post(self, request: Request, generation_id: uuid.UUID) -> Response:
        generation = _generation_of(self, generation_id)
        try:
            services.cancel_generation(generation)
        except services.NotCancelable:
            raise ApiError(409, "not_cancelable", "This generation has already finished.") from None
        return Response(generation_json(generation))


class GenerationVideoApi(WorkspaceAPIView):
    scope = Scope.GENERATIONS_READ

    @extend_schema(
        operation_id="get_generation_video",
        summary="Download the video",
        description="Redirects to a short-lived URL of the MP4 (at most 15 minutes).",
        responses={
            302: OpenApiResponse(description="Location: the MP4's short-lived URL."),
            **error_responses(403, 404),
        },
    )
    def get(self, request: Request, generation_id: uuid.UUID) -> HttpResponseRedirect:
        generation = _generation_of(self, generation_id)
        if generation.phase != Phase.SUCCEEDED or not generation.video_key:
            raise ApiError(404, "not_found", "This generation has no video (yet).")
        url = storage.signed_url(
            generation.video_key, filename=storage.download_name(generation.prompt)
        )
        return HttpResponseRedirect(absolute(url))
