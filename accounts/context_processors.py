from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from accounts.models import Membership


def workspaces(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's workspaces, for the switcher in the page header."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def load() -> list[Membership]:
        return list(
            Membership.objects.live()
            .filter(user=user)
            .select_related("workspace")
            .order_by("workspace__kind", "workspace__name")
        )

    return {"my_memberships": SimpleLazyObject(load)}
