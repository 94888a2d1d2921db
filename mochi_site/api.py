"""What every REST API endpoint shares: API-key authentication, the workspace and role
of the caller, scopes, rate limits, the body-size limit, strict input, cursor pages and
the error envelope `{"error": {"code", "message", "fields"}}` (DESIGN §5).

Endpoints subclass `WorkspaceAPIView`, set `scope` and `minimum_role`, and read
`self.access` (workspace, membership, key) — the API's counterpart of
`accounts.access.get_workspace_for_user`, applied before the endpoint's code runs.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from mochi_site.api_auth import Access

logger = logging.getLogger(__name__)
request_logger = logging.getLogger("django.request")


# --- Errors ----------------------------------------------------------------------------


class ApiError(exceptions.APIException):
    """An error with one of the contract's codes (DESIGN §5)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = headers or {}
        super().__init__(detail=message, code=code)


def validation_error(fields: dict[str, list[str]], message: str = "") -> ApiError:
    return ApiError(
        400,
        "validation_error",
        message or "Some fields are not valid: " + ", ".join(sorted(fields)) + ".",
        fields=fields,
    )


def _messages(value: Any) -> list[str]:
    return [str(m) for m in (value if isinstance(value, list) else [value])]


def _flatten(detail: Any) -> dict[str, list[str]]:
    """DRF's nested validation details as {field: [messages]}."""
    if not isinstance(detail, dict):
        return {"non_field_errors": _messages(detail)}
    flat: dict[str, list[str]] = {}
    for name, value in detail.items():
        if isinstance(value, dict):
            for inner, messages in _flatten(value).items():
                flat[f"{name}.{inner}"] = messages
        else:
            flat[str(name)] = _messages(value)
    return flat


def _envelope(code: str, message: str, fields: dict[str, list[str]] | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return {"error": error}


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    fields: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(_envelope(code, message, fields), status=status_code, headers=headers)


_CODES: list[tuple[type[Exception], int, str]] = [
    (exceptions.ParseError, 400, "invalid_json"),
    (exceptions.NotAuthenticated, 401, "unauthenticated"),
    (exceptions.AuthenticationFailed, 401, "unauthenticated"),
    (exceptions.PermissionDenied, 403, "permission_denied"),
    (DjangoPermissionDenied, 403, "permission_denied"),
    (exceptions.NotFound, 404, "not_found"),
    (Http404, 404, "not_found"),
    (exceptions.MethodNotAllowed, 405, "method_not_allowed"),
    (exceptions.NotAcceptable, 406, "not_acceptable"),
    (exceptions.UnsupportedMediaType, 415, "unsupported_media_type"),
    (exceptions.Throttled, 429, "rate_limited"),
]

# Fixed messages where DRF's own would say less (or name a model).
_MESSAGES: list[tuple[type[Exception], str]] = [
    (exceptions.ParseError, "The request body is not valid JSON."),
    (
        exceptions.NotAuthenticated,
        "Authenticate with a workspace API key: Authorization: Bearer msk_…",
    ),
    (Http404, "Not found."),
    (exceptions.UnsupportedMediaType, "Send JSON with Content-Type: application/json."),
]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Every error the API answers, in one envelope."""
    if isinstance(exc, exceptions.ValidationError):
        exc = validation_error(_flatten(exc.detail))
    if isinstance(exc, ApiError):
        return error_response(
            exc.status_code, exc.code, exc.message, fields=exc.fields, headers=exc.headers
        )
    for kind, status_code, code in _CODES:
        if not isinstance(exc, kind):
            continue
        message = next((text for k, text in _MESSAGES if isinstance(exc, k)), "")
        message = message or str(getattr(exc, "detail", "") or exc)
        headers: dict[str, str] = {}
        if isinstance(exc, exceptions.Throttled):
            wait = max(int(exc.wait or 1), 1)
            headers["Retry-After"] = str(wait)
            message = f"Too many requests; try again in {wait} s."
        if status_code == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        return error_response(status_code, code, message, headers=headers)
    request = context.get("request")
    request_logger.error(
        "Internal Server Error: %s",
        getattr(request, "path", "?"),
        exc_info=exc,
        extra={"status_code": 500, "request": getattr(request, "_request", None)},
    )
    return error_response(500, "server_error", "Something went wrong on our side; try again.")


# --- Views -----------------------------------------------------------------------------------


class WorkspacePermission:
    """The caller is a member with at least the view's role, and the key has its scope."""

    def has_permission(self, request: Request, view: Any) -> bool:
        access = request.auth
        if not isinstance(access, Access):
            raise exceptions.NotAuthenticated()
        minimum: Role = view.minimum_role
        if not access.membership.has_role(minimum):
            raise exceptions.PermissionDenied(
                f"This needs the {minimum.label.lower()} role or higher in the workspace."
            )
        scope = view.required_scope(request)
        if scope and not access.has_scope(scope):
            raise exceptions.PermissionDenied(f"This API key lacks the {scope} scope.")
        return True

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return True


class WorkspaceAPIView(APIView):
    """Base of every workspace endpoint: authenticated, in a workspace, scoped."""

    permission_classes = [WorkspacePermission]
    scope: str = ""
    minimum_role: Role = Role.VIEWER

    def required_scope(self, request: Request) -> str:
        return self.scope

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > settings.API_MAX_BODY_BYTES:
            raise ApiError(
                413,
                "payload_too_large",
                f"Request bodies are limited to {settings.API_MAX_BODY_BYTES // 1024} KB.",
            )
        super().initial(request, *args, **kwargs)

    @property
    def access(self) -> Access:
        access = self.request.auth
        assert isinstance(access, Access)
        return access


class StrictSerializer(serializers.Serializer):
    """Input that names every unknown field instead of ignoring it (no mass assignment)."""

    def check_shape(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise exceptions.ValidationError(
                {"non_field_errors": ["The request body must be a JSON object."]}
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise exceptions.ValidationError({name: ["Unknown field."] for name in unknown})

    def to_internal_value(self, data: Any) -> Any:
        self.check_shape(data)
        return super().to_internal_value(data)


class StrictSchema(OpenApiSerializerExtension):
    """Documents that strict inputs refuse unknown fields (`additionalProperties: false`)."""

    target_class = "mochi_site.api.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        return schema


class NewestFirst(CursorPagination):
    """Cursor pages, newest first: stable while new rows arrive. `?limit=` up to 100."""

    ordering = ("-created_at", "-pk")
    page_size = 20
    page_size_query_param = "limit"
    max_page_size = 100

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            raise validation_error({"cursor": ["This cursor is not valid."]}) from None

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or int(raw) < 1:
            raise validation_error({"limit": ["A whole number from 1 to 100."]})
        return min(int(raw), self.max_page_size)


# --- Documentation ---------------------------------------------------------------------------


class PageQuerySerializer(serializers.Serializer):
    """The query parameters of every cursor-paginated list."""

    cursor = serializers.CharField(
        required=False, allow_blank=True, help_text="From `next` or `previous`; empty: the first."
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, help_text="Rows per page: 1–100 (more is capped at 100)."
    )


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


_ERROR_TEXT = {
    400: "validation_error (with fields) or invalid_json",
    401: "unauthenticated: missing, unknown, revoked or expired API key",
    402: "insufficient_credits",
    403: "permission_denied: the role or the key's scope does not allow it",
    404: "not_found (also another workspace's objects)",
    409: "idempotency_in_progress or not_cancelable",
    413: "payload_too_large: bodies are limited to 64 KB",
    415: "unsupported_media_type: send JSON",
    422: "idempotency_key_reused",
    429: "rate_limited (see Retry-After)",
    503: "upstream_unavailable: nothing was charged",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """Documented error answers; every endpoint may also answer 401 and 429."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_TEXT[code])
        for code in sorted({401, 429, *codes})
    }
