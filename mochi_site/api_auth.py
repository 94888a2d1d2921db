"""Who calls the REST API: API-key and browser-session authentication, and the rate
limits per key and per workspace.

Kept apart from `mochi_site.api` because REST framework imports these classes (named in
settings) while it is itself being imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.authentication import SessionAuthentication as DrfSessionAuthentication
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from accounts.access import CURRENT_WORKSPACE_SESSION_KEY, get_membership
from accounts.models import ApiKey, Membership, User, Workspace

# `last_used_at` is written at most this often per key, not on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Access:
    """The caller's workspace and role, and the API key when it is one."""

    workspace: Workspace
    membership: Membership
    key: ApiKey | None

    @property
    def user(self) -> User:
        return self.membership.user

    def has_scope(self, scope: str) -> bool:
        return self.key is None or self.key.has_scope(scope)


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer msk_…`. A key acts for its workspace with its creator's role
    there: a creator who left the workspace leaves the key powerless."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, Access] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, text = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        access = authenticate_key(text.strip())
        if access is None:
            raise exceptions.AuthenticationFailed(
                "The API key is not valid: it may be mistyped, revoked or expired."
            )
        return access.user, access

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def authenticate_key(text: str) -> Access | None:
    """The access an API key's text grants, or None (unknown, wrong secret, revoked,
    expired, or its creator is no longer a member). Also used by the Segmind drop-in."""
    parts = ApiKey.split(text)
    if parts is None:
        return None
    lookup, secret = parts
    # One query: the key, its workspace, its creator, and the creator's membership there
    # (the key acts as its creator: their role, their monthly cap).
    theirs = Membership.objects.filter(
        workspace=OuterRef("workspace_id"), user=OuterRef("created_by_id")
    )
    key = (
        ApiKey.objects.active()
        .select_related("workspace", "created_by")
        .annotate(
            member_id=Subquery(theirs.values("pk")[:1]),
            member_role=Subquery(theirs.values("role")[:1]),
            member_cap=Subquery(theirs.values("monthly_cap")[:1]),
        )
        .filter(lookup=lookup, created_by__is_active=True)
        .first()
    )
    if key is None or not key.matches(secret) or key.member_id is None:
        return None
    membership = Membership(
        pk=key.member_id,
        workspace=key.workspace,
        user=key.created_by,
        role=key.member_role,
        monthly_cap=key.member_cap,
    )
    membership._state.adding = False  # read from the database, not a new row
    now = timezone.now()
    if key.last_used_at is None or key.last_used_at < now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return Access(workspace=key.workspace, membership=membership, key=key)


class SessionAuthentication(DrfSessionAuthentication):
    """A signed-in browser (with CSRF on unsafe methods). The workspace is the one named by
    `?workspace=<slug>`, else the one last opened, else the user's personal workspace."""

    def authenticate(self, request: Request) -> tuple[User, Access] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        slug = request.query_params.get("workspace") or request._request.session.get(
            CURRENT_WORKSPACE_SESSION_KEY
        )
        if slug:
            membership = get_membership(user, slug)  # 404 for a workspace not theirs
        else:
            personal = (
                Membership.objects.live()
                .select_related("workspace")
                .filter(user=user, workspace__kind=Workspace.Kind.PERSONAL)
                .first()
            )
            if personal is None:
                raise exceptions.NotFound("Name a workspace with ?workspace=<slug>.")
            membership = personal
        return user, Access(workspace=membership.workspace, membership=membership, key=None)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "mochi_site.api_auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "msk_<lookup>_<secret>",
            "description": "A workspace API key, created on the workspace's API keys page.",
        }


# --- Rate limits ---------------------------------------------------------------------------


class WindowRateThrottle(SimpleRateThrottle):
    """REST framework's rate notation over fixed windows counted with the cache's atomic
    increment (Redis INCR): one round trip per request whatever the rate, and concurrent
    requests cannot both take the last place, as they can with the stock throttle's
    read-modify-write of a list of timestamps."""

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.window_ends = (window + 1) * self.duration
        counter = f"{self.key}:{window}"
        # The counter outlives its window a little, so a late increment still finds it.
        self.cache.add(counter, 0, timeout=self.duration + 5)
        try:
            count = self.cache.incr(counter)
        except ValueError:  # evicted between add and incr: start the window again
            self.cache.set(counter, 1, timeout=self.duration + 5)
            count = 1
        return bool(count <= self.num_requests)

    def wait(self) -> float:
        return max(self.window_ends - self.timer(), 1.0)


class KeyRateThrottle(WindowRateThrottle):
    """Per API key (per user for browser sessions)."""

    scope = "key"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        access = request.auth
        if not isinstance(access, Access):
            return None
        ident = f"key:{access.key.pk}" if access.key else f"user:{access.user.pk}"
        return f"throttle:{self.scope}:{ident}"


class WorkspaceRateThrottle(WindowRateThrottle):
    """Per workspace, whoever calls."""

    scope = "workspace"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        access = request.auth
        if not isinstance(access, Access):
            return None
        return f"throttle:{self.scope}:{access.workspace.pk}"
