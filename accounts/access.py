"""The one access check every workspace view and endpoint makes first.

An outsider gets a 404 (the workspace's existence is not confirmed to them);
a member whose role is too low gets a 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from accounts.models import Membership, Role, User, Workspace

CURRENT_WORKSPACE_SESSION_KEY = "current_workspace"


def get_membership(user: User, slug: str) -> Membership:
    """The user's membership in the live workspace `slug`, or 404."""
    membership = (
        Membership.objects.live()
        .select_related("workspace")
        .filter(workspace__slug=slug, user=user)
        .first()
    )
    if membership is None:
        raise Http404("No such workspace.")
    return membership


def require_role(membership: Membership, minimum: Role) -> None:
    if not membership.has_role(minimum):
        raise PermissionDenied(f"This needs the {minimum.label.lower()} role or higher.")


def get_workspace_for_user(
    request: HttpRequest, slug: str, *, minimum: Role = Role.VIEWER
) -> tuple[Workspace, Membership]:
    """Return the workspace and the caller's membership; 404 for outsiders, 403 below `minimum`."""
    user = request.user
    if not user.is_authenticated:
        raise Http404("No such workspace.")
    assert isinstance(user, User)
    membership = get_membership(user, slug)
    require_role(membership, minimum)
    if request.method == "GET" and request.session.get(CURRENT_WORKSPACE_SESSION_KEY) != slug:
        # Remembered so that "/" returns the user to the workspace they last opened.
        request.session[CURRENT_WORKSPACE_SESSION_KEY] = slug
    return membership.workspace, membership
